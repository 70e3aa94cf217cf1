/**
 * The CPU budget of each proxy process: a cgroup of its own with a CFS quota of one core.
 * cgroup v1's `cpu` controller when it is mounted (hybrid hosts), else cgroup v2's cpu.max
 * when the controller can be enabled on the bench's subtree, else none (said in the output).
 * Accounting (usage_usec) always comes from the proxy's own cgroup v2 cpu.stat.
 *
 * Each v1 budget cgroup is a direct child of the v1 root with the scheduler weight of one
 * task at the bench's own nice level, so a proxy competes for the CPU exactly like the load
 * generator and nginx (plain tasks of the bench) do: the budget caps it, never starves it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const BUDGET_CGROUP_RE = /^palisade-bench-(\d+)-/;
const PERIOD_US = 100_000;
/** The kernel's CFS weight of a task at nice -20..19 (sched_prio_to_weight). */
const NICE_WEIGHT = [
  88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904, 3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526,
  423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15,
];

export function weightOfNice(nice: number): number {
  return NICE_WEIGHT[Math.max(-20, Math.min(19, Math.trunc(nice))) + 20]!;
}

export interface Budget {
  /** how the quota is applied */
  kind: 'cgroup-v1-cpu' | 'cgroup-v2-cpu.max' | 'none';
  cores: number;
  /** v1: cpu.shares of each budget cgroup */
  shares?: number;
  /** a shell snippet-free way to join: the cgroup.procs file to write the pid into before exec (v1), if any */
  procsFile(proxy: string): string | undefined;
  /** nr_throttled / throttled time of a proxy's budget, when known */
  throttling(proxy: string): { periods: number; throttled: number; throttledMs: number } | undefined;
  /** remove the budget cgroups (processes must be gone); synchronous, never throws */
  removeSync(): void;
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount point of cgroup v1's cpu controller, from /proc/self/mountinfo. */
export function cgroupV1CpuMount(): string | undefined {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype, , superOpts] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup' || !superOpts) continue;
    if (superOpts.split(',').includes('cpu')) return unescapeMountPath(line.slice(0, sep).split(' ')[4]!);
  }
  return undefined;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function killAndRemoveSync(dir: string, timeoutMs = 2000): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || Date.now() > deadline) return;
      sleepSync(20);
    }
  }
}

function readKv(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v !== undefined) out[k] = Number(v);
    }
  } catch {
    /* unknown */
  }
  return out;
}

/**
 * One budget cgroup per proxy name. `v2Dirs` are the proxies' own cgroup v2 directories
 * (used for cpu.max when there is no v1 cpu controller).
 */
export function createBudget(label: string, proxies: string[], v2Dirs: Record<string, string>, cores = 1, nice = 0): Budget {
  const quota = String(Math.round(cores * PERIOD_US));
  const v1 = cgroupV1CpuMount();
  if (v1) {
    const dirs: Record<string, string> = {};
    const shares = weightOfNice(nice);
    for (const p of proxies) {
      const d = path.join(v1, `${label}-${p}`);
      fs.mkdirSync(d);
      dirs[p] = d;
      fs.writeFileSync(path.join(d, 'cpu.shares'), String(shares));
      fs.writeFileSync(path.join(d, 'cpu.cfs_period_us'), String(PERIOD_US));
      fs.writeFileSync(path.join(d, 'cpu.cfs_quota_us'), quota);
    }
    return {
      kind: 'cgroup-v1-cpu',
      cores,
      shares,
      procsFile: (p) => path.join(dirs[p]!, 'cgroup.procs'),
      throttling: (p) => {
        const s = readKv(path.join(dirs[p]!, 'cpu.stat'));
        return { periods: s.nr_periods ?? 0, throttled: s.nr_throttled ?? 0, throttledMs: Math.round((s.throttled_time ?? 0) / 1e6) };
      },
      removeSync: () => {
        for (const d of Object.values(dirs)) killAndRemoveSync(d);
      },
    };
  }
  // Pure cgroup v2: cpu.max on each proxy's own directory, if the controller can be enabled.
  try {
    for (const p of proxies) fs.writeFileSync(path.join(v2Dirs[p]!, 'cpu.max'), `${quota} ${PERIOD_US}`);
    return {
      kind: 'cgroup-v2-cpu.max',
      cores,
      procsFile: () => undefined,
      throttling: (p) => {
        const s = readKv(path.join(v2Dirs[p]!, 'cpu.stat'));
        return { periods: s.nr_periods ?? 0, throttled: s.nr_throttled ?? 0, throttledMs: Math.round((s.throttled_usec ?? 0) / 1e3) };
      },
      removeSync: () => undefined,
    };
  } catch {
    return { kind: 'none', cores: 0, procsFile: () => undefined, throttling: () => undefined, removeSync: () => undefined };
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove budget cgroups left by bench runs that died. Never throws. */
export function sweepStaleBudgets(): void {
  try {
    const v1 = cgroupV1CpuMount();
    if (!v1) return;
    for (const name of fs.readdirSync(v1)) {
      const m = BUDGET_CGROUP_RE.exec(name);
      if (!m || pidAlive(Number(m[1]))) continue;
      killAndRemoveSync(path.join(v1, name));
    }
  } catch {
    /* nothing to sweep */
  }
}

/** usage_usec of a cgroup v2 directory. */
export function cpuUsageUsec(v2Dir: string): number {
  return readKv(path.join(v2Dir, 'cpu.stat')).usage_usec ?? 0;
}
