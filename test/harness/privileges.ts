/**
 * The single rule for privileged suites: they need root, and they never skip — on a machine
 * without root they fail with one clear reason (a skipped privileged suite would pass green
 * without having tested anything). `make test` runs as root; CI runs it with CI=true.
 * Usage: before(() => requirePrivileges()); it throws without root, it never calls this.skip().
 */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function requirePrivileges(): void {
  if (isRoot()) return;
  throw new Error('this privileged suite needs root (real eBPF, network namespaces, cgroups): run make test as root');
}
