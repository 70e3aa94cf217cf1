/**
 * The single rule for privileged suites: skip only when not root AND not in CI.
 * Under CI=true a missing privilege is a failure, never a skip.
 * Usage: before(function () { requirePrivileges(this); });
 */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function requirePrivileges(ctx: Mocha.Context): void {
  if (isRoot()) return;
  if (process.env.CI === 'true') {
    throw new Error('privileged test suite requires root; CI=true forbids skipping it');
  }
  ctx.skip();
}
