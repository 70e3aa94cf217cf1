/**
 * The simulator's handle on its collector process (collector-main.ts): start, stop, restart on
 * the same data directory and port, and its CPU time and resident memory read from /proc — the
 * collector's alone, the simulated agents run elsewhere. PALISADE_SCALE_COLLECTOR_NODE_ARGS adds
 * node flags to the collector (`--cpu-prof --cpu-prof-dir=DIR`: where its time goes, read with
 * test/bench/cpuprofile-top.ts).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CollectorUsage {
  /** user + system CPU seconds since the process started */
  cpuSeconds: number;
  rssMb: number;
}

const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime (fields 14 and 15 of /proc/<pid>/stat, after the parenthesised name) and VmRSS. */
export function processUsage(pid: number): CollectorUsage {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds: ticks / CLOCK_TICKS, rssMb: rss ? Number(rss[1]) / 1024 : NaN };
}

export class CollectorProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  port = 0;
  adminToken = '';
  /** CPU seconds of collector processes that have already exited (restarts). */
  private pastCpuSeconds = 0;

  constructor(
    readonly dataDir: string,
    private readonly logFile: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get caFile(): string {
    return path.join(this.dataDir, 'ca.crt');
  }

  /** Start (again, on the same port once one was bound); resolves once it listens. */
  async start(): Promise<void> {
    const log = fs.openSync(this.logFile, 'a');
    const nodeArgs = (process.env.PALISADE_SCALE_COLLECTOR_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    const child = spawn(process.execPath, [...nodeArgs, path.join(__dirname, 'collector-main.js'), this.dataDir, String(this.port)], {
      stdio: ['ignore', 'pipe', log],
    });
    fs.closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const line = await new Promise<string>((resolve, reject) => {
      let text = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        const nl = text.indexOf('\n');
        if (nl >= 0) resolve(text.slice(0, nl));
      });
      child.once('exit', (code) => reject(new Error(`the collector exited (${code}) before it listened; see ${this.logFile}`)));
    });
    const ready = JSON.parse(line) as { port: number; adminToken: string };
    this.port = ready.port;
    this.adminToken = ready.adminToken;
  }

  /** SIGTERM and wait for the exit (the collector closes every session with 1001 first). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    try {
      this.pastCpuSeconds += processUsage(child.pid!).cpuSeconds;
    } catch {
      // gone already
    }
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(killer);
  }

  /** The collector's last process.memoryUsage() in MB (collector-main.ts writes it every second). */
  memory(): Record<string, number> | undefined {
    try {
      const raw = JSON.parse(fs.readFileSync(path.join(path.dirname(this.dataDir), 'collector-memory.json'), 'utf8')) as Record<string, number>;
      return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Math.round(v / 1048576)]));
    } catch {
      return undefined;
    }
  }

  /** The collector's warning and error lines so far, counted by message and reason. */
  warnings(): Record<string, number> {
    const counts: Record<string, number> = {};
    let text = '';
    try {
      text = fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return counts;
    }
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { msg?: string; reason?: string };
        const key = entry.reason === undefined ? String(entry.msg) : `${String(entry.msg)}: ${entry.reason.slice(0, 80)}`;
        counts[key] = (counts[key] ?? 0) + 1;
      } catch {
        counts['unreadable line'] = (counts['unreadable line'] ?? 0) + 1;
      }
    }
    return counts;
  }

  /** CPU seconds of every collector process so far (restarts included) and the current RSS. */
  usage(): CollectorUsage {
    const pid = this.child?.pid;
    if (pid === undefined || this.child?.exitCode !== null) return { cpuSeconds: this.pastCpuSeconds, rssMb: NaN };
    try {
      const now = processUsage(pid);
      return { cpuSeconds: this.pastCpuSeconds + now.cpuSeconds, rssMb: now.rssMb };
    } catch {
      return { cpuSeconds: this.pastCpuSeconds, rssMb: NaN };
    }
  }
}
