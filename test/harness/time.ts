/**
 * One knob for a machine slower than the one the suite's deadlines were written on:
 * PALISADE_TEST_TIME_SCALE (default 1). `make test-kernel` runs the privileged suites under
 * software emulation (qemu TCG, roughly ten times slower) and sets it; every harness deadline
 * (process timeouts, waits for log lines, ports and conditions, the test client's own timeout) and,
 * through test/kernel/time-scale.ts, every mocha timeout is multiplied by it. What a test asserts
 * does not change, only how long it waits before it calls a wait failed.
 */
const MAX_SCALE = 100;

export function parseTimeScale(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 1 || n > MAX_SCALE) {
    throw new Error(`PALISADE_TEST_TIME_SCALE must be a number from 1 to ${MAX_SCALE}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

export const TIME_SCALE = parseTimeScale(process.env.PALISADE_TEST_TIME_SCALE);

/** A deadline of `ms` on the machine the test was written for, on this one. */
export function scaled(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}
