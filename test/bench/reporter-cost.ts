/**
 * Figures for the flow fan-out (not a test): ns per flow spent in `record()` — what the proxy pays
 * when a connection or request ends — with the reporter and the metrics behind it (access log
 * off), and each alone. The reporter writes each record as the collector's JSON in `record()`
 * (agent/flows/wire.ts); its flush then only joins strings and sends. Flows are recorded in chunks
 * of 1000 with the event loop turning in between, as under real load, so the flushes run too;
 * "background" is the wall time outside `record()` (flushes, acknowledgements, the 100 ms flush
 * timer's waits), per flow. The collector is a stand-in that acknowledges every batch.
 * Run: node dist/test/bench/reporter-cost.js [flows, default 1000000]
 */
import { EventEmitter } from 'node:events';
import { AccessLog } from '../../agent/flows/access-log';
import { FlowFanOut } from '../../agent/flows/fan-out';
import { FlowReporter, type FlowTransport } from '../../agent/flows/reporter';
import type { FlowBatch } from '../../agent/mesh/collector-client';
import { FlowMetrics } from '../../agent/metrics/flow-metrics';
import { flowRecord, type FlowRecord, type FlowSink } from '../../common/flow';
import { silentLogger } from '../../common/log';

const TOTAL = Number(process.argv[2] ?? 1_000_000);
const CHUNK = 1000;

/** 4096 records like the proxy's: 40 workloads in 4 namespaces; HTTP in, TCP out, egress, some refused. */
export function realisticFlows(): FlowRecord[] {
  const td = 'cluster.local';
  // Strings made once per workload and shared by its flows, as the proxy's come from Workload
  // and registry objects (a string built per flow would be hashed again at every Map lookup).
  const ws = Array.from({ length: 40 }, (_, i) => {
    const w = { name: `svc-${i}`, ns: `ns-${i % 4}`, ip: `10.0.${1 + (i % 3)}.${10 + i}` };
    return { ...w, identity: `spiffe://${td}/ns/${w.ns}/sa/${w.name}`, host: `${w.name}:8080`, policy: `${w.ns}/allow-${w.name}`, egress: `${w.ns}/egress` };
  });
  const paths = Array.from({ length: 500 }, (_, i) => `/api/v1/items/${i}`);
  const out: FlowRecord[] = [];
  for (let i = 0; i < 4096; i++) {
    const a = ws[i % 40]!;
    const b = ws[(i * 7 + 3) % 40]!;
    const src = { ip: a.ip, port: 30000 + (i % 30000), workload: a.name, namespace: a.ns, identity: a.identity };
    const dst = { ip: b.ip, port: 8080, workload: b.name, namespace: b.ns, identity: b.identity };
    const base = { time: new Date().toISOString(), node: 'node-1', bytesSent: (i * 131) % 5000, bytesReceived: (i * 977) % 200_000, mtls: true };
    const kind = i % 10;
    if (kind < 6) {
      const denied = i % 50 === 0;
      out.push({
        ...base,
        direction: 'inbound',
        source: src,
        destination: { ...dst, host: b.host },
        protocol: 'http',
        http: { method: i % 3 ? 'GET' : 'POST', path: paths[i % 500]!, status: denied ? 403 : i % 23 === 0 ? 500 : 200 },
        verdict: denied ? 'denied' : 'allowed',
        reason: denied ? 'denied-by-policy' : 'allowed-by-policy',
        policy: b.policy,
        rule: 0,
        durationMs: ((i * 37) % 4000) / 100,
      });
    } else if (kind < 9) {
      out.push({ ...base, direction: 'outbound', source: src, destination: dst, protocol: 'tcp', verdict: 'allowed', reason: 'tunnel-established', durationMs: (i * 13) % 60_000 });
    } else {
      const denied = i % 3 === 0;
      out.push({
        ...base,
        direction: 'egress',
        source: src,
        destination: { ip: '93.184.216.34', port: 443, host: denied ? 'blocked.example.test' : 'allowed.example.test' },
        protocol: 'tls',
        verdict: denied ? 'denied' : 'allowed',
        reason: denied ? 'host-not-allowed' : 'allowed-by-policy',
        policy: a.egress,
        mtls: false,
        durationMs: (i * 17) % 2000,
      });
    }
  }
  return out;
}

/** Connected, never backed up; acknowledges every batch on the next turn of the loop. */
class AckingCollector extends EventEmitter implements FlowTransport {
  connected = true;
  bufferedAmount = 0;
  bytes = 0;
  sendFlows(batch: FlowBatch): boolean {
    // What CollectorClient.sendFlows builds, minus the socket write.
    const frame = `{"type":"flows","session":${JSON.stringify(batch.session)},"seq":${batch.seq},"lost":${batch.lost},"flows":[${batch.flows.join(',')}]}`;
    this.bytes += Buffer.byteLength(frame);
    setImmediate(() => this.emit('flows-ack', { session: batch.session, seq: batch.seq }));
    return true;
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

async function run(label: string, make: () => { sink: FlowSink; reporter?: FlowReporter }, flows: FlowRecord[], total: number, print = true): Promise<void> {
  const { sink, reporter } = make();
  const collector = new AckingCollector();
  reporter?.start(collector);
  let recordNs = 0n;
  const wall0 = process.hrtime.bigint();
  for (let done = 0; done < total; done += CHUNK) {
    const t0 = process.hrtime.bigint();
    for (let i = done; i < done + CHUNK; i++) sink.record(flows[i & 4095]!);
    recordNs += process.hrtime.bigint() - t0;
    await turn();
  }
  if (reporter) {
    while (reporter.stats().buffered > 0) {
      reporter.flush();
      await turn();
    }
  }
  const wallNs = process.hrtime.bigint() - wall0;
  let line = `  ${label.padEnd(44)} record(): ${(Number(recordNs) / total).toFixed(0).padStart(5)} ns/flow`;
  if (reporter) {
    const s = reporter.stats();
    const background = (Number(wallNs - recordNs) / total).toFixed(0);
    line += `   background: ${background.padStart(5)} ns/flow   (sent ${s.sent}, acked ${s.acknowledged}, lost ${s.lost}, ${(collector.bytes / total).toFixed(0)} B/flow on the wire)`;
    reporter.close();
  }
  if (print) console.log(line);
}

async function main(): Promise<void> {
  const log = silentLogger();
  const spread = realisticFlows();
  // The same records as the proxy builds them: through flowRecord(), one fixed field order.
  const fixed = spread.map(({ time: _time, ...fields }) => flowRecord(fields));
  const byIp = new Map(spread.map((f) => [f.source.ip, { labels: { app: f.source.workload ?? '' } }]));
  const unlabeled = { byIp: (ip: string): { labels: Record<string, string> } | undefined => byIp.get(ip) };
  const cases: Array<[string, () => { sink: FlowSink; reporter?: FlowReporter }]> = [
    ['fan-out: reporter + metrics (access log off)', () => {
      const reporter = new FlowReporter({ log });
      return { sink: new FlowFanOut([new FlowMetrics(), reporter], log), reporter };
    }],
    ['reporter alone', () => {
      const reporter = new FlowReporter({ log });
      return { sink: reporter, reporter };
    }],
    ['metrics alone', () => ({ sink: new FlowMetrics() })],
    ['access log, labeled, no workload labeled', () => ({ sink: new AccessLog(log, { mode: 'labeled', workloads: unlabeled }) })],
  ];
  console.log(`${TOTAL} flows, chunks of ${CHUNK}, node ${process.version}`);
  for (const [shape, flows] of [
    ['records built with object spread (how the proxy built them before flowRecord(): one hidden class per record)', spread],
    ['records built by flowRecord(), as the proxy builds them', fixed],
  ] as const) {
    console.log(shape);
    for (const [label, make] of cases) {
      await run(label, make, flows, Math.min(TOTAL, 200_000), false); // warm-up
      await run(label, make, flows, TOTAL);
    }
  }
}

if (require.main === module) void main();
