/**
 * Give the kernel back what glibc's malloc keeps after a burst. Buffers of a bulk transfer, TLS
 * records and HTTP/2 frames are malloc'd and freed by the tens of MB; free() returns only the top
 * of a heap, so an agent that carried a 1 GiB download kept 25–48 MB of free heap pages resident
 * long after (measured: test/bench/mem-profile.ts, README "Performance"). malloc_trim(0) hands
 * them back (madvise), costing page faults only if they are needed again.
 *
 * Checked every `everyMs`: trimmed only when the anonymous memory grew by `minGrowthKb` since the
 * last trim, so an idle or steady agent pays one /proc read per interval and nothing else, and
 * only while the agent is quiet (event loop busy less than `maxBusy` of the interval): giving back
 * 90 MB of fragments takes the main thread ~50–150 ms (madvise per free chunk, arena locked), a
 * stall a proxy must not add under load. Under load the memory is in use anyway.
 */
import * as fs from 'node:fs';

export interface TrimSettings {
  everyMs: number;
  /** growth of RssAnon since the last trim (or the start) that makes a trim worth it */
  minGrowthKb: number;
  /** event-loop utilization over the interval (0..1) above which the agent is busy: no trim */
  maxBusy: number;
}

export const DEFAULT_TRIM: TrimSettings = { everyMs: 5_000, minGrowthKb: 8 << 10, maxBusy: 0.05 };

/** Trim now? `baselineKb` is RssAnon right after the last trim (or at the start); `busy` the event-loop utilization since the last check. */
export function shouldTrim(anonKb: number | undefined, baselineKb: number | undefined, busy: number, s: Pick<TrimSettings, 'minGrowthKb' | 'maxBusy'>): boolean {
  if (anonKb === undefined || !Number.isFinite(anonKb)) return false;
  if (baselineKb === undefined) return false;
  if (!(busy <= s.maxBusy)) return false;
  return anonKb - baselineKb >= s.minGrowthKb;
}

/** The next baseline: after a trim, what is left; without one, the lowest seen (memory given back by itself counts). */
export function nextBaseline(baselineKb: number | undefined, anonKb: number | undefined, trimmed: boolean): number | undefined {
  if (anonKb === undefined || !Number.isFinite(anonKb)) return baselineKb;
  if (trimmed || baselineKb === undefined) return anonKb;
  return Math.min(baselineKb, anonKb);
}

/** RssAnon of this process in kB, from /proc/self/status (undefined when unreadable). */
export function selfAnonKb(read: () => string = () => fs.readFileSync('/proc/self/status', 'utf8')): number | undefined {
  try {
    const m = /RssAnon:\s+(\d+) kB/.exec(read());
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface TrimCounters {
  checks: number;
  trims: number;
  /** time spent in malloc_trim, ms */
  trimMs: number;
}

/** The event-loop utilization since the previous call (perf_hooks; the first call: since start). */
export function eventLoopBusy(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const u = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    return u;
  };
}

/**
 * Start the periodic check; returns a stop function. `trim` is the native malloc_trim (returns
 * whether anything was released); the timer never keeps the process alive, and stops if trim throws.
 */
export function startMallocTrim(
  trim: () => boolean,
  settings: TrimSettings = DEFAULT_TRIM,
  anon: () => number | undefined = selfAnonKb,
  busy: () => number = eventLoopBusy(),
): { stop(): void; counters: TrimCounters } {
  const counters: TrimCounters = { checks: 0, trims: 0, trimMs: 0 };
  let baseline = anon();
  const timer = setInterval(() => {
    counters.checks += 1;
    const now = anon();
    let trimmed = false;
    if (shouldTrim(now, baseline, busy(), settings)) {
      const t0 = performance.now();
      try {
        trim();
      } catch {
        // No trim to be had (an addon without it): memory stays as it is, the agent runs on.
        clearInterval(timer);
        return;
      }
      counters.trimMs += performance.now() - t0;
      counters.trims += 1;
      trimmed = true;
    }
    baseline = nextBaseline(baseline, trimmed ? anon() : now, trimmed);
  }, settings.everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer), counters };
}
