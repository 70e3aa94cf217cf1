/**
 * Mocha root hooks for `make test-kernel` (loaded with --require by test/kernel/guest.sh): before
 * anything runs, every suite's, hook's and test's own timeout — the command line's and each
 * `this.timeout()` — is multiplied once by PALISADE_TEST_TIME_SCALE, as the harness does for its
 * deadlines (test/harness/time.ts). Walking the loaded tree once is exact where patching the
 * setters is not: mocha copies a suite's timeout into each child through those same setters.
 */
import type { Context, Hook, Runnable, Suite } from 'mocha';
import { TIME_SCALE } from '../harness/time';

/** Mocha keeps a suite's hooks in these (private, stable since mocha 1) arrays. */
interface SuiteHooks {
  _beforeAll: Hook[];
  _beforeEach: Hook[];
  _afterEach: Hook[];
  _afterAll: Hook[];
}

/** The suite, its hooks and tests, then each child suite the same way: parents before children. */
function* walk(suite: Suite): Generator<Suite | Runnable> {
  yield suite;
  const hooks = suite as unknown as SuiteHooks;
  yield* [...hooks._beforeAll, ...hooks._beforeEach, ...hooks._afterEach, ...hooks._afterAll];
  yield* suite.tests;
  for (const child of suite.suites) yield* walk(child);
}

/**
 * Multiply the own timeout of `suite`, its hooks, its tests and every suite below it by `factor`
 * (0, "no timeout", stays 0). Mocha's Suite#timeout also overwrites the timeouts of the suite's
 * children, so every value is read first and written parents first.
 */
export function scaleTimeouts(suite: Suite, factor: number): void {
  const own = [...walk(suite)].map((r) => [r, r.timeout()] as const);
  for (const [r, ms] of own) r.timeout(ms > 0 ? Math.round(ms * factor) : 0);
}

export const mochaHooks = {
  beforeAll(this: Context): void {
    const root = this.test?.parent;
    if (root && TIME_SCALE !== 1) scaleTimeouts(root, TIME_SCALE);
  },
};
