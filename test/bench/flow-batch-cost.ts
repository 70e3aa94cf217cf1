/**
 * Figures (not a test): the flow store's CPU per flow by batch size, with its writes in this
 * thread (FlowStore.open) and in the collector's writer thread (openWithWriterThread), batches
 * paced as agents send them at a low rate (an agent flushes every 100 ms: at 1,000 flows/s, two
 * agents send 50-flow batches). CPU per thread from /proc (test/bench/loop/thread-cpu.ts).
 * Run: node [--cpu-prof] dist/test/bench/flow-batch-cost.js [flows per run, default 10000] [flows/s, default 2000]
 *        [batch sizes, default 10,50,100,500] [both|thread|here, default both]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { FlowStore } from '../../collector/flows/store';
import { realisticFlow } from './flow-ingest';
import { threadCpu, threadCpuSince } from './loop/thread-cpu';

const silent = pino({ level: 'silent' });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function run(threaded: boolean, batch: number, total: number, rate: number): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-batch-cost-'));
  const opts = { file: path.join(dir, 'flows.db'), log: silent };
  const store = threaded ? await FlowStore.openWithWriterThread(opts) : FlowStore.open(opts);
  try {
    const intervalMs = (batch * 1000) / rate;
    const start = Date.now();
    const cpu0 = threadCpu();
    const t0 = process.hrtime.bigint();
    for (let seq = 1, i = 0; i < total; seq++) {
      const flows = [];
      for (let k = 0; k < batch; k++, i++) flows.push(realisticFlow(i, 'node-a', Date.now()));
      await store.ingest('node-a', { session: 's1', seq, lost: 0, flows });
      const due = start + seq * intervalMs;
      if (due > Date.now()) await sleep(due - Date.now());
    }
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = threadCpuSince(cpu0);
    const main = cpu.get('MainThread') ?? 0;
    const writer = cpu.get('flow-writer') ?? 0;
    const v8 = cpu.get('V8Worker') ?? 0;
    const us = (s: number): string => ((s * 1e6) / total).toFixed(0).padStart(4);
    return `${threaded ? 'writer thread' : 'this thread  '} batch ${String(batch).padStart(4)}: ${elapsed.toFixed(1)} s, µs per flow: main ${us(main)} + writer ${us(writer)} + V8 platform ${us(v8)} = ${us(main + writer + v8)}`;
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 10_000);
  const rate = Number(process.argv[3] ?? 2_000);
  console.log(`flow store CPU per flow by batch size: node ${process.version}, ${total} flows per run at ${rate} flows/s, load ${os.loadavg()[0]!.toFixed(1)} (/proc clock ticks: 10 ms resolution)`);
  const sizes = (process.argv[4] ?? '10,50,100,500').split(',').map(Number);
  const where = process.argv[5] ?? 'both';
  const modes = where === 'thread' ? [true] : where === 'here' ? [false] : [false, true];
  for (const batch of sizes) {
    for (const threaded of modes) console.log(await run(threaded, batch, total, rate));
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  },
);
