/**
 * Preloaded into each agent by the memory-profile driver (`node --require …/sampler.js`): every
 * PALISADE_MEMPROF_MS (default 250) it appends one JSON line to PALISADE_MEMPROF_DIR/<pid>.jsonl
 * with process.memoryUsage(), V8's heap spaces and /proc/self/status RssAnon/RssFile, so the
 * JS-visible figures and the kernel's are sampled at the same instant. SIGUSR2 writes a heap
 * snapshot to the same directory. Does nothing without PALISADE_MEMPROF_DIR. The agent's re-exec
 * (agent/runtime/v8-flags.ts) keeps the pid and the preload, so one file per agent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';

const dir = process.env.PALISADE_MEMPROF_DIR;

function statusKb(text: string, field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN);
}

if (dir) {
  const file = path.join(dir, `${process.pid}.jsonl`);
  const every = Number(process.env.PALISADE_MEMPROF_MS ?? 250);
  const sample = (): void => {
    const m = process.memoryUsage();
    const st = fs.readFileSync('/proc/self/status', 'utf8');
    const spaces: Record<string, number> = {};
    for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.space_size;
    const line = { t: Date.now(), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, anonKb: statusKb(st, 'RssAnon'), fileKb: statusKb(st, 'RssFile'), spaces };
    fs.appendFileSync(file, `${JSON.stringify(line)}\n`);
  };
  setInterval(sample, every).unref();
  process.on('SIGUSR2', () => {
    v8.writeHeapSnapshot(path.join(dir, `${process.pid}-${Date.now()}.heapsnapshot`));
  });
}
