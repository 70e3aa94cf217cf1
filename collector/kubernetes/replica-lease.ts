/**
 * This collector replica's heartbeat: a coordination.k8s.io/v1 Lease, `palisade-collector-<replica>`
 * in the collector's namespace (replica = its registry's epoch, the `replica` of its registration
 * stamps), labelled `palisade.dev/collector-replica=<replica>`, holderIdentity the replica, renewed
 * (spec.renewTime, our wall clock — the others only see whether it changes) every third of its
 * duration, as the kubelet renews its node's Lease. ./replica-leases.ts is how the others read it.
 *
 * A replica that cannot renew keeps serving its agents (the data plane must not depend on the
 * API): the first failure is a warning; once no renewal succeeded for a whole duration it logs an
 * error, since the others now treat its nodes as offline. When it renews again it publishes its
 * nodes again with newer stamps (`onRecovered`), because only a newer write brings a node back.
 * A Lease deleted under it (404) counts as lapsed too. `stop` deletes the Lease: a clean shutdown
 * is seen at once.
 */
import type { V1Lease } from '@kubernetes/client-node';
import { statusOf, type KubeClient } from '../../common/kube/client';
import type { Logger } from '../../common/log';

export const REPLICA_LABEL = 'palisade.dev/collector-replica';
export const DEFAULT_REPLICA_LEASE_SECONDS = 15;

export const replicaLeaseName = (replica: string): string => `palisade-collector-${replica}`;

export interface ReplicaLeaseOptions {
  client: KubeClient;
  namespace: string;
  replica: string;
  durationSeconds: number;
  log: Logger;
  /** Renewed again after a lapse (or after the Lease was deleted under us): the others may hold our nodes offline. */
  onRecovered: () => void;
  now?: () => number;
}

const codeOf = (err: unknown): number | undefined => statusOf((err as { cause?: unknown }).cause)?.code;

export class ReplicaLease {
  readonly name: string;
  /** Renewals that succeeded (the create included), and that failed. */
  renewals = 0;
  failures = 0;
  private okSince: number | undefined;
  private object: V1Lease | undefined;
  private lastRenewedAt: number;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private stopped = false;
  private failing = false;
  private lapsed = false;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly opts: ReplicaLeaseOptions) {
    this.name = replicaLeaseName(opts.replica);
    this.now = opts.now ?? Date.now;
    this.lastRenewedAt = this.now();
    this.log = opts.log.child({ component: 'replica-lease', lease: `${opts.namespace}/${this.name}` });
  }

  get durationMs(): number {
    return this.opts.durationSeconds * 1000;
  }

  /** When (our clock) the last renewal succeeded; undefined before the first. */
  get renewedAt(): number | undefined {
    return this.renewals > 0 ? this.lastRenewedAt : undefined;
  }

  /**
   * Since when (our clock) every renewal succeeded, or undefined: the last one failed, none
   * succeeded yet, or none succeeded for a duration (one may hang) — our view of the API is not current.
   */
  currentSince(now: number): number | undefined {
    if (now - this.lastRenewedAt > this.durationMs) this.okSince = undefined;
    return this.okSince;
  }

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), Math.max(100, Math.floor(this.durationMs / 3)));
    this.timer.unref();
  }

  /** Stop renewing and delete the Lease (a clean shutdown: the others see it at once). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (!this.timer) return; // never started: nothing written
    clearInterval(this.timer);
    await this.renewing;
    const { client, namespace } = this.opts;
    try {
      await client.call(`delete lease ${namespace}/${this.name}`, () => client.coordination.deleteNamespacedLease({ name: this.name, namespace }), { notFound: 'undefined', timeoutMs: 3_000 });
    } catch (err) {
      this.log.warn({ err }, `cannot delete this replica's Lease; the other replicas will treat its nodes as offline once it is ${this.opts.durationSeconds} s old`);
    }
  }

  private tick(): void {
    if (this.renewing || this.stopped) return;
    this.renewing = this.renew().finally(() => (this.renewing = undefined));
  }

  private async renew(): Promise<void> {
    const now = this.now();
    try {
      this.object = await this.write(now);
      this.renewals += 1;
      this.lastRenewedAt = now;
      this.okSince ??= now;
      if (this.failing) this.log.info('renewing this replica\'s Lease again');
      this.failing = false;
      if (this.lapsed) {
        this.lapsed = false;
        this.log.warn({ nodes: 'all of ours' }, 'this replica\'s Lease had lapsed, so other replicas may hold its nodes offline: publishing them again');
        this.opts.onRecovered();
      }
    } catch (err) {
      this.failures += 1;
      this.okSince = undefined;
      if (codeOf(err) === 404) this.lapsed = true; // deleted under us: the others saw the deletion
      if (!this.failing) this.log.warn({ err }, 'cannot renew this replica\'s Lease; it keeps serving its agents (retried)');
      this.failing = true;
      const failedAt = this.now();
      if (!this.lapsed && failedAt - this.lastRenewedAt > this.durationMs) {
        this.lapsed = true;
        this.log.error(
          { err, lapsedForMs: failedAt - this.lastRenewedAt },
          `this replica's Lease was not renewed for its duration (${this.opts.durationSeconds} s): the other replicas now treat its nodes as offline; it keeps serving its own agents`,
        );
      }
    }
  }

  /** Create the Lease (or take the existing one) and renew it at the resourceVersion we hold. */
  private async write(now: number): Promise<V1Lease> {
    const { client, namespace, replica } = this.opts;
    // A renewal that hangs must fail well before the Lease expires (the kubelet's renew deadline too).
    const deadline = { timeoutMs: Math.max(1_000, Math.floor(this.durationMs / 2)) };
    const renewTime = new client.k8s.V1MicroTime(now);
    const spec = { holderIdentity: replica, leaseDurationSeconds: this.opts.durationSeconds, renewTime };
    if (!this.object) {
      const body: V1Lease = { metadata: { name: this.name, namespace, labels: { [REPLICA_LABEL]: replica } }, spec: { ...spec, acquireTime: renewTime } };
      try {
        return (await client.call(`create lease ${namespace}/${this.name}`, () => client.coordination.createNamespacedLease({ namespace, body }), deadline))!;
      } catch (err) {
        if (codeOf(err) !== 409) throw err;
      }
      this.object = await client.call(`get lease ${namespace}/${this.name}`, () => client.coordination.readNamespacedLease({ name: this.name, namespace }), deadline);
      if (!this.object) throw new Error(`lease ${namespace}/${this.name} vanished`);
    }
    const body: V1Lease = { ...this.object, spec: { ...this.object.spec, ...spec } };
    try {
      return (await client.call(`renew lease ${namespace}/${this.name}`, () => client.coordination.replaceNamespacedLease({ name: this.name, namespace, body }), deadline))!;
    } catch (err) {
      if (codeOf(err) === 404 || codeOf(err) === 409) this.object = undefined; // created or read again next time
      throw err;
    }
  }
}
