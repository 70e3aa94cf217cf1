/**
 * The collector's node authorizer from the Kubernetes API: a list + watch of every Pod (all
 * namespaces), kept by node (./pod-objects.ts says what counts), answering `podsOn(node)` for
 * collector/nodes/workload-admission.ts (the NodePods seam). Before the first list it answers
 * `[]` (fail closed) and says `synced: false`. An API outage changes nothing (the informer keeps
 * what it had: certificates already issued stay good, pods it never saw get none); only the API's
 * answers do. Changes are coalesced for `debounceMs`, then the listeners hear which nodes changed
 * (every node at the first sync), so the node sessions decide their registrations again.
 */
import type { KubeClient } from '../../common/kube/client';
import { Informer } from '../../common/kube/informer';
import type { Logger } from '../../common/log';
import type { NodePods, NodePodsChange, PodOnNode } from '../nodes/node-pods';
import { podPlacement, type PodObject, type PodPlacement } from './pod-objects';

export interface PodsWatchOptions {
  client: KubeClient;
  log: Logger;
  /** How long changes are gathered before the listeners hear of them (default 100 ms). */
  debounceMs?: number;
}

type Pod = PodObject & { metadata?: object };

export class PodsWatch implements NodePods {
  private readonly informer: Informer<Pod>;
  /** Each pod that some node may claim, by UID. */
  private readonly placed = new Map<string, PodPlacement>();
  /** The same, by node, then UID. */
  private readonly byNode = new Map<string, Map<string, PodOnNode>>();
  private readonly listeners = new Set<(change: NodePodsChange) => void>();
  private changed = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: PodsWatchOptions) {
    const { client } = opts;
    const log = opts.log.child({ component: 'kubernetes-pods' });
    this.informer = new Informer<Pod>(
      { client, what: 'pods', path: '/api/v1/pods', list: () => client.core.listPodForAllNamespaces(), log },
      { add: (o) => this.put(o), update: (o) => this.put(o), delete: (o) => this.drop(o.metadata?.uid) },
    );
  }

  start(): void {
    this.informer.start();
    void this.informer.synced().then(() => {
      if (this.stopped) return;
      this.changed.clear();
      for (const l of this.listeners) l('all');
    });
  }

  synced(): Promise<void> {
    return this.informer.synced();
  }

  /** NodePods: false until the first list. */
  get hasSynced(): boolean {
    return this.informer.hasSynced;
  }

  podsOn(node: string): readonly PodOnNode[] {
    if (!this.informer.hasSynced) return [];
    const pods = this.byNode.get(node);
    return pods ? [...pods.values()] : [];
  }

  onChange(listener: (change: NodePodsChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Pods some node may claim now (for `palisade status`). */
  get count(): number {
    return this.placed.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.listeners.clear();
    await this.informer.stop();
  }

  private put(o: Pod): void {
    const uid = o.metadata?.uid;
    if (!uid) return;
    const next = podPlacement(o);
    const before = this.placed.get(uid);
    if (before && next && before.node === next.node && samePod(before.pod, next.pod)) return;
    this.drop(uid);
    if (!next) return;
    this.placed.set(uid, next);
    let pods = this.byNode.get(next.node);
    if (!pods) this.byNode.set(next.node, (pods = new Map()));
    pods.set(uid, next.pod);
    this.touch(next.node);
  }

  private drop(uid: string | undefined): void {
    const before = uid === undefined ? undefined : this.placed.get(uid);
    if (!before) return;
    this.placed.delete(uid!);
    const pods = this.byNode.get(before.node);
    pods?.delete(uid!);
    if (pods?.size === 0) this.byNode.delete(before.node);
    this.touch(before.node);
  }

  private touch(node: string): void {
    this.changed.add(node);
    if (this.timer || this.stopped || !this.informer.hasSynced) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const nodes = this.changed;
      this.changed = new Set();
      if (!this.stopped) for (const l of this.listeners) l(nodes);
    }, this.opts.debounceMs ?? 100);
  }
}

function samePod(a: PodOnNode, b: PodOnNode): boolean {
  return a.namespace === b.namespace && a.serviceAccount === b.serviceAccount && a.ip === b.ip && a.name === b.name;
}
