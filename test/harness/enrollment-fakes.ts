/**
 * Fakes of what a NodeEnrollment drives, for tests without a kernel: the kernel's pod map (with
 * the order of operations against the proxy's index), the mesh (certificates, registration), and
 * network namespaces as a map of path to cookie.
 */
import { PalisadeError } from '../../common/errors';
import type { WorkloadRegistration } from '../../common/mesh-protocol';
import { NodeFullError, podAdmission } from '../../agent/datapath/pod-admission';
import type { LocalWorkloads } from '../../agent/local-workloads';
import type { EnrollmentDatapath } from '../../agent/workload-sources/node-enrollment';

/** Network namespaces by path; `cookieOf` throws as the real one does for a missing path. */
export class FakeNetns {
  readonly cookies = new Map<string, bigint>();
  private next = 1000n;

  add(path: string): bigint {
    const c = this.next++;
    this.cookies.set(path, c);
    return c;
  }

  cookieOf = (path: string): bigint => {
    const c = this.cookies.get(path);
    if (c === undefined) throw new PalisadeError('PALISADE_ERR_NETNS', `netns ${path} does not exist`);
    return c;
  };
}

export class FakeDatapath implements EnrollmentDatapath {
  readonly map = new Map<bigint, { podId: number; strict: boolean; ip?: string; hostInterface?: string }>();
  readonly ops: string[] = [];
  /** Pods the fake's pod map holds: one more is refused (NodeFullError, its "interface" the cookie). */
  capacity = Infinity;
  readonly released: number[] = [];

  constructor(
    private readonly netns: { cookieOf(path: string): bigint },
    private readonly local: LocalWorkloads,
  ) {}

  enroll(path: string, pod: { podId: number; strict: boolean; ip?: string; hostInterface?: string }): bigint {
    const cookie = this.netns.cookieOf(path);
    const refusal = podAdmission({ enrolled: this.map.has(cookie), inUse: this.map.size, capacity: this.capacity });
    if (refusal) throw new NodeFullError(refusal, Number(cookie));
    this.ops.push(`enroll ${cookie} (index has it: ${this.local.byNetnsCookie(cookie) !== undefined})`);
    this.map.set(cookie, pod);
    return cookie;
  }

  unenroll(cookie: bigint): boolean {
    this.ops.push(`unenroll ${cookie} (index has it: ${this.local.byNetnsCookie(cookie) !== undefined})`);
    return this.map.delete(cookie);
  }

  pods(): Array<{ netnsCookie: bigint; podId: number }> {
    return [...this.map].map(([netnsCookie, p]) => ({ netnsCookie, podId: p.podId }));
  }

  release(ifindex: number): void {
    this.released.push(ifindex);
  }
}

/** Certificates arrive for identities in `certified` (all of them with `certifyAll`); registrations are kept. */
export class FakeMesh {
  retained: string[] = [];
  registered: WorkloadRegistration[][] = [];
  certified = new Set<string>();
  certifyAll = false;
  identities = {
    retain: (ids: Iterable<string>): void => void (this.retained = [...ids].sort()),
    ready: (id: string, timeoutMs = 0): Promise<void> =>
      this.certifyAll || this.certified.has(id)
        ? Promise.resolve()
        : new Promise((_, reject) => setTimeout(() => reject(new PalisadeError('PALISADE_ERR_IDENTITY', 'no certificate')), timeoutMs)),
  };
  collector = { setWorkloads: (w: WorkloadRegistration[]): void => void this.registered.push(w) };
}
