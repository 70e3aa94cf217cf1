/**
 * The node's enrollment: the one owner of which workloads are in the mesh on this node. Every
 * workload source (the workloads file, Kubernetes) asks it to `put` or `remove` a workload under
 * a key of its own; it keeps the kernel's pod map, the proxy's index of local workloads, the
 * identities whose certificates the agent keeps and the collector's registration in step.
 *
 * Order matters and is the same everywhere: a workload goes into the proxy's index before the
 * kernel redirects it (a redirected connection always finds its pod), and leaves the kernel before
 * the index. Operations on one key run one at a time, in order. See docs/architecture.md.
 */
import { describeCause, PalisadeError } from '../../common/errors';
import { KeyedQueue } from '../../common/keyed-queue';
import type { Logger } from '../../common/log';
import type { ServiceRegistration, WorkloadRegistration } from '../../common/mesh-protocol';
import { netnsCookieOf } from '../datapath/datapath';
import { NODE_FULL_REASON } from '../datapath/pod-admission';
import type { LocalWorkloads } from '../local-workloads';
import type { Workload } from '../workloads';

/** What enrollment needs of the kernel data path (agent/datapath/datapath.ts's Datapath is one). */
export interface EnrollmentDatapath {
  /** `hostInterface` (the pod's host-side interface, when known) is passed along as data. */
  enroll(netnsPath: string, pod: { podId: number; strict: boolean; ip?: string; hostInterface?: string }): bigint;
  unenroll(netnsCookie: bigint): boolean;
  pods(): Array<{ netnsCookie: bigint; podId: number }>;
  /** Let go of the interface a refused pod was held at (Datapath's NodeFullError carries it). */
  release?(ifindex: number): void;
}

/** A workload refused enrollment, for the flow record that says so (the agent makes it). */
export type RefusalListener = (workload: Workload, reason: string, message: string) => void;

/** The mesh side: certificates of local identities and the collector's registration. */
export interface EnrollmentMesh {
  identities: { retain(identities: Iterable<string>): void; ready(identity: string, timeoutMs?: number): Promise<unknown> };
  collector: { setWorkloads(workloads: WorkloadRegistration[], services?: ServiceRegistration[]): void };
}

/** A workload a source wants enrolled. */
export interface DesiredWorkload {
  workload: Workload;
  /** The pod's interface on the host side (from the CNI result), when the source knows it. */
  hostInterface?: string;
}

export interface EnrolledWorkload extends DesiredWorkload {
  key: string;
  netnsCookie: bigint;
  podId: number;
}

export interface PutOptions {
  /**
   * Resolve only once the workload's identity has a certificate (the CNI ADD path: the pod's first
   * connect must work). On timeout the workload is taken out again and the put rejects.
   */
  awaitIdentity?: boolean;
}

export interface NodeEnrollmentOptions {
  datapath: EnrollmentDatapath;
  local: LocalWorkloads;
  mesh?: EnrollmentMesh;
  log: Logger;
  /** How long `awaitIdentity` waits for a certificate (default 2 s: under palisade-cni's 3 s). */
  identityTimeoutMs?: number;
  /**
   * How long an identity's certificate is kept after its last workload left (default 30 s): a
   * deployment's pods come and go, and a new key and CSR per pod would cost each ADD.
   */
  identityLingerMs?: number;
  /** The netns cookie of a path (tests may stub it). */
  cookieOf?: (netnsPath: string) => bigint;
  /** Told of every workload refused for want of room on the node. */
  onRefused?: RefusalListener;
}

const MAX_POD_ID = 0xffffffff;

export class NodeEnrollment {
  private readonly entries = new Map<string, EnrolledWorkload>();
  private readonly byCookie = new Map<bigint, string>();
  private readonly byIp = new Map<string, string>();
  /** Pod ids the kernel already has, by netns cookie: a re-enrolled pod keeps its id. */
  private readonly pinnedIds: Map<bigint, number>;
  private readonly queue = new KeyedQueue();
  private readonly log: Logger;
  private readonly cookieOf: (netnsPath: string) => bigint;
  private nextPodId: number;
  private flushTimer: NodeJS.Immediate | undefined;
  /** Identities whose certificates are kept (what was last passed to retain). */
  private retained = new Set<string>();
  /** Identities no workload has any more, kept until then (ms since the epoch). */
  private readonly lingering = new Map<string, number>();
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Services declared by each source (the workloads file's `services:`). */
  private readonly services = new Map<string, ServiceRegistration[]>();
  /** Keys refused for want of room, by the interface their pod is held at. */
  private readonly held = new Map<string, number>();
  /** Refused enrollments by reason (metrics). */
  private readonly refusedTotals = new Map<string, number>();

  constructor(private readonly opts: NodeEnrollmentOptions) {
    this.log = opts.log.child({ component: 'enrollment' });
    this.cookieOf = opts.cookieOf ?? netnsCookieOf;
    const pinned = opts.datapath.pods();
    this.pinnedIds = new Map(pinned.map((p) => [p.netnsCookie, p.podId]));
    // Pod ids of a previous agent stay valid in the kernel's records: new ones start above them.
    this.nextPodId = (pinned.reduce((max, p) => Math.max(max, p.podId), 0) % MAX_POD_ID) + 1;
  }

  get size(): number {
    return this.entries.size;
  }

  /** How many enrollments were refused, by reason (every one counted, repeats of a key included). */
  refusals(): Array<{ reason: string; count: number }> {
    return [...this.refusedTotals].map(([reason, count]) => ({ reason, count }));
  }

  get(key: string): EnrolledWorkload | undefined {
    return this.entries.get(key);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Enroll `desired` under `key`, or update what `key` has enrolled. Idempotent. */
  put(key: string, desired: DesiredWorkload, opts: PutOptions = {}): Promise<EnrolledWorkload> {
    return this.queue.run(key, () => this.doPut(key, desired, opts));
  }

  /** Take `key`'s workload out of the mesh; false when it had none. */
  remove(key: string, why = 'removed'): Promise<boolean> {
    return this.queue.run(key, () => this.doRemove(key, why));
  }

  /**
   * Unenroll every pod the kernel has that no key holds (pods that went away while no agent ran,
   * or that a source no longer lists). Call once every source has reconciled. Returns how many.
   */
  removeUnclaimed(): number {
    let removed = 0;
    for (const pod of this.opts.datapath.pods()) {
      if (this.byCookie.has(pod.netnsCookie)) continue;
      this.opts.datapath.unenroll(pod.netnsCookie);
      removed += 1;
      this.log.info({ event: 'unenrolled', netnsCookie: pod.netnsCookie.toString(), podId: pod.podId, why: 'no source lists it' }, 'pod unenrolled');
    }
    return removed;
  }

  /** The services `source` declares (replacing what it declared before); registered with the workloads. */
  setServices(source: string, services: ServiceRegistration[]): void {
    if (JSON.stringify(this.services.get(source) ?? []) === JSON.stringify(services)) return;
    this.services.set(source, services);
    this.flushSoon();
  }

  /** Send the registration now (coalesced changes are otherwise sent on the next turn of the loop). */
  flush(): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = undefined;
    const mesh = this.opts.mesh;
    if (!mesh) return;
    const all = [...this.entries.values()].map((e) => e.workload);
    mesh.collector.setWorkloads(all.map(registration), [...this.services.values()].flat());
    const identities = this.identitiesToKeep(new Set(all.map((w) => w.identity)));
    if (!sameSet(identities, this.retained)) {
      this.retained = identities;
      mesh.identities.retain(identities);
    }
  }

  /** `inUse` and the identities still lingering; schedules the flush that drops the next to expire. */
  private identitiesToKeep(inUse: Set<string>): Set<string> {
    const now = Date.now();
    const linger = this.opts.identityLingerMs ?? 30_000;
    for (const id of this.retained) if (!inUse.has(id) && !this.lingering.has(id) && linger > 0) this.lingering.set(id, now + linger);
    const keep = new Set(inUse);
    let next = Infinity;
    for (const [id, until] of this.lingering) {
      if (inUse.has(id) || until <= now) this.lingering.delete(id);
      else {
        keep.add(id);
        next = Math.min(next, until);
      }
    }
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (next !== Infinity) {
      this.lingerTimer = setTimeout(() => this.flush(), next - now + 1);
      this.lingerTimer.unref();
    }
    return keep;
  }

  close(): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.flushTimer = undefined;
    this.lingerTimer = undefined;
  }

  private async doPut(key: string, desired: DesiredWorkload, opts: PutOptions): Promise<EnrolledWorkload> {
    const started = process.hrtime.bigint();
    const w = desired.workload;
    const cookie = this.cookieOf(w.netns);
    const old = this.entries.get(key);
    this.claimNetns(key, cookie, w);
    this.claimIp(key, w);
    if (old && old.netnsCookie === cookie && sameDesired(old, desired)) {
      if (opts.awaitIdentity) await this.awaitIdentity(key, w);
      return old;
    }
    const podId = old && old.netnsCookie === cookie ? old.podId : this.allocatePodId(cookie);
    if (old && old.netnsCookie !== cookie) this.takeOut(old); // the pod's sandbox was replaced
    const entry: EnrolledWorkload = { key, workload: w, netnsCookie: cookie, podId, ...(desired.hostInterface ? { hostInterface: desired.hostInterface } : {}) };
    this.opts.local.put(cookie, w);
    try {
      const hostInterface = desired.hostInterface ?? w.interface; // the CNI result's, else the workloads file's
      const enrolled = this.opts.datapath.enroll(w.netns, { podId, strict: w.strict, ip: w.ip, ...(hostInterface ? { hostInterface } : {}) });
      if (enrolled !== cookie) throw new PalisadeError('PALISADE_ERR_NETNS', `netns ${w.netns} changed while it was being enrolled`);
    } catch (err) {
      this.opts.local.delete(cookie);
      if (old && old.netnsCookie === cookie) this.opts.local.put(cookie, old.workload);
      if ((err as PalisadeError).code === 'PALISADE_ERR_NODE_FULL') throw this.refused(key, w, err as PalisadeError & { ifindex: number });
      throw err;
    }
    this.held.delete(key);
    if (old && old.workload.ip !== w.ip && this.byIp.get(old.workload.ip) === key) this.byIp.delete(old.workload.ip);
    this.entries.set(key, entry);
    this.byCookie.set(cookie, key);
    this.byIp.set(w.ip, key);
    const newIdentity = !this.retained.has(w.identity);
    // A new identity's CSR must follow its registration: send both now.
    if (newIdentity) this.flush();
    else this.flushSoon();
    this.log.info(
      { event: old ? 'updated' : 'enrolled', entry: key, workload: `${w.namespace}/${w.name}`, ip: w.ip, netnsCookie: cookie.toString(), podId, ms: msSince(started) },
      old ? 'pod enrollment updated' : 'pod enrolled',
    );
    if (opts.awaitIdentity) await this.awaitIdentity(key, w);
    return entry;
  }

  /** Count, log and report a pod refused for want of room; the error it gets is one line naming it. */
  private refused(key: string, w: Workload, err: PalisadeError & { ifindex: number }): PalisadeError {
    this.held.set(key, err.ifindex);
    this.refusedTotals.set(NODE_FULL_REASON, (this.refusedTotals.get(NODE_FULL_REASON) ?? 0) + 1);
    const message = `not enrolled: ${err.message}; it has no network through this node until a pod leaves`;
    this.log.error({ event: 'enrollment-refused', entry: key, workload: `${w.namespace}/${w.name}`, ip: w.ip, reason: NODE_FULL_REASON, ifindex: err.ifindex }, message);
    this.opts.onRefused?.(w, NODE_FULL_REASON, message);
    return new PalisadeError('PALISADE_ERR_NODE_FULL', message, { cause: err });
  }

  private doRemove(key: string, why: string): boolean {
    const heldAt = this.held.get(key);
    if (heldAt !== undefined) {
      this.held.delete(key);
      this.opts.datapath.release?.(heldAt);
      this.log.info({ event: 'released', entry: key, ifindex: heldAt, why }, 'refused pod released');
    }
    const old = this.entries.get(key);
    if (!old) return false;
    this.takeOut(old);
    this.flushSoon();
    this.log.info({ event: 'unenrolled', entry: key, workload: `${old.workload.namespace}/${old.workload.name}`, netnsCookie: old.netnsCookie.toString(), why }, 'pod unenrolled');
    return true;
  }

  /** Kernel first, then the proxy's index, then our records. */
  private takeOut(e: EnrolledWorkload): void {
    this.opts.datapath.unenroll(e.netnsCookie);
    this.opts.local.delete(e.netnsCookie);
    this.entries.delete(e.key);
    if (this.byCookie.get(e.netnsCookie) === e.key) this.byCookie.delete(e.netnsCookie);
    if (this.byIp.get(e.workload.ip) === e.key) this.byIp.delete(e.workload.ip);
  }

  /** Another key holding this network namespace is a conflict, unless its namespace is gone. */
  private claimNetns(key: string, cookie: bigint, w: Workload): void {
    const holder = this.byCookie.get(cookie);
    if (holder === undefined || holder === key) return;
    const other = this.entries.get(holder)!;
    throw new PalisadeError(
      'PALISADE_ERR_CONFLICT',
      `netns ${w.netns} is already enrolled as ${other.workload.namespace}/${other.workload.name}`,
    );
  }

  /** Another key holding this IP is a conflict, unless that key's network namespace is gone (a missed delete). */
  private claimIp(key: string, w: Workload): void {
    const holderKey = this.byIp.get(w.ip);
    const holder = holderKey === undefined || holderKey === key ? undefined : this.entries.get(holderKey);
    if (!holder) return;
    if (this.alive(holder)) {
      throw new PalisadeError('PALISADE_ERR_CONFLICT', `ip ${w.ip} is already enrolled for ${holder.workload.namespace}/${holder.workload.name}`);
    }
    this.takeOut(holder);
    this.log.info({ event: 'unenrolled', entry: holder.key, workload: `${holder.workload.namespace}/${holder.workload.name}`, why: `its netns is gone and ${w.namespace}/${w.name} now has ip ${w.ip}` }, 'pod unenrolled');
  }

  private alive(e: EnrolledWorkload): boolean {
    try {
      return this.cookieOf(e.workload.netns) === e.netnsCookie;
    } catch {
      return false;
    }
  }

  private async awaitIdentity(key: string, w: Workload): Promise<void> {
    const mesh = this.opts.mesh;
    if (!mesh) return;
    const timeoutMs = this.opts.identityTimeoutMs ?? 2000;
    try {
      await mesh.identities.ready(w.identity, timeoutMs);
    } catch (err) {
      this.doRemove(key, 'no certificate in time');
      throw new PalisadeError(
        'PALISADE_ERR_IDENTITY',
        `no certificate for ${w.identity} within ${timeoutMs} ms (is the collector reachable?): ${describeCause(err)}`,
        { cause: err },
      );
    }
  }

  private flushSoon(): void {
    if (this.flushTimer || !this.opts.mesh) return;
    this.flushTimer = setImmediate(() => {
      this.flushTimer = undefined;
      this.flush();
    });
  }

  private allocatePodId(cookie: bigint): number {
    const used = new Set([...this.entries.values()].map((e) => e.podId));
    const pinned = this.pinnedIds.get(cookie);
    if (pinned !== undefined && !used.has(pinned)) return pinned;
    for (let i = 0; i < MAX_POD_ID; i++) {
      const id = this.nextPodId;
      this.nextPodId = id >= MAX_POD_ID ? 1 : id + 1;
      if (!used.has(id)) return id;
    }
    throw new PalisadeError('PALISADE_ERR_INTERNAL', 'no pod id left');
  }
}

/** What the collector is told about a local workload. */
export function registration(w: Workload): WorkloadRegistration {
  return { name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount, ip: w.ip, labels: w.labels };
}

function sameDesired(a: DesiredWorkload, b: DesiredWorkload): boolean {
  const x = a.workload;
  const y = b.workload;
  return (
    x.name === y.name &&
    x.namespace === y.namespace &&
    x.serviceAccount === y.serviceAccount &&
    x.netns === y.netns &&
    x.ip === y.ip &&
    x.strict === y.strict &&
    x.identity === y.identity &&
    sameLabels(x.labels, y.labels) &&
    a.hostInterface === b.hostInterface
  );
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}

function sameSet<T>(a: Set<T>, b: Set<T>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function msSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
