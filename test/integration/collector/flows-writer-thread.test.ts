/**
 * The flow store's writes in a writer thread (collector/flows/writer-thread.ts), driven by a real
 * agent session and the agent's own FlowReporter: a batch is acknowledged only once the thread
 * committed it, so when the thread's queue is full (batches refused, counted) or the thread
 * crashes (what it held fails, it is started again), the agent sends again what was not
 * acknowledged — and produced = stored + lost holds exactly, every record stored once.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { FlowReporter } from '../../../agent/flows/reporter';
import type { RunningCollector } from '../../../collector/collector';
import { FLOWS_DB_FILE } from '../../../collector/flows/store';
import type { FlowRecord } from '../../../common/flow';
import { HealthPoller, keepAlive, loopDelay } from './event-loop-fixtures';
import { apiGet, numberedFlow } from './flows-fixtures';
import { client, collector, LogCapture, token, useCollectorSuite, waitFor, workload } from './helpers';

const NODE = 'node-w';

const record = (n: number): FlowRecord => numberedFlow(NODE, n);

describe('collector: flow writes in the writer thread', function () {
  this.timeout(240_000);
  const { dirs, stack, dataDir } = useCollectorSuite();

  /** An agent session streaming 10,000 records a second; `during` runs once some are stored. */
  async function stream(col: RunningCollector, data: string, during: () => Promise<void>): Promise<{ produced: number; lost: number; stored: Set<number>; rows: number; resent: number }> {
    const agentDir = dirs.make('palisade-agent-');
    const c = client(stack, { url: col.url, caPem: col.ca.certPem, node: NODE, dataDir: agentDir, joinToken: token(data, NODE), log: new LogCapture().logger });
    c.setWorkloads([workload('web', '10.7.0.1')]);
    await c.start();
    const reporter = new FlowReporter({ log: pino({ level: 'silent' }), batchSize: 50, flushIntervalMs: 10, ackTimeoutMs: 200, maxInFlight: 8 });
    reporter.start(c);
    stack.push(() => reporter.close());
    let produced = 0;
    const producing = setInterval(() => {
      for (let i = 0; i < 20; i++) reporter.record(record(++produced));
    }, 2);
    stack.push(() => clearInterval(producing));
    await waitFor(() => reporter.stats().acknowledged > 300, 20_000, 'flows stored');
    await during();
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(producing);
    assert.ok(await reporter.settled(90_000), `every record acknowledged or counted lost: ${JSON.stringify(reporter.stats())}, writer queue ${col.flows.writerQueued()}`);
    const s = reporter.stats();
    assert.equal(s.produced, produced);
    const stored = new Set([...col.flows.scan({}, 10_000_000)].map((f) => f.bytesSent));
    return { produced, lost: s.lost, stored, rows: col.flows.rows(), resent: s.resent };
  }

  it('a full queue refuses batches (counted, not acknowledged): the agent sends them again, produced = stored + lost exactly', async () => {
    const data = dataDir();
    const logs = new LogCapture();
    // Four of the agent's 50-flow batches at most wait for the thread; it sends 8 at once. The
    // thread is made to fall behind at once: another connection holds the database's write lock
    // for a moment (the thread waits for it: busy_timeout 2 s). Left to itself, the queue filled
    // only once SQLite fell behind, which on a quiet machine took seconds at 10,000 records/s,
    // and that backlog, resent through refusals, took 11-71 s to settle.
    const col = await collector(stack, { dataDir: data, log: logs.logger, flowWriterQueueFlows: 200 });
    const started = Date.now();
    let refusedAfter = 0;
    const refusal = (): boolean => logs.find('flow batch not stored now; the agent sends it again') !== undefined;
    const r = await stream(
      col,
      data,
      async () => {
        // Held for 1 s at most: the thread's own wait for it (2 s) must not run out.
        const lock = new Database(path.join(data, FLOWS_DB_FILE)); // waits up to 5 s for the thread's own transaction
        try {
          lock.exec('BEGIN IMMEDIATE');
          try {
            const lockedAt = Date.now();
            await waitFor(() => refusal() || Date.now() - lockedAt > 1_000, 5_000, 'a refusal or the end of the lock');
          } finally {
            lock.exec('COMMIT');
          }
        } finally {
          lock.close();
        }
        await waitFor(refusal, 20_000, 'a batch refused');
        refusedAfter = Date.now() - started;
      },
    );
    const metrics = (await apiGet(col, '/metrics', { token: col.adminToken })).text;
    const refused = Number(/palisade_collector_flows_refused_total\{reason="busy"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    console.log(`      produced ${r.produced}, stored ${r.stored.size} (rows ${r.rows}), lost ${r.lost}, resent ${r.resent}; refused while busy ${refused} flows, the first ${refusedAfter} ms after the start`);
    assert.ok(refused > 0, 'refusals counted in palisade_collector_flows_refused_total{reason="busy"}');
    assert.equal(r.rows, r.stored.size, 'every record stored once');
    assert.equal(r.stored.size + r.lost, r.produced, 'produced = stored + lost');
  });

  it('a writer thread crash: what it held is not acknowledged, the thread starts again, produced = stored + lost exactly', async () => {
    const data = dataDir();
    const logs = new LogCapture();
    const col = await collector(stack, { dataDir: data, log: logs.logger });
    const thread = col.flows.writerThread!;
    const r = await stream(col, data, async () => {
      await thread.crash();
      await waitFor(() => thread.restarted === 1 && logs.find('flow writer thread exited; starting it again'), 10_000, 'the thread started again');
      const rows = col.flows.rows();
      await waitFor(() => col.flows.rows() > rows, 10_000, 'flows stored after the restart');
    });
    console.log(`      produced ${r.produced}, stored ${r.stored.size} (rows ${r.rows}), lost ${r.lost}, resent ${r.resent}`);
    assert.ok(r.resent > 0, 'the agent sent again what the crash left unacknowledged');
    assert.equal(r.rows, r.stored.size, 'every record stored once');
    assert.equal(r.stored.size + r.lost, r.produced, 'produced = stored + lost');
  });

  it("/healthz answers while an agent's flows are stored (figures printed)", async () => {
    const data = dataDir();
    const col = await collector(stack, { dataDir: data, log: new LogCapture().logger });
    let rows = 0;
    let figures = '';
    const r = await stream(col, data, async () => {
      rows = col.flows.rows();
      const health = new HealthPoller(col, { token: col.adminToken, agent: keepAlive(stack) });
      const loop = loopDelay();
      await new Promise((res) => setTimeout(res, 3_000));
      const d = loop.stop();
      const h = await health.stop();
      assert.deepEqual(health.failures, []);
      assert.ok(h.answered >= 2, `/healthz answered ${h.answered} times`);
      rows = col.flows.rows() - rows;
      figures = `/healthz answered ${h.answered} times in 3 s, slowest ${h.maxMs.toFixed(1)} ms; event-loop delay p99 ${d.p99.toFixed(1)} / max ${d.max.toFixed(1)} ms; ${rows} flows stored meanwhile`;
    });
    console.log(`      ${figures} (produced ${r.produced}, lost ${r.lost})`);
    assert.ok(rows > 0, 'flows were stored while /healthz was asked');
    assert.equal(r.stored.size + r.lost, r.produced, 'produced = stored + lost');
  });
});
