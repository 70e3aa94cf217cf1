/**
 * CPU time of this process's threads by thread name (/proc/self/task/<tid>/comm and stat,
 * utime + stime in clock ticks): which thread of a bench process spent it. Node names its main
 * thread `MainThread`, a worker the `name` it was given, V8's platform threads `V8Worker`.
 */
import * as fs from 'node:fs';

/** Linux's USER_HZ: /proc's clock ticks per second. */
const TICKS_PER_S = 100;

export type ThreadCpu = Map<string, number>;

/** Seconds of CPU per thread name (threads that ended are not counted). */
export function threadCpu(): ThreadCpu {
  const out: ThreadCpu = new Map();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const name = fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      const s = statCpu(`/proc/self/task/${tid}/stat`);
      out.set(name, (out.get(name) ?? 0) + s);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** What each thread name spent since `before`. */
export function threadCpuSince(before: ThreadCpu): ThreadCpu {
  const out: ThreadCpu = new Map();
  for (const [name, s] of threadCpu()) out.set(name, s - (before.get(name) ?? 0));
  return out;
}

/**
 * µs of CPU per flow stored of the collector's threads that handle flows — its event loop
 * (MainThread: the sessions, frames, acks), the flow writer thread and V8's helper threads (GC) —
 * and their sum, e.g. `MainThread 7.1 + flow-writer 25.3 + V8Worker 3.9 = 36.3`.
 */
export function microsPerFlow(cpu: ThreadCpu, stored: number): string {
  const names = ['MainThread', 'flow-writer', 'V8Worker'];
  const us = names.map((n) => ((cpu.get(n) ?? 0) * 1e6) / stored);
  return `${names.map((n, i) => `${n} ${us[i]!.toFixed(1)}`).join(' + ')} = ${us.reduce((a, b) => a + b, 0).toFixed(1)}`;
}

/** Seconds of CPU another process (every thread of it) has used. */
export function processCpu(pid: number): number {
  return statCpu(`/proc/${pid}/stat`);
}

/** utime + stime of a /proc stat file, in seconds. */
function statCpu(file: string): number {
  const stat = fs.readFileSync(file, 'utf8');
  // fields after the parenthesized name: state is field 3, utime 14, stime 15
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_S;
}
