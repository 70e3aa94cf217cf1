/**
 * Collector replica liveness: every replica watches the others' Leases (./replica-lease.ts, those
 * labelled palisade.dev/collector-replica in the collector's namespace) and, every tenth of its
 * Lease's duration (at most 1 s apart), judges them (../nodes/replica-liveness.ts): the shared registrations a dead replica holds (its
 * id is their stamp's `replica`) go offline in this replica's registry, exactly as if their
 * sessions had closed — one delta to this replica's agents; the workloads stay, their services'
 * endpoints are not ready. A node comes back only with a newer share: its agent's new session at
 * any replica, or its holder writing again after it renews (ReplicaLease `onRecovered`).
 *
 * At start, and after this replica's own renewals or its watch failed, nobody is judged until a
 * full duration has passed with both working: so stale objects found at start — held by a replica
 * whose Lease has stopped changing, or that has none — go offline one duration after start, and a
 * replica cut off from the API marks nobody. Leases left by killed replicas (ids are per process)
 * are deleted an hour after they expired (`collectAfterMs`), at the resourceVersion seen.
 */
import type { V1Lease } from '@kubernetes/client-node';
import type { KubeClient } from '../../common/kube/client';
import { Informer } from '../../common/kube/informer';
import type { Logger } from '../../common/log';
import type { ReplicaStatus } from '../../common/control-api';
import { leasesToCollect, noteHolders, observeLease, offlineNodes, replicaDead, replicaRows, type Judgement, type ReplicaSeen } from '../nodes/replica-liveness';
import type { WorkloadRegistry } from '../registry';
import { REPLICA_LABEL, replicaLeaseName, type ReplicaLease } from './replica-lease';

export interface ReplicaLeasesOptions {
  client: KubeClient;
  namespace: string;
  registry: WorkloadRegistry;
  /** This replica's own Lease: its renewals say whether our view of the API is current. */
  own: ReplicaLease;
  log: Logger;
  /** How long after its Lease expired a dead replica's Lease is deleted (default 1 h). */
  collectAfterMs?: number;
  now?: () => number;
}

export class ReplicaLeases {
  /** Nodes marked offline because their holder died; expired Leases deleted. */
  marked = 0;
  collected = 0;
  private replicas = new Map<string, ReplicaSeen>();
  private readonly versions = new Map<string, string>();
  private readonly informer: Informer<V1Lease>;
  private readonly reported = new Set<string>();
  private readonly collecting = new Set<string>();
  private readonly now: () => number;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private watchOkSince: number | undefined;

  constructor(private readonly opts: ReplicaLeasesOptions) {
    const { client, namespace } = opts;
    this.now = opts.now ?? Date.now;
    this.log = opts.log.child({ component: 'replica-leases' });
    this.informer = new Informer<V1Lease>(
      {
        client,
        what: `collector replica Leases in ${namespace}`,
        path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
        list: () => client.coordination.listNamespacedLease({ namespace, labelSelector: REPLICA_LABEL }),
        labelSelector: REPLICA_LABEL,
        log: this.log,
      },
      { add: (o) => this.seen(o), update: (o) => this.seen(o), delete: (o) => this.gone(o) },
    );
  }

  get self(): string {
    return this.opts.registry.replica;
  }

  start(): void {
    this.informer.start();
    const tickMs = Math.min(1_000, Math.max(100, Math.floor(this.opts.own.durationMs / 10)));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.informer.stop();
  }

  /** The replicas judged dead now (tests, logs). */
  dead(): string[] {
    const j = this.judgement(this.now());
    return [...this.replicas.keys()].filter((r) => r !== this.self && replicaDead(this.replicas.get(r), j));
  }

  /** Every replica known, this one first, as judged now (`palisade status`). */
  status(): ReplicaStatus[] {
    const { registry, own } = this.opts;
    const now = this.now();
    return replicaRows(this.replicas, registry.heldNodes(), { replica: this.self, renewedAt: own.renewedAt, durationMs: own.durationMs, nodes: registry.localNodes().length }, this.judgement(now));
  }

  /** Judge, mark the dead replicas' nodes offline, forget what no longer matters, collect old Leases. */
  tick(): void {
    const now = this.now();
    const j = this.judgement(now);
    const { registry } = this.opts;
    const held = registry.heldNodes();
    this.replicas = noteHolders(this.replicas, held, now);
    const marked = new Map<string, string[]>();
    for (const h of offlineNodes(held, this.replicas, this.self, j)) {
      if (!registry.markOffline(h.node, h.stamp)) continue;
      this.marked += 1;
      marked.set(h.stamp.replica, [...(marked.get(h.stamp.replica) ?? []), h.node]);
    }
    for (const [replica, nodes] of marked) {
      const why = this.replicas.get(replica)?.deleted ? 'its Lease was deleted' : this.replicas.get(replica)?.lease ? 'its Lease was not renewed within its duration' : 'it has no Lease';
      if (!this.reported.has(replica)) this.log.warn({ replica, nodes: nodes.slice(0, 20), count: nodes.length }, `collector replica ${replica} is gone (${why}): its nodes are offline here until their agents reconnect`);
      else this.log.info({ replica, nodes: nodes.slice(0, 20), count: nodes.length }, `more nodes of the gone collector replica ${replica} offline`);
      this.reported.add(replica);
    }
    const holders = new Set(held.map((h) => h.stamp.replica));
    for (const [replica, seen] of this.replicas) {
      if (!holders.has(replica) && (seen.deleted || !seen.lease)) {
        this.replicas.delete(replica);
        this.reported.delete(replica);
      }
    }
    for (const replica of leasesToCollect(this.replicas, this.self, j, this.opts.collectAfterMs ?? 3_600_000)) void this.collect(replica);
  }

  /** Since when our view is current: our renewals succeed and the watch has listed since it last failed. */
  private judgement(now: number): Judgement {
    if (!this.informer.healthy) this.watchOkSince = undefined;
    else this.watchOkSince ??= now;
    const own = this.opts.own.currentSince(now);
    const currentSince = own === undefined || this.watchOkSince === undefined ? undefined : Math.max(own, this.watchOkSince);
    return { now, currentSince, graceMs: this.opts.own.durationMs };
  }

  private replicaOf(o: V1Lease): string | undefined {
    const replica = o.metadata?.labels?.[REPLICA_LABEL];
    // Only a Lease whose name, label and holder agree is a replica's heartbeat.
    return replica && o.spec?.holderIdentity === replica && o.metadata?.name === replicaLeaseName(replica) ? replica : undefined;
  }

  private seen(o: V1Lease): void {
    const replica = this.replicaOf(o);
    if (!replica) return;
    const now = this.now();
    const prev = this.replicas.get(replica);
    const durationMs = Math.max(1, o.spec?.leaseDurationSeconds ?? 0) * 1000;
    const lease = observeLease(prev?.deleted ? undefined : prev?.lease, String(o.spec?.renewTime ?? ''), durationMs, now);
    if (lease !== prev?.lease) this.reported.delete(replica);
    this.replicas.set(replica, { lease, deleted: false, firstSeenAt: prev?.firstSeenAt ?? now });
    if (o.metadata?.resourceVersion) this.versions.set(replica, o.metadata.resourceVersion);
  }

  private gone(o: V1Lease): void {
    const replica = this.replicaOf(o);
    if (!replica) return;
    const prev = this.replicas.get(replica);
    this.replicas.set(replica, { lease: prev?.lease, deleted: true, firstSeenAt: prev?.firstSeenAt ?? this.now() });
    this.versions.delete(replica);
  }

  /** Delete a long-expired Lease, at the resourceVersion seen (a renewal in between wins: 409). */
  private async collect(replica: string): Promise<void> {
    const resourceVersion = this.versions.get(replica);
    if (!resourceVersion || this.collecting.has(replica)) return;
    this.collecting.add(replica);
    const { client, namespace } = this.opts;
    const name = replicaLeaseName(replica);
    try {
      await client.call(`delete lease ${namespace}/${name}`, () => client.coordination.deleteNamespacedLease({ name, namespace, body: { preconditions: { resourceVersion } } }), { notFound: 'undefined' });
      this.collected += 1;
      this.log.info({ replica, lease: `${namespace}/${name}` }, 'deleted the Lease of a collector replica long gone');
    } catch (err) {
      this.log.debug({ err, replica }, 'cannot delete an expired replica Lease (retried)');
    } finally {
      this.collecting.delete(replica);
    }
  }
}
