/**
 * Memory of the proxy processes, from /proc: VmHWM (peak resident set), VmRSS (now), RssAnon and
 * RssFile (what of it is the process's own heap and what is mapped files, such as the ~40 MB of
 * the node binary every Node process shares), and the peak of RssAnon, which the kernel does not
 * keep: sampled while the bench runs.
 */
import * as fs from 'node:fs';

export type MemField = 'VmHWM' | 'VmRSS' | 'RssAnon' | 'RssFile';

/** One /proc/PID/status field, in MB (undefined when the process is gone). */
export function memMb(pid: number | undefined, field: MemField): number | undefined {
  if (!pid) return undefined;
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : undefined;
  } catch {
    return undefined;
  }
}

/** Proportional set size (shared pages split between the processes mapping them), in MB. */
export function pssMb(pid: number | undefined): { pss: number; pssAnon: number } | undefined {
  if (!pid) return undefined;
  try {
    const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { pss: Math.round(kb('Pss') / 102.4) / 10, pssAnon: Math.round(kb('Pss_Anon') / 102.4) / 10 };
  } catch {
    return undefined;
  }
}

/** The highest RssAnon of each process seen while it runs (every `everyMs`). */
export class AnonPeaks<K extends string> {
  readonly peakMb: Partial<Record<K, number>> = {};
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pids: () => Partial<Record<K, number | undefined>>) {}

  start(everyMs = 200): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.sample();
  }

  private sample(): void {
    for (const [name, pid] of Object.entries(this.pids()) as Array<[K, number | undefined]>) {
      const mb = memMb(pid, 'RssAnon');
      if (mb !== undefined && mb > (this.peakMb[name] ?? 0)) this.peakMb[name] = mb;
    }
  }
}
