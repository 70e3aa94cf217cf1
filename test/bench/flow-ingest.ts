/**
 * Figures for the collector's flow store (not a test): flows/s through FlowStore.ingest in
 * batches of 500, the database size on disk per million flows, a few query timings, and the same
 * ingest once more through a real agent WebSocket session (TLS, parseMessage, acks).
 * Run: node dist/test/bench/flow-ingest.js [flows, default 500000] [websocket flows, default 100000]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import type { FlowRecord } from '../../common/flow';
import { encodeMessage } from '../../common/mesh-protocol';
import { FlowStore } from '../../collector/flows/store';
import { collector, joinedNodeDir, opened, rawNodeSocket, Stack, TempDirs } from '../integration/collector/helpers';
import { microsPerFlow, threadCpu, threadCpuSince } from './loop/thread-cpu';

const BATCH = 500;
const silent = pino({ level: 'silent' });

const APPS = ['web', 'api', 'cart', 'checkout', 'payments', 'inventory', 'search', 'reviews', 'auth', 'db', 'cache', 'mail'];
const NAMESPACES = ['shop', 'ops', 'default'];
const PATHS = ['/api/v1/orders', '/api/v1/cart/items', '/healthz', '/api/v1/search', '/login', '/static/app.js'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];

/** A deterministic, realistic flow: mostly allowed HTTP between mesh workloads, some TCP/TLS egress and denials. */
export function realisticFlow(i: number, node: string, timeMs: number): FlowRecord {
  const src = APPS[i % APPS.length];
  const dst = APPS[(i * 7 + 3) % APPS.length];
  const ns = NAMESPACES[i % NAMESPACES.length];
  const kind = i % 10;
  const denied = i % 23 === 0;
  const base: FlowRecord = {
    time: new Date(timeMs).toISOString(),
    node,
    direction: kind < 6 ? 'outbound' : kind < 9 ? 'inbound' : 'egress',
    source: { ip: `10.1.${(i >> 8) & 255}.${i & 255}`, port: 30000 + (i % 30000), workload: src, namespace: ns, identity: `spiffe://cluster.local/ns/${ns}/sa/${src}` },
    destination: { ip: `10.2.0.${i % 200}`, port: 8080, workload: dst, namespace: ns, identity: `spiffe://cluster.local/ns/${ns}/sa/${dst}` },
    protocol: kind < 7 ? 'http' : kind < 9 ? 'tcp' : 'tls',
    verdict: denied ? 'denied' : i % 97 === 0 ? 'audit' : 'allowed',
    reason: denied ? 'denied-by-policy' : 'allowed-by-policy',
    policy: `${ns}/allow-${dst}`,
    rule: i % 3,
    mtls: kind < 9,
    bytesSent: 200 + (i % 5000),
    bytesReceived: 1000 + ((i * 13) % 50_000),
    durationMs: i % 250,
  };
  if (base.protocol === 'http') base.http = { method: METHODS[i % METHODS.length], path: `${PATHS[i % PATHS.length]}/${i % 1000}`, status: denied ? 403 : 200 };
  if (kind === 9) base.destination = { ip: `93.184.${i % 256}.34`, port: 443, host: 'api.example.com' };
  return base;
}

function makeBatches(total: number, node: string, startMs: number): FlowRecord[][] {
  const batches: FlowRecord[][] = [];
  for (let i = 0; i < total; i += BATCH) {
    const b: FlowRecord[] = [];
    for (let j = i; j < Math.min(total, i + BATCH); j++) b.push(realisticFlow(j, node, startMs + j));
    batches.push(b);
  }
  return batches;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function time<T>(fn: () => T): { ms: number; value: T } {
  const t = process.hrtime.bigint();
  const value = fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

async function storeBench(dir: string, total: number): Promise<void> {
  const file = path.join(dir, 'flows.db');
  const store = FlowStore.open({ file, log: silent, retentionIntervalMs: 3_600_000 });
  const startMs = Date.now() - total;
  const batches = makeBatches(total, 'node-a', startMs);
  const t = process.hrtime.bigint();
  const cpu0 = threadCpu();
  batches.forEach((flows, i) => store.ingest('node-a', { session: 'bench', seq: i + 1, lost: 0, flows }));
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const cpu = threadCpuSince(cpu0);
  const fileBytes = store.fileBytes();
  const used = store.bytes();
  console.log(`store.ingest: ${fmt(total)} flows in batches of ${BATCH}: ${seconds.toFixed(2)} s, ${fmt(total / seconds)} flows/s`);
  console.log(`  CPU µs per flow (writes in this thread): ${microsPerFlow(cpu, total)} (load ${os.loadavg()[0]!.toFixed(1)})`);
  console.log(`  on disk: ${(fileBytes / 2 ** 20).toFixed(1)} MiB (db + wal), ${(used / 2 ** 20).toFixed(1)} MiB in use = ${fmt((used / total) * 1e6 / 2 ** 20)} MiB per million flows (${fmt(used / total)} B/flow)`);
  const queries: Array<[string, Parameters<FlowStore['queryJson']>[0]]> = [
    ['newest 100', {}],
    ['from=web, 100', { from: 'web' }],
    ['to=shop/db, 1000', { to: 'shop/db', limit: 1000 }],
    ['verdict=denied, 10000', { verdict: 'denied', limit: 10_000 }],
    ['httpPath=/login*, 100', { httpPath: '/login*' }],
    ['from=10.1.3.7 (no index), 100', { from: '10.1.3.7' }],
  ];
  for (const [what, f] of queries) {
    store.queryJson(f);
    const r = time(() => store.queryJson(f));
    console.log(`  query ${what}: ${r.ms.toFixed(1)} ms (${r.value.length} flows)`);
  }
  const s = time(() => store.stats());
  console.log(`  stats: ${s.ms.toFixed(2)} ms`);
  await store.close();
}

async function websocketBench(total: number): Promise<void> {
  const dirs = new TempDirs();
  const stack = new Stack();
  try {
    const data = dirs.make();
    const col = await collector(stack, { dataDir: data, log: silent, flowRetentionIntervalMs: 3_600_000 });
    const agentDir = await joinedNodeDir(dirs, col, data, 'node-a');
    const ws = rawNodeSocket(stack, col.url, col.ca.certPem, agentDir);
    await opened(ws);
    ws.send(encodeMessage({ type: 'hello', node: 'node-a', nodeAddress: '192.168.50.1', agentVersion: 'bench' }));
    const frames = makeBatches(total, 'node-a', Date.now() - total).map((flows, i) =>
      encodeMessage({ type: 'flows', session: 'bench', seq: i + 1, lost: 0, flows }),
    );
    const window = 8;
    const t = process.hrtime.bigint();
    const cpu0 = threadCpu();
    await new Promise<void>((resolve, reject) => {
      let sent = 0;
      let acked = 0;
      const pump = (): void => {
        while (sent < frames.length && sent - acked < window) ws.send(frames[sent++]);
      };
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { type: string; seq?: number; message?: string };
        if (m.type === 'error') return reject(new Error(m.message));
        if (m.type !== 'flows-ack') return;
        acked = m.seq ?? acked;
        if (acked === frames.length) resolve();
        else pump();
      });
      ws.on('close', () => reject(new Error('session closed')));
      pump();
    });
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    const cpu = threadCpuSince(cpu0);
    console.log(`websocket session: ${fmt(total)} flows in frames of ${BATCH} (8 unacknowledged at most): ${seconds.toFixed(2)} s, ${fmt(total / seconds)} flows/s`);
    console.log(`  CPU µs per flow (MainThread is the agent's side too): ${microsPerFlow(cpu, total)} (load ${os.loadavg()[0]!.toFixed(1)})`);
    console.log(`  stored: ${fmt(col.flows.rows())}`);
  } finally {
    await stack.unwind();
    dirs.cleanup();
  }
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 500_000);
  const wsTotal = Number(process.argv[3] ?? 100_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-flow-bench-'));
  console.log(`flow store bench on ${os.cpus().length} CPUs, node ${process.version}`);
  try {
    await storeBench(dir, total);
    if (wsTotal > 0) await websocketBench(wsTotal);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
