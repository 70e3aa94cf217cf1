import { strict as assert } from 'node:assert';
import type { FlowRecord } from '../../../../common/flow';
import type { Logger } from '../../../../common/log';
import { RefusalLog, type Refusal } from '../../../../agent/proxy/refusals';

/** A logger stand-in that keeps each line's fields and message. */
function recordingLog(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string): void => void lines.push({ level, ...fields, msg });
  const log = { child: () => log, warn: at('warn'), info: at('info'), error: at('error'), debug: () => undefined };
  return { log: log as unknown as Logger, lines };
}

const CLIENT = { ip: '10.0.1.10', workload: 'client', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/client' };
const WEB = { ip: '10.0.1.11', port: 7000, workload: 'web', namespace: 'default' };

function refusal(over: { port?: number; dst?: string; dstPort?: number; src?: string; reason?: string; policy?: string } = {}): Refusal {
  return {
    route: {
      direction: 'inbound',
      source: { ...CLIENT, ip: over.src ?? CLIENT.ip, port: over.port ?? 40000 },
      destination: { ...WEB, ip: over.dst ?? WEB.ip, port: over.dstPort ?? WEB.port },
      protocol: 'tcp',
      mtls: false,
    },
    outcome: { verdict: 'denied', reason: over.reason ?? 'denied-by-policy', policy: over.policy ?? 'default/deny-client', rule: 0 },
    started: Date.now(),
    message: 'connection denied by policy',
  };
}

const countOf = (flows: FlowRecord[]): number => flows.reduce((n, f) => n + (f.count ?? 1), 0);

describe('RefusalLog', () => {
  let open: RefusalLog[] = [];
  const make = (maxKinds?: number): { refusals: RefusalLog; flows: FlowRecord[]; lines: Array<Record<string, unknown>> } => {
    const flows: FlowRecord[] = [];
    const { log, lines } = recordingLog();
    const refusals = new RefusalLog({ node: 'node-1', flows: { record: (f) => flows.push(f) }, log, intervalMs: 3_600_000, ...(maxKinds ? { maxKinds } : {}) });
    open.push(refusals);
    return { refusals, flows, lines };
  };
  afterEach(() => {
    for (const r of open) r.close();
    open = [];
  });

  it('a single refusal is one log line and one flow of its own, at once, as before; its interval adds nothing', () => {
    const { refusals, flows, lines } = make();
    refusals.refuse(refusal());
    assert.equal(lines.length, 1);
    assert.deepEqual([lines[0]!.event, lines[0]!.reason, lines[0]!.policy, lines[0]!.msg], ['refused', 'denied-by-policy', 'default/deny-client', 'connection denied by policy']);
    assert.equal(flows.length, 1);
    assert.deepEqual([flows[0]!.verdict, flows[0]!.reason, flows[0]!.source.port, flows[0]!.count], ['denied', 'denied-by-policy', 40000, undefined]);
    refusals.flush();
    assert.equal(lines.length, 1);
    assert.equal(flows.length, 1);
  });

  it('12,000 refusals of one kind (source ports differ) are 2 lines and 2 flows whose counts add up exactly', () => {
    const { refusals, flows, lines } = make();
    for (let i = 0; i < 12_000; i++) refusals.refuse(refusal({ port: 1024 + (i % 60_000) }));
    refusals.flush();
    assert.equal(lines.length, 2);
    assert.equal(flows.length, 2);
    assert.equal(countOf(flows), 12_000);
    const summary = flows[1]!;
    assert.deepEqual([summary.count, summary.source.port, summary.source.workload, summary.destination.port, summary.policy], [11_999, undefined, 'client', 7000, 'default/deny-client']);
    assert.deepEqual(lines[1]!.groups, [{ direction: 'inbound', source: 'default/client', reason: 'denied-by-policy', count: 12_000 }]);
    assert.deepEqual([lines[1]!.event, lines[1]!.refused, lines[1]!.summarized], ['refusals', 12_000, 11_999]);
  });

  it('logs and records the first of a kind again in the next interval', () => {
    const { refusals, flows, lines } = make();
    refusals.refuse(refusal());
    refusals.refuse(refusal());
    refusals.flush();
    refusals.refuse(refusal());
    assert.deepEqual(flows.map((f) => f.count), [undefined, 1, undefined]);
    assert.deepEqual(lines.map((l) => l.event), ['refused', 'refusals', 'refused']);
  });

  it('folds kinds past maxKinds into (source, reason) with destination *, then (reason) with source *, counting every one', () => {
    const { refusals, flows, lines } = make(4);
    // 4 kinds of their own, then 996 more destinations from 3 sources, then 500 from 500 sources
    for (let i = 0; i < 1000; i++) refusals.refuse(refusal({ dstPort: 1000 + i, src: `10.0.1.${10 + (i % 3)}` }));
    for (let i = 0; i < 500; i++) refusals.refuse(refusal({ src: `10.9.${i >> 8}.${i & 255}`, reason: 'no-original-destination' }));
    refusals.flush();
    assert.equal(countOf(flows), 1500);
    assert.equal(lines.filter((l) => l.event === 'refused').length, 4, 'only the kinds of their own are logged on their own');
    const folded = flows.filter((f) => f.destination.ip === '*');
    assert.ok(folded.length <= 4 + 1, `folded summaries are bounded: ${folded.length}`);
    assert.ok(folded.some((f) => f.source.ip === '*' && f.reason === 'no-original-destination'));
    assert.ok(flows.length <= 4 + 4 + 4 + 1, `flows per interval are bounded: ${flows.length}`);
    const line = lines.find((l) => l.event === 'refusals')!;
    assert.equal((line.groups as Array<{ count: number }>).reduce((n, g) => n + g.count, 0), 1500, 'the interval line adds up too');
  });

  it('counts every refusal by direction and reason, and records nothing after close', () => {
    const { refusals, flows } = make();
    refusals.refuse(refusal());
    refusals.refuse(refusal({ reason: 'pod-connection-limit', policy: '' }));
    refusals.refuse(refusal());
    refusals.close();
    refusals.refuse(refusal());
    assert.deepEqual(
      refusals.counts().map((c) => [c.direction, c.reason, c.count]),
      [['inbound', 'denied-by-policy', 2], ['inbound', 'pod-connection-limit', 1]],
    );
    assert.equal(countOf(flows), 3);
  });
});
