/**
 * What held the event loop (test/bench/collector-loop.ts): the CPU of each turn (TurnCpu), and with
 * `--stalls[=MS]` (StallWatch) every turn in which this thread spent more than MS of CPU (what
 * one turn of the loop ran — its tasks, GC pauses — without the time a busy machine did not
 * schedule the thread, which the wall-clock gap also holds) and a CPU profile of this thread (the
 * inspector's, sampled every 100 µs) says what ran during each gap: the project's (dist/)
 * innermost frames and the function on top, by time, and the GC pauses inside it. Timestamps are
 * CLOCK_MONOTONIC, the profile's and process.hrtime's both.
 */
import { Session } from 'node:inspector';
import { performance, PerformanceObserver } from 'node:perf_hooks';

/** A V8 .cpuprofile's node and profile (also read by ../cpuprofile-top.ts). */
export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface Gap {
  /** µs, monotonic. */
  from: number;
  to: number;
  /** The thread's CPU in it, µs. */
  cpu: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const cpuUs = (): number => {
  const u = process.threadCpuUsage();
  return u.user + u.system;
};

const post = <T>(s: Session, method: string, params?: object): Promise<T> =>
  new Promise((resolve, reject) => s.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));

/**
 * The CPU this thread spent in each turn of its event loop, about (a 1 ms timer reads
 * process.threadCpuUsage, which Linux advances a scheduler tick at a time: ±1 ms): unlike the
 * event-loop delay it leaves out the time a busy machine did not run the thread.
 */
export class TurnCpu {
  /** Turns over `thresholdMs` of CPU. */
  readonly gaps: Gap[] = [];
  private readonly timer: NodeJS.Timeout;
  private last = nowUs();
  private lastCpu = cpuUs();
  private maxUs = 0;
  private readonly over = new Map<number, number>([[5, 0], [10, 0]]);

  constructor(private readonly thresholdMs: number) {
    this.timer = setInterval(() => {
      const t = nowUs();
      const cpu = cpuUs();
      const spent = cpu - this.lastCpu;
      this.maxUs = Math.max(this.maxUs, spent);
      for (const [ms, n] of this.over) if (spent > ms * 1000) this.over.set(ms, n + 1);
      if (spent > this.thresholdMs * 1000) this.gaps.push({ from: this.last, to: t, cpu: spent });
      this.last = t;
      this.lastCpu = cpu;
    }, 1);
  }

  /** "longest turn X ms of CPU, N over 5 ms, M over 10 ms". */
  stop(): string {
    clearInterval(this.timer);
    return `longest turn ${(this.maxUs / 1000).toFixed(1)} ms of CPU, ${this.over.get(5)} over 5 ms, ${this.over.get(10)} over 10 ms`;
  }
}

export class StallWatch {
  private readonly gcs: Array<{ from: number; to: number }> = [];
  private readonly session = new Session();
  private readonly turns: TurnCpu;
  private readonly gcObserver: PerformanceObserver;

  private constructor(thresholdMs: number) {
    // performance.now() to the monotonic clock: the same instant read on both
    const offsetUs = nowUs() - performance.now() * 1000;
    this.gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.gcs.push({ from: offsetUs + e.startTime * 1000, to: offsetUs + (e.startTime + e.duration) * 1000 });
    });
    this.gcObserver.observe({ entryTypes: ['gc'] });
    this.turns = new TurnCpu(thresholdMs);
  }

  static async start(thresholdMs: number): Promise<StallWatch> {
    const w = new StallWatch(thresholdMs);
    w.session.connect();
    await post(w.session, 'Profiler.enable');
    await post(w.session, 'Profiler.setSamplingInterval', { interval: 100 });
    await post(w.session, 'Profiler.start');
    return w;
  }

  /** Stop; a few lines per stall, most CPU first (at most `max`). */
  async stop(max = 8): Promise<string[]> {
    this.turns.stop();
    this.gcObserver.disconnect();
    const { profile } = await post<{ profile: Profile }>(this.session, 'Profiler.stop');
    this.session.disconnect();
    return this.turns.gaps
      .sort((a, b) => b.cpu - a.cpu)
      .slice(0, max)
      .map((g) => this.describe(g, profile));
  }

  private describe(g: Gap, p: Profile): string {
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const name = (n: ProfileNode): string => {
      const file = /\/dist\/(.+)\.js$/.exec(n.callFrame.url)?.[1] ?? n.callFrame.url.replace(/^.*\//, '');
      return `${n.callFrame.functionName || '(anonymous)'}${file ? ` ${file}:${n.callFrame.lineNumber + 1}` : ''}`;
    };
    const by = new Map<string, number>();
    let at = p.startTime;
    let sampled = 0;
    for (let i = 0; i < p.samples.length; i++) {
      at += p.timeDeltas[i] ?? 0;
      if (at < g.from || at > g.to) continue;
      const dt = p.timeDeltas[i + 1] ?? 0;
      sampled += dt;
      const top = byId.get(p.samples[i]!)!;
      // the innermost project frames (up to 3), then what ran on top
      const ours: string[] = [];
      for (let cur: number | undefined = top.id; cur !== undefined && ours.length < 3; cur = parent.get(cur)) {
        const n = byId.get(cur)!;
        if (n.callFrame.url.includes('/dist/')) ours.push(name(n));
      }
      const k = `${ours.join(' < ') || '-'} | ${name(top)}`;
      by.set(k, (by.get(k) ?? 0) + dt);
    }
    const gcMs = this.gcs.filter((x) => x.to > g.from && x.from < g.to).reduce((s, x) => s + (Math.min(x.to, g.to) - Math.max(x.from, g.from)), 0) / 1000;
    const tops = [...by].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, us]) => `    ${(us / 1000).toFixed(1).padStart(5)} ms  ${k}`);
    return `  ${(g.cpu / 1000).toFixed(1)} ms of CPU in a ${((g.to - g.from) / 1000).toFixed(1)} ms stall (GC ${gcMs.toFixed(1)} ms, ${(sampled / 1000).toFixed(1)} ms sampled):\n${tops.join('\n')}`;
  }
}
