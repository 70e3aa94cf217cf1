/**
 * Where the agents' memory goes under the data-plane bench's own workloads (issue #17, memory):
 * the bench's stack (data-plane/stack.ts) and load generator, one path and a few workloads at a
 * time, each repeated, with both agents sampled from inside (memprof/sampler.ts, preloaded:
 * process.memoryUsage(), V8 heap spaces and RssAnon at the same instant).
 *
 *   node dist/test/bench/mem-profile.js [--path palisade-l7] [--workloads sat64,bulk] [--repeat 2]
 *        [--env MALLOC_ARENA_MAX=2] [--agent-flags="--max-semi-space-size=4"] [--trim]
 *        [--snapshot] [--settle-s 3] [--out DIR]
 *
 * --trim: after each workload settles, call glibc's malloc_trim(0) in each agent (gdb) and sample
 * again: what glibc holds but does not use. --snapshot: a heap snapshot of each agent in the
 * middle of the first run of each workload and after it. Not part of `make test`; root only.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs as parseCli } from 'node:util';
import { isRoot } from '../harness';
import { BULK_PATH, SMALL_PATH } from './data-plane/configs';
import { ensureLoadgen, runLoadgen, type Workload } from './data-plane/loadgen';
import { buildStack, PATHS, type PathName } from './data-plane/stack';

const AGENTS = ['agent-1', 'agent-2'] as const;
type Agent = (typeof AGENTS)[number];

/** The bench's workloads (data-plane.ts), at scale 1. */
const WORKLOADS: Workload[] = [
  { id: 'rate4', title: '1000 req/s, 4 conns', short: '1k req/s, 4 conns', mode: 'rate', conns: 4, rate: 1000, path: SMALL_PATH, warmupS: 1, durationS: 8 },
  { id: 'rate64', title: '1000 req/s, 64 conns', short: '1k req/s, 64 conns', mode: 'rate', conns: 64, rate: 1000, path: SMALL_PATH, warmupS: 1, durationS: 8 },
  { id: 'sat16', title: '16 conns', short: '16 conns', mode: 'sat', conns: 16, path: SMALL_PATH, warmupS: 0.5, durationS: 3 },
  { id: 'sat64', title: '64 conns', short: '64 conns', mode: 'sat', conns: 64, path: SMALL_PATH, warmupS: 0.5, durationS: 3 },
  { id: 'conn16', title: 'no keep-alive, 16 concurrent', short: 'no keep-alive, 16 at once', mode: 'conn', conns: 16, path: SMALL_PATH, warmupS: 0.5, durationS: 3 },
  { id: 'bulk', title: '1 connection, back-to-back GETs of a 1 GiB file', short: '1 conn, GETs of 1 GiB', mode: 'bulk', conns: 1, path: BULK_PATH, warmupS: 0.5, durationS: 3 },
];

interface Options {
  path: PathName;
  workloads: string[];
  repeat: number;
  env: Record<string, string>;
  agentFlags: string[];
  trim: boolean;
  snapshot: boolean;
  settleS: number;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const { values: v } = parseCli({
    args: argv,
    strict: true,
    options: {
      path: { type: 'string', default: 'palisade-l7' },
      workloads: { type: 'string', default: 'sat64,bulk' },
      repeat: { type: 'string', default: '2' },
      env: { type: 'string', multiple: true, default: [] },
      'agent-flags': { type: 'string', default: '' },
      trim: { type: 'boolean', default: false },
      snapshot: { type: 'boolean', default: false },
      'settle-s': { type: 'string', default: '3' },
      out: { type: 'string' },
    },
  });
  const o: Options = {
    path: v.path as PathName,
    workloads: v.workloads.split(','),
    repeat: Number(v.repeat),
    env: Object.fromEntries(v.env.map((kv) => [kv.split('=')[0]!, kv.split('=').slice(1).join('=')])),
    agentFlags: v['agent-flags'].split(/\s+/).filter(Boolean),
    trim: v.trim,
    snapshot: v.snapshot,
    settleS: Number(v['settle-s']),
    out: v.out ? path.resolve(v.out) : fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-memprof-')),
  };
  if (!PATHS.includes(o.path) || o.path === 'direct' || o.path === 'haproxy') throw new Error('--path: palisade-l4 or palisade-l7');
  for (const w of o.workloads) if (!WORKLOADS.some((x) => x.id === w)) throw new Error(`--workloads: unknown ${w}`);
  if (!Number.isInteger(o.repeat) || o.repeat < 1 || o.repeat > 10) throw new Error('--repeat: 1..10');
  return o;
}

interface Sample {
  t: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  anonKb: number;
  fileKb: number;
  spaces: Record<string, number>;
}

function readSamples(file: string): Sample[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Sample);
}

const mb = (bytes: number): number => Math.round(bytes / 104857.6) / 10;

/** Peak of each figure over [from, to], and the last sample in it. */
function phase(samples: Sample[], from: number, to: number): { peak: Record<string, number>; last: Record<string, number> } | undefined {
  const s = samples.filter((x) => x.t >= from && x.t <= to);
  if (s.length === 0) return undefined;
  const fig = (x: Sample): Record<string, number> => ({
    anon: Math.round(x.anonKb / 102.4) / 10,
    rss: mb(x.rss),
    heapUsed: mb(x.heapUsed),
    heapTotal: mb(x.heapTotal),
    external: mb(x.external),
    arrayBuffers: mb(x.arrayBuffers),
    newSpace: mb(x.spaces.new_space ?? 0),
    oldSpace: mb(x.spaces.old_space ?? 0),
    codeSpace: mb(x.spaces.code_space ?? 0),
    /** anonymous memory outside V8's heap and outside Buffers: malloc (OpenSSL, libuv, node), stacks */
    rest: Math.round((x.anonKb / 102.4 - (x.heapTotal + x.external) / 104857.6)) / 10,
  });
  const figs = s.map(fig);
  const peak: Record<string, number> = {};
  for (const f of figs) for (const [k, v] of Object.entries(f)) peak[k] = Math.max(peak[k] ?? -Infinity, v);
  return { peak, last: figs[figs.length - 1]! };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** glibc's malloc_trim(0) inside the process, through gdb (the process pauses for a moment). */
function mallocTrim(pid: number): string {
  try {
    const out = execFileSync('gdb', ['-p', String(pid), '-batch', '-nx', '-ex', 'call (int) malloc_trim(0)'], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return /\$1 = (\d+)/.exec(out)?.[1] ?? '?';
  } catch (err) {
    return `gdb failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const log = (line: string): void => void process.stderr.write(`[memprof] ${line}\n`);
  if (!isRoot()) throw new Error('needs root (network namespaces, eBPF, cgroups)');
  fs.mkdirSync(o.out, { recursive: true });
  // The agents inherit this environment (harness spawn merges process.env).
  Object.assign(process.env, o.env, { PALISADE_MEMPROF_DIR: o.out });
  os.setPriority(-10);
  const bin = ensureLoadgen();
  const sampler = path.join(__dirname, 'memprof', 'sampler.js');
  const stack = await buildStack({ bulkBytes: 1 << 30, agentNodeFlags: ['--require', sampler, ...o.agentFlags], log });
  const pid = (a: Agent): number => stack.proxies[a].child.pid!;
  const file = (a: Agent): string => path.join(o.out, `${pid(a)}.jsonl`);
  const rows: Array<Record<string, unknown>> = [];
  const record = (label: string, from: number, to: number, which: 'peak' | 'last'): void => {
    for (const a of AGENTS) {
      const p = phase(readSamples(file(a)), from, to);
      if (p) rows.push({ label, agent: a, which, ...p[which] });
    }
  };
  try {
    const target = stack.paths[o.path];
    await sleep(1500);
    record('idle', Date.now() - 1000, Date.now(), 'last');
    await runLoadgen(stack.topo, bin, target, { id: 'warm', title: 'warm-up', short: 'warm-up', mode: 'rate', conns: 16, rate: 1000, path: SMALL_PATH, warmupS: 0, durationS: 2 }, []);
    await sleep(o.settleS * 1000);
    record('after warm-up', Date.now() - 1000, Date.now(), 'last');
    for (const id of o.workloads) {
      const w = WORKLOADS.find((x) => x.id === id)!;
      for (let run = 1; run <= o.repeat; run++) {
        const t0 = Date.now();
        if (o.snapshot && run === 1) {
          const mid = (w.warmupS + w.durationS / 2) * 1000;
          setTimeout(() => AGENTS.forEach((a) => process.kill(pid(a), 'SIGUSR2')), mid).unref();
        }
        const r = await runLoadgen(stack.topo, bin, target, w, []);
        const t1 = Date.now();
        log(`${w.id} run ${run}: ${w.mode === 'bulk' ? `${r.gbit_s.toFixed(2)} Gbit/s` : `${r.rps.toFixed(0)} req/s`}, errors ${r.errors + r.timeouts + r.connect_errors}`);
        await sleep(o.settleS * 1000);
        record(`${w.id} #${run} load`, t0, t1 + 500, 'peak');
        record(`${w.id} #${run} after ${o.settleS}s`, Date.now() - 600, Date.now(), 'last');
        if (o.snapshot && run === 1) {
          AGENTS.forEach((a) => process.kill(pid(a), 'SIGUSR2'));
          await sleep(8000);
        }
        if (o.trim) {
          for (const a of AGENTS) log(`${a}: malloc_trim(0) -> ${mallocTrim(pid(a))}`);
          await sleep(1000);
          record(`${w.id} #${run} after trim`, Date.now() - 600, Date.now(), 'last');
        }
      }
    }
  } finally {
    await stack.teardown();
  }
  const cols = ['anon', 'rss', 'heapUsed', 'heapTotal', 'newSpace', 'oldSpace', 'codeSpace', 'external', 'arrayBuffers', 'rest'];
  const lines = [`path ${o.path}; env ${JSON.stringify(o.env)}; agent flags ${o.agentFlags.join(' ') || '(default)'}; MB`, ['phase'.padEnd(24), 'agent  ', 'kind', ...cols.map((c) => c.padStart(9))].join(' ')];
  for (const r of rows) lines.push([String(r.label).padEnd(24), String(r.agent), String(r.which).padEnd(4), ...cols.map((c) => String(r[c]).padStart(9))].join(' '));
  process.stdout.write(`${lines.join('\n')}\n`);
  fs.writeFileSync(path.join(o.out, 'table.txt'), `${lines.join('\n')}\n`);
  fs.writeFileSync(path.join(o.out, 'rows.json'), `${JSON.stringify({ options: o, rows }, null, 2)}\n`);
  log(`samples, snapshots and the table in ${o.out}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`[memprof] failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
