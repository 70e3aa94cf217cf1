/** The C load generator (bench/loadgen/loadgen.c): built when missing or stale, run inside a pod. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Topology } from '../../harness';
import type { PathTarget } from './stack';

export interface LoadgenResult {
  mode: string;
  conns: number;
  target_rate: number;
  duration_s: number;
  requests: number;
  ok: number;
  status: Record<'2xx' | '3xx' | '4xx' | '5xx' | 'other', number>;
  errors: number;
  timeouts: number;
  connect_errors: number;
  reconnects: number;
  /** sat and conn: requests unanswered at the end, sent over a second before (warm-up ones too) */
  stalled?: number;
  /** each stalled request's connection: its local port (0: unknown), how long it waited, what of it went and came */
  stalled_conns?: Array<{ port: number; waited_s: number; request_bytes_sent: number; response_head_bytes: number; connecting: number }>;
  rps: number;
  body_bytes: number;
  gbit_s: number;
  latency_us: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  send_lag_us: { p50: number; p99: number; max: number };
  cpu_usec: number[];
}

export interface Workload {
  /** key in the results */
  id: string;
  title: string;
  /** for the table's first column */
  short: string;
  mode: 'rate' | 'sat' | 'conn' | 'bulk';
  conns: number;
  rate?: number;
  path: string;
  warmupS: number;
  durationS: number;
}

/** The repository root (holds bench/loadgen/loadgen.c), from dist/test/bench/data-plane or test/bench/data-plane. */
export function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'bench', 'loadgen', 'loadgen.c'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`bench/loadgen/loadgen.c not found above ${__dirname}`);
  }
}

/** The same command as the Makefile's rule for dist/bench/loadgen. */
export function ensureLoadgen(): string {
  const root = repoRoot();
  const src = path.join(root, 'bench', 'loadgen', 'loadgen.c');
  const bin = path.join(root, 'dist', 'bench', 'loadgen');
  const stale = !fs.existsSync(bin) || fs.statSync(bin).mtimeMs < fs.statSync(src).mtimeMs;
  if (stale) {
    fs.mkdirSync(path.dirname(bin), { recursive: true });
    execFileSync('clang', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', bin, src, '-lm'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120_000 });
  }
  return bin;
}

export async function runLoadgen(topo: Topology, bin: string, target: PathTarget, w: Workload, cpuStats: string[]): Promise<LoadgenResult> {
  const args = ['--mode', w.mode, '--host', target.host, '--port', String(target.port), '--path', w.path, '--conns', String(w.conns)];
  args.push('--duration', String(w.durationS), '--warmup', String(w.warmupS), '--timeout', '5');
  if (w.rate) args.push('--rate', String(w.rate));
  for (const f of cpuStats) args.push('--cpu-stat', f);
  const r = await topo.exec(target.pod, bin, args, { timeoutMs: (w.warmupS + w.durationS + 30) * 1000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) {
    throw new Error(`loadgen ${args.join(' ')} in ${target.pod.name} failed (${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}): ${r.stderr.trim()} ${r.stdout.trim()}`);
  }
  return JSON.parse(line) as LoadgenResult;
}
