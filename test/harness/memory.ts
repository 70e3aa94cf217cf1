/** A process's resident memory, sampled while a test floods it. */
import * as fs from 'node:fs';

/** VmRSS of `pid` in MiB, or undefined once it is gone. */
export function rssMiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface RssSampler {
  /** Stop sampling: the RSS when sampling began, its peak meanwhile and the last sample (MiB). */
  stop(): { before: number; peak: number; last: number };
}

/** Sample `pid`'s RSS every `everyMs` until stop(). */
export function sampleRss(pid: number, everyMs = 50): RssSampler {
  const before = rssMiB(pid) ?? 0;
  let peak = before;
  let last = before;
  const timer = setInterval(() => {
    const v = rssMiB(pid);
    if (v === undefined) return;
    last = v;
    if (v > peak) peak = v;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const v = rssMiB(pid);
      if (v !== undefined) {
        last = v;
        if (v > peak) peak = v;
      }
      const round = (x: number): number => Math.round(x * 10) / 10;
      return { before: round(before), peak: round(peak), last: round(last) };
    },
  };
}
