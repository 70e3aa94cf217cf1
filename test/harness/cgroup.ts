/** cgroup v2 helpers. The hierarchy is located via /proc/self/mountinfo, never hard-coded. */
import * as fs from 'fs';
import * as path from 'path';
import { scaled } from './time';

/** Undo the octal escaping (\040 etc.) mountinfo applies to paths. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount point of the (first) cgroup2 filesystem, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified. */
export function cgroup2Root(): string {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch (err) {
    throw new Error(`cannot read /proc/self/mountinfo to locate cgroup2: ${(err as Error).message}`);
  }
  for (const line of text.split('\n')) {
    // <id> <parent> <maj:min> <root> <mountpoint> <opts> [optional...] - <fstype> <source> <superopts>
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    if (fstype !== 'cgroup2') continue;
    const mountPoint = line.slice(0, sep).split(' ')[4];
    if (mountPoint) return unescapeMountPath(mountPoint);
  }
  throw new Error('no cgroup2 filesystem mounted (no "cgroup2" entry in /proc/self/mountinfo); cgroup v2 is required');
}

export function makeCgroup(dir: string): void {
  fs.mkdirSync(dir);
}

/** Write "1" to cgroup.kill (kills the whole subtree) if the kernel supports it. Never throws. */
export function killCgroup(dir: string): void {
  try {
    const killFile = path.join(dir, 'cgroup.kill');
    if (fs.existsSync(killFile)) fs.writeFileSync(killFile, '1');
  } catch {
    /* best effort */
  }
}

/** Kill every process in cgroup.procs individually (fallback for kernels without cgroup.kill). */
function killProcsIn(dir: string): void {
  let procs: string;
  try {
    procs = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return;
  }
  for (const pid of procs.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** Child cgroup dirs of `dir`, deepest first, then `dir` itself. */
function postOrder(dir: string): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...postOrder(path.join(dir, e.name)));
  out.push(dir);
  return out;
}

/** One removal pass; returns the dirs that could not be removed yet. */
function removePass(dir: string): string[] {
  const left: string[] = [];
  for (const d of postOrder(dir)) {
    try {
      fs.rmdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        killProcsIn(d);
        left.push(d);
      }
    }
  }
  return left;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Kill and remove a cgroup subtree, retrying briefly while it is still populated. Never throws. */
export async function removeCgroupTree(dir: string, timeoutMs = 3000): Promise<boolean> {
  killCgroup(dir);
  const deadline = Date.now() + scaled(timeoutMs);
  for (;;) {
    if (removePass(dir).length === 0) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Synchronous variant for the process 'exit' hook. Never throws. */
export function removeCgroupTreeSync(dir: string, timeoutMs = 1000): boolean {
  killCgroup(dir);
  const deadline = Date.now() + scaled(timeoutMs);
  for (;;) {
    if (removePass(dir).length === 0) return true;
    if (Date.now() > deadline) return false;
    sleepSync(25);
  }
}
