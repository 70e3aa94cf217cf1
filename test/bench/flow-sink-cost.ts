/**
 * Figures for the OTLP flow sink (not a test): what it costs the collector's ingest. The same
 * realistic flows go through FlowStore.ingest in batches of 500, yielding to the event loop
 * between batches as a collector does between agent frames, once with no sink and once with an
 * OTLP sink POSTing to a receiver in another process (it reads and discards the bodies); each run
 * ends when every flow is stored (and delivered). Two inputs: `records`, the batches' records
 * (and the frames they came in, which the sink reads) built before the clock starts (the store
 * alone), and `frames`, each batch parsed from its JSON frame inside the run, as an agent session
 * does (records then live only as long as ingest keeps them, as in a collector). As in a running
 * collector, a listener reads every stored flow in both runs (the denied-flow summarizer's loop), and
 * the sink's thread is started and warm (20 frames, 10,000 flows, delivered: V8 has compiled its
 * code) before the clock starts: its start-up (module loading, compiling, connecting) is once per
 * collector, not per flow. In both inputs the sink gets the same frames and does the same work;
 * `records` only makes the collector's own part smaller (no JSON.parse), so the same sink cost is
 * a bigger share of it. The receiver runs in a session of its own (with autogroup scheduling, a
 * loaded machine's CPU is shared between sessions: in the bench's it would take the collector's).
 * Reported: flows/s, this process's CPU per flow and by thread (the collector's, the sink's,
 * others: V8's and libuv's), the receiver's, the load average, and the encoder alone (what the
 * worker does per flow); for a sink run, when the last batch was stored and how long the sink then
 * took to deliver what it still held (an output added in 2026-12, the run and its end unchanged: a
 * sink that keeps up has little left). A third input, `wire` (added 2026-12), is a collector's own
 * path since flows frames are parsed and stored in the writer thread: the store opened with its
 * writer thread, each frame handed to `ingestFrame` as a session does (its envelope read here, the
 * records parsed in the thread), at most 8 frames waiting at once (an agent's window); the run
 * ends when every frame is committed (and delivered). The issue's budget: the sink costs <= 20 % of
 * the ingest rate.
 * Run: node dist/test/bench/flow-sink-cost.js [flows, default 200000] [records|frames|wire|all, default all]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { countRecords, flowsEnvelope } from '../../collector/flows/flows-frame';
import { FlowStore } from '../../collector/flows/store';
import { FlowLogEncoder } from '../../collector/sinks/otlp-logs';
import { parseSinkSpec } from '../../collector/sinks/sink-spec';
import { FlowSinks } from '../../collector/sinks/sinks';
import type { FlowRecord } from '../../common/flow';
import { realisticFlow } from './flow-ingest';
import { processCpu, threadCpu, threadCpuSince } from './loop/thread-cpu';

const BATCH = 500;
/** Rounds of (no sink, sink), interleaved: the machine's load moves between them. */
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
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
/** Frames the sink's thread delivers before the clock starts (WARM_FRAMES=2: the bench before 2026-12). */
const WARM_FRAMES = Number(process.env.WARM_FRAMES ?? 20);
/** The sink's worker thread's name (collector/sinks/sink-worker.ts). */
const SINK_THREAD = 'otlp-sink';

type Input = { kind: 'records'; batches: FlowRecord[][]; frames: Buffer[] } | { kind: 'frames' | 'wire'; frames: Buffer[] };
/** Frames a `wire` run lets wait for the writer thread at once: one agent's window (agent/flows/reporter.ts). */
const WIRE_WINDOW = 8;

const batchAt = (input: Input, i: number): FlowRecord[] => (input.kind === 'records' ? input.batches[i]! : (JSON.parse(input.frames[i]!.toString('utf8')) as { flows: FlowRecord[] }).flows);

function frames(records: FlowRecord[][]): Buffer[] {
  return records.map((flows, i) => Buffer.from(JSON.stringify({ type: 'flows', session: 'bench', seq: i + 1, lost: 0, flows })));
}

function input(kind: string, records: FlowRecord[][]): Input {
  return kind === 'records' ? { kind: 'records', batches: records, frames: frames(records) } : { kind: kind === 'wire' ? 'wire' : 'frames', frames: frames(records) };
}

/** The same frame from another agent session (`wire` warms up on its own session). */
function asSession(frame: Buffer, session: string): Buffer {
  return Buffer.from(frame.toString('utf8').replace('"session":"bench"', `"session":"${session}"`));
}

/** Feeds `frames` to `ingestFrame` with at most WIRE_WINDOW waiting; resolves when all are committed. */
async function ingestWire(store: FlowStore, frames: readonly Buffer[]): Promise<void> {
  const waiting: Array<Promise<void>> = [];
  for (const frame of frames) {
    if (waiting.length >= WIRE_WINDOW) await waiting.shift();
    const envelope = flowsEnvelope(frame);
    if (!envelope) throw new Error('a bench frame has no flows envelope');
    waiting.push(store.ingestFrame('node-a', envelope, frame, countRecords(frame)));
    await turn();
  }
  await Promise.all(waiting);
}

interface Result {
  seconds: number;
  /** when the last batch was stored (the rest of the run: the sink delivering what it still held) */
  storedSeconds: number;
  /** the whole process (the sink's thread included) */
  cpuUs: number;
  /** the collector's thread alone: what ingest competes with */
  loopUs: number;
  /** the sink's thread alone (0 without the sink) */
  sinkUs: number;
  /** the receiver process (the test's, not the collector's) */
  receiverUs: number;
  /** the machine's 1-minute load average as the run ended */
  load: number;
}

async function run(dir: string, input: Input, total: number, receiver: string | undefined, rxPid: number): Promise<Result> {
  const file = path.join(dir, `flows-${++runs}.db`);
  const wire = input.kind === 'wire';
  const storeOpts = { file, log: silent, retentionIntervalMs: 3_600_000 };
  const store = wire ? await FlowStore.openWithWriterThread(storeOpts) : FlowStore.open(storeOpts);
  const sinks = new FlowSinks(receiver ? [parseSinkSpec(`otlp=${receiver}`)] : [], { log: silent, trustDomain: 'cluster.local', otlp: { maxBuffered: total + 2 * BATCH } });
  store.onStored(sinks.onStored);
  // as in a collector, a listener reads every stored batch's denied flows (collector.ts's denied-flow summarizer)
  let denied = 0;
  store.onStored((batch) => {
    denied += batch.denied.length;
  });
  // as in a running collector, the sink's thread is up and warm before the clock starts: 20 frames
  // (10,000 flows) delivered, so that V8 has compiled its code (with 2, its compiler threads took
  // ~1.3 us per flow of a 100,000-flow run more: once per collector, not per flow)
  const warm = receiver ? Math.min(WARM_FRAMES, input.frames.length) : 0;
  if (wire) await ingestWire(store, input.frames.slice(0, warm).map((f) => asSession(f, 'warm')));
  else for (let i = 0; i < warm; i++) store.ingest('node-a', { session: 'warm', seq: i + 1, lost: 0, flows: batchAt(input, i) }, input.frames[i]);
  const warmFlows = warm === 0 ? 0 : Object.values(sinks.counts())[0]!.accepted;
  while (warm > 0 && Object.values(sinks.counts())[0]!.delivered < warmFlows) await new Promise((r) => setTimeout(r, 1));
  const cpu = process.cpuUsage();
  const loop = process.threadCpuUsage();
  const threads = threadCpu();
  const rx = processCpu(rxPid);
  const t = process.hrtime.bigint();
  if (wire) await ingestWire(store, input.frames);
  else
    for (let i = 0, n = input.frames.length; i < n; i++) {
      store.ingest('node-a', { session: 'bench', seq: i + 1, lost: 0, flows: batchAt(input, i) }, input.frames[i]);
      await turn();
    }
  const storedSeconds = Number(process.hrtime.bigint() - t) / 1e9;
  while (receiver && Object.values(sinks.counts())[0]!.delivered < total + warmFlows) await new Promise((r) => setTimeout(r, 1));
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const used = process.cpuUsage(cpu);
  const loopUsed = process.threadCpuUsage(loop);
  const sinkUs = (threadCpuSince(threads).get(SINK_THREAD) ?? 0) * 1e6;
  const receiverUs = (processCpu(rxPid) - rx) * 1e6;
  const c = Object.values(sinks.counts())[0];
  if (c && (c.delivered !== total + warmFlows || c.lost !== 0)) throw new Error(`sink did not deliver everything: ${JSON.stringify(c)}`);
  if (denied === 0) throw new Error('no denied flow was seen');
  if (store.rows() < total) throw new Error(`only ${store.rows()} of ${total} flows stored`);
  await sinks.close();
  await store.close();
  for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
  return { seconds, storedSeconds, cpuUs: used.user + used.system, loopUs: loopUsed.user + loopUsed.system, sinkUs, receiverUs, load: os.loadavg()[0]! };
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 200_000);
  const modes = ['records', 'frames', 'wire'].includes(process.argv[3] ?? '') ? [process.argv[3]!] : ['records', 'frames', 'wire'];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-sink-bench-'));
  // The receiver (the test's, standing in for an OpenTelemetry Collector on another machine) runs in
  // a session of its own: with the kernel's autogroup scheduling, a loaded machine shares its CPU
  // between sessions, so in the bench's session it would take its CPU out of the collector's share.
  // RECEIVER_SESSION=shared keeps it in the bench's session (the harness before 2026-12).
  const ownSession = process.env.RECEIVER_SESSION !== 'shared';
  const rx = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'], detached: ownSession });
  console.log(
    `receiver: reads and discards each request's body (no decode), in ${ownSession ? 'a session of its own (a harness change: its CPU is not taken from the collector\'s autogroup share)' : "the bench's session (RECEIVER_SESSION=shared)"}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  );
  try {
    const port = await new Promise<string>((resolve) => rx.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
    const receiver = `http://127.0.0.1:${port}`;
    const records = batches(total);
    const enc = new FlowLogEncoder({ 'service.name': 'palisade-collector' });
    const pieces = frames(records).map((frame, i) => ({ frame, skip: 0, count: records[i]!.length, storedMs: Date.now() }));
    const encodeBatch = (batch: typeof pieces): number => {
      enc.begin();
      for (const p of batch) enc.piece(p);
      return enc.request().reduce((n, b) => n + b.byteLength, 0);
    };
    encodeBatch(pieces.slice(0, 2));
    const e = process.cpuUsage();
    let bytes = 0;
    // two frames a batch, as the sink cuts them (1000 flows)
    for (let i = 0; i < pieces.length; i += 2) bytes += encodeBatch(pieces.slice(i, i + 2));
    const used = process.cpuUsage(e);
    console.log(`encode alone (as the sink's thread does, from the frames): CPU ${((used.user + used.system) / total).toFixed(2)} us/flow, ${fmt(bytes / total)} B/flow of protobuf`);
    for (const mode of modes) {
      const input_ = input(mode, records);
      const warm = input(mode, batches(2000));
      await run(dir, warm, 2000, undefined, rx.pid!);
      await run(dir, warm, 2000, receiver, rx.pid!);
      const results: Array<[string, Result]> = [];
      for (let round = 0; round < ROUNDS; round++) {
        results.push(['no sink', await run(dir, input_, total, undefined, rx.pid!)]);
        results.push(['OTLP sink', await run(dir, input_, total, receiver, rx.pid!)]);
      }
      console.log(`input ${mode}:`);
      for (const [what, r] of results) {
        console.log(`  ${what}: ${fmt(total)} flows in ${r.seconds.toFixed(2)} s = ${fmt(total / r.seconds)} flows/s${r.seconds > r.storedSeconds + 0.005 ? ` (all stored at ${r.storedSeconds.toFixed(2)} s, then ${(r.seconds - r.storedSeconds).toFixed(2)} s delivering)` : ''}, CPU ${(r.cpuUs / total).toFixed(2)} us/flow (collector thread ${(r.loopUs / total).toFixed(2)}, sink thread ${(r.sinkUs / total).toFixed(2)}, others ${((r.cpuUs - r.loopUs - r.sinkUs) / total).toFixed(2)}; receiver process ${(r.receiverUs / total).toFixed(2)}), load ${r.load.toFixed(1)}`);
      }
      const of = (w: string, f: (r: Result) => number): number[] => results.filter(([x]) => x === w).map(([, r]) => f(r));
      const rate = (w: string): number => median(of(w, (r) => total / r.seconds));
      const cpu = (w: string): number => median(of(w, (r) => r.cpuUs / total));
      const loop = (w: string): number => median(of(w, (r) => r.loopUs / total));
      const pct = (a: number, b: number): string => ((a / b - 1) * 100).toFixed(1);
      console.log(
        `  median of ${ROUNDS}: ingest rate with the sink ${((1 - rate('OTLP sink') / rate('no sink')) * 100).toFixed(1)} % lower (budget: 20 %); ` +
          `CPU per flow ${pct(cpu('OTLP sink'), cpu('no sink'))} % higher, on the collector's thread ${pct(loop('OTLP sink'), loop('no sink'))} % higher`,
      );
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
