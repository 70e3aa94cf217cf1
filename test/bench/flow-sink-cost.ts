/**
 * Figures for the OTLP flow sink (not a test): what it costs the collector's ingest. The same
 * realistic flows go through FlowStore.ingest in batches of 500, yielding to the event loop
 * between batches as a collector does between agent frames, once with no sink and once with an
 * OTLP sink POSTing to a receiver in another process (it reads and discards the bodies); each run
 * ends when every flow is stored (and delivered). Two inputs: `records`, the batches' records
 * built before the clock starts (the store alone), and `frames`, each batch parsed from its JSON
 * frame inside the run, as an agent session does (records then live only as long as ingest keeps
 * them, as in a collector). Reported: flows/s and this process's CPU per flow, and the encoder
 * alone. The issue's budget: the sink costs <= 20 % of the ingest rate.
 * Run: node dist/test/bench/flow-sink-cost.js [flows, default 200000] [records|frames|both, default both]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { FlowStore } from '../../collector/flows/store';
import { FlowLogEncoder } from '../../collector/sinks/otlp-logs';
import { parseSinkSpec } from '../../collector/sinks/sink-spec';
import { FlowSinks } from '../../collector/sinks/sinks';
import type { FlowRecord } from '../../common/flow';
import { realisticFlow } from './flow-ingest';

const BATCH = 500;
const silent = pino({ level: 'silent' });
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

const RECEIVER = `require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => s.end()); })
  .listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;

function batches(total: number): FlowRecord[][] {
  const out: FlowRecord[][] = [];
  const start = Date.now() - total;
  for (let i = 0; i < total; i += BATCH) out.push(Array.from({ length: Math.min(BATCH, total - i) }, (_, j) => realisticFlow(i + j, 'node-a', start + i + j)));
  return out;
}

let runs = 0;

type Input = { kind: 'records'; batches: FlowRecord[][] } | { kind: 'frames'; frames: string[] };

const batchAt = (input: Input, i: number): FlowRecord[] => (input.kind === 'records' ? input.batches[i]! : (JSON.parse(input.frames[i]!) as { flows: FlowRecord[] }).flows);
const batchCount = (input: Input): number => (input.kind === 'records' ? input.batches.length : input.frames.length);

function frames(total: number): string[] {
  return batches(total).map((flows, i) => JSON.stringify({ type: 'flows', session: 'bench', seq: i + 1, lost: 0, flows }));
}

async function run(dir: string, input: Input, total: number, receiver: string | undefined): Promise<{ seconds: number; cpuUs: number }> {
  const file = path.join(dir, `flows-${++runs}.db`);
  const store = FlowStore.open({ file, log: silent, retentionIntervalMs: 3_600_000 });
  const sinks = new FlowSinks(receiver ? [parseSinkSpec(`otlp=${receiver}`)] : [], { log: silent, trustDomain: 'cluster.local', otlp: { maxBuffered: total } });
  store.onStored(sinks.onStored);
  const cpu = process.cpuUsage();
  const t = process.hrtime.bigint();
  for (let i = 0, n = batchCount(input); i < n; i++) {
    store.ingest('node-a', { session: 'bench', seq: i + 1, lost: 0, flows: batchAt(input, i) });
    await turn();
  }
  while (receiver && Object.values(sinks.counts())[0]!.delivered < total) await new Promise((r) => setTimeout(r, 1));
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const used = process.cpuUsage(cpu);
  const c = Object.values(sinks.counts())[0];
  if (c && (c.delivered !== total || c.lost !== 0)) throw new Error(`sink did not deliver everything: ${JSON.stringify(c)}`);
  await sinks.close();
  await store.close();
  for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
  return { seconds, cpuUs: used.user + used.system };
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 200_000);
  const modes = process.argv[3] === 'records' || process.argv[3] === 'frames' ? [process.argv[3]] : ['records', 'frames'];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-sink-bench-'));
  const rx = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<string>((resolve) => rx.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
    const receiver = `http://127.0.0.1:${port}`;
    const records = batches(total);
    const enc = new FlowLogEncoder({ 'service.name': 'palisade-collector' });
    enc.records(records[0]!);
    const e = process.cpuUsage();
    let bytes = 0;
    for (const b of records) bytes += enc.records(b).bytes.byteLength;
    const used = process.cpuUsage(e);
    console.log(`encode alone (as the sink does, per stored batch): CPU ${((used.user + used.system) / total).toFixed(2)} us/flow, ${fmt(bytes / total)} B/flow of protobuf`);
    for (const mode of modes) {
      const input: Input = mode === 'records' ? { kind: 'records', batches: records } : { kind: 'frames', frames: frames(total) };
      const warm: Input = mode === 'records' ? { kind: 'records', batches: batches(2000) } : { kind: 'frames', frames: frames(2000) };
      await run(dir, warm, 2000, undefined);
      await run(dir, warm, 2000, receiver);
      const results: Array<[string, { seconds: number; cpuUs: number }]> = [];
      for (let round = 0; round < 2; round++) {
        results.push(['no sink', await run(dir, input, total, undefined)]);
        results.push(['OTLP sink', await run(dir, input, total, receiver)]);
      }
      console.log(`input ${mode}:`);
      for (const [what, r] of results) {
        console.log(`  ${what}: ${fmt(total)} flows in ${r.seconds.toFixed(2)} s = ${fmt(total / r.seconds)} flows/s, CPU ${(r.cpuUs / total).toFixed(2)} us/flow`);
      }
      const rate = (w: string): number => Math.max(...results.filter(([x]) => x === w).map(([, r]) => total / r.seconds));
      const cpu = (w: string): number => Math.min(...results.filter(([x]) => x === w).map(([, r]) => r.cpuUs / total));
      console.log(`  best of 2: ingest rate with the sink ${((1 - rate('OTLP sink') / rate('no sink')) * 100).toFixed(1)} % lower; CPU per flow ${((cpu('OTLP sink') / cpu('no sink') - 1) * 100).toFixed(1)} % higher (budget: 20 %)`);
    }
  } finally {
    rx.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
