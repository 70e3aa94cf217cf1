/** The simulator's clock, waiting, bounded waiting and bounded concurrency. */

/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime is libuv's uv_hrtime, clock_gettime(CLOCK_MONOTONIC)
 * on Linux): one system-wide clock, so times taken in the agent processes and in the coordinator
 * compare directly (performance.now() counts from each process's own start and would not).
 */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `fn` over `items`, at most `width` at a time. */
export async function inBatches<T>(items: readonly T[], width: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

/** `promise`, or undefined once `ms` have passed (or it failed: an agent process gone). */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    const settle = (v: T | undefined): void => {
      clearTimeout(timer);
      resolve(v);
    };
    promise.then(settle, () => settle(undefined));
  });
}
