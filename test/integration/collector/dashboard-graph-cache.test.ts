/**
 * The graph API's kept sums (collector/dashboard/graph-cache.ts) against the plain rollup query,
 * property-style: generated flows stored in a real flow store minute after minute (some late, for
 * minutes already settled; old minutes pruned), and at each step windows of random length and
 * filters asked of both. The rows and the graph built from them must be the same; a refresh in
 * the same minute reads only the live minutes.
 */
import { strict as assert } from 'node:assert';
import pino from 'pino';
import type { FlowRecord } from '../../../common/flow';
import { buildGraph, buildGraphRaw } from '../../../collector/dashboard/graph';
import { GraphTotalsCache } from '../../../collector/dashboard/graph-cache';
import type { EdgeTotalsQuery } from '../../../collector/flows/rollup-query';
import { FlowStore } from '../../../collector/flows/store';
import { prng } from '../../fixtures/prng';
import { TempDirs } from './helpers';

const MIN = 60_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

function flowAt(rand: () => number, time: number): FlowRecord {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const ns = (): string => pick(['a', 'b', 'c']);
  const egress = rand() < 0.15;
  const denied = rand() < 0.1;
  const http = !egress && rand() < 0.7;
  const src = rand() < 0.1 ? { ip: `192.0.2.${1 + Math.floor(rand() * 3)}` } : { ip: '10.0.0.1', workload: pick(['w1', 'w2', 'w3', 'w4']), namespace: ns() };
  return {
    time: new Date(time).toISOString(),
    node: 'n1',
    direction: egress ? 'egress' : 'inbound',
    source: src,
    destination: egress
      ? { ip: '203.0.113.7', port: 443, ...(rand() < 0.5 ? { host: pick(['x.example', 'y.example']) } : {}) }
      : { ip: '10.0.0.2', port: 8080, workload: pick(['w1', 'w2', 'w3', 'w4']), namespace: ns() },
    protocol: egress ? 'tls' : http ? 'http' : 'tcp',
    ...(http ? { http: { method: 'GET', path: '/', status: pick([200, 200, 200, 404, 503]) } } : {}),
    verdict: denied ? 'denied' : pick(['allowed', 'allowed', 'audit']),
    reason: denied ? 'denied-by-policy' : 'no-policy',
    ...(denied ? { policy: pick(['a/deny', 'b/deny']) } : {}),
    mtls: rand() < 0.6,
    bytesSent: Math.floor(rand() * 1000),
    bytesReceived: Math.floor(rand() * 5000),
    durationMs: Math.floor(rand() * 200),
  };
}

const FILTERS: Array<Omit<EdgeTotalsQuery, 'fromMinute' | 'toMinute'>> = [
  {},
  { namespaces: ['a'] },
  { namespaces: ['b', 'c'], verdicts: ['denied'] },
  { protocols: ['http', 'tls'] },
  { workload: { name: 'w2' } },
  { workload: { namespace: 'c', name: 'w3' }, verdicts: ['allowed', 'audit'] },
];

describe('dashboard graph: kept sums of settled minutes', function () {
  this.timeout(120_000);
  const dirs = new TempDirs();
  let store: FlowStore | undefined;
  afterEach(() => {
    store?.close();
    store = undefined;
    dirs.cleanup();
  });

  for (const seed of [1, 2, 3]) {
    it(`answers as the rollup query does, over 90 minutes of generated flows (seed ${seed})`, async () => {
      const rand = prng(seed);
      let now = T0;
      const s = (store = FlowStore.open({ file: `${dirs.make('graph-cache')}/flows.db`, log: pino({ level: 'silent' }), now: () => now, retentionMs: 40 * MIN, retentionIntervalMs: 3_600_000 }));
      let pauses = 0;
      const cache = new GraphTotalsCache(s, {
        maxFilters: 4,
        pause: async () => {
          pauses++;
        },
      });
      let seq = 0;
      let compared = 0;
      let late = 0;
      for (let step = 0; step < 90 * 3; step++) {
        now += 20_000; // three steps a minute
        const flows: FlowRecord[] = [];
        for (let i = Math.floor(rand() * 30); i > 0; i--) flows.push(flowAt(rand, now - Math.floor(rand() * 20_000)));
        if (rand() < 0.05) {
          flows.push(flowAt(rand, now - (3 + Math.floor(rand() * 20)) * MIN)); // a late batch for a settled minute
          late++;
        }
        if (flows.length > 0) s.ingest('n1', { session: 's', seq: ++seq, lost: 0, flows });
        for (let k = 0; k < 2; k++) {
          const filter = FILTERS[Math.floor(rand() * FILTERS.length)]!;
          const length = [5, 60, 1 + Math.floor(rand() * 50)][Math.floor(rand() * 3)]!;
          const until = now + 1 - Math.floor(rand() * 3) * (rand() < 0.2 ? 7 * MIN : 0);
          const q: EdgeTotalsQuery = { ...filter, fromMinute: Math.floor((until - length * MIN) / MIN), toMinute: Math.floor((until - 1) / MIN) };
          const want = s.edgeTotals(q);
          const got = await cache.totals(q, now);
          assert.deepEqual(got, s.edgeTotalsRaw(q), `step ${step}, ${JSON.stringify(q)}`);
          assert.deepEqual(buildGraphRaw(got, { seconds: length * 60, maxEdges: 20 }), buildGraph(want, { seconds: length * 60, maxEdges: 20 }));
          compared++;
        }
      }
      assert.equal(compared, 540);
      assert.ok(late > 3, `late batches: ${late}`);
      assert.ok(s.lateRollupWrites() >= late);
      assert.ok(s.rollupFloorMinute() > Math.floor(T0 / MIN), 'the rollup was pruned');
      assert.ok(pauses > 100, `the event loop let go between reads: ${pauses}`);
    });
  }

  it('a refresh in the same minute reads the live minutes only; the next minute adds one and takes one away', async () => {
    const rand = prng(7);
    let now = T0 + 30 * MIN + 30_000;
    const s = (store = FlowStore.open({ file: `${dirs.make('graph-cache')}/flows.db`, log: pino({ level: 'silent' }), now: () => now, retentionIntervalMs: 3_600_000 }));
    const flows: FlowRecord[] = [];
    for (let m = 0; m <= 30; m++) for (let i = 0; i < 10; i++) flows.push(flowAt(rand, T0 + m * MIN + i * 1000));
    s.ingest('n1', { session: 's', seq: 1, lost: 0, flows });
    const reads: Array<[number, number]> = [];
    const source = {
      edgeTotalsRaw: (q: EdgeTotalsQuery) => {
        reads.push([q.fromMinute - T0 / MIN, q.toMinute - T0 / MIN]);
        return s.edgeTotalsRaw(q);
      },
      lateRollupWrites: () => s.lateRollupWrites(),
      rollupFloorMinute: () => s.rollupFloorMinute(),
    };
    let tick = 0;
    const cache = new GraphTotalsCache(source, { sliceMs: 0, clock: () => tick++ }); // each read too slow: one minute per read
    const window = (): EdgeTotalsQuery => ({ fromMinute: Math.floor((now - 10 * MIN) / MIN), toMinute: Math.floor(now / MIN) });
    await cache.totals(window(), now);
    assert.deepEqual(reads, [[20, 20], [21, 21], [22, 22], [23, 23], [24, 24], [25, 25], [26, 26], [27, 27], [28, 28], [29, 29], [30, 30]]);
    reads.length = 0;
    now += 20_000;
    assert.deepEqual(await cache.totals(window(), now), s.edgeTotalsRaw(window()));
    assert.deepEqual(reads, [[29, 29], [30, 30]], 'the same minute: only the live ones');
    reads.length = 0;
    now += 30_000; // minute 31: 21 … 29 settled
    assert.deepEqual(await cache.totals(window(), now), s.edgeTotalsRaw(window()));
    assert.deepEqual(reads, [[20, 20], [29, 29], [30, 30], [31, 31]], 'minute 20 taken away, 29 added, 30 and 31 live');
  });
});
