/**
 * The seam for an authority on which pods run where (the Kubernetes source: collector/kubernetes/
 * pods-watch.ts): when the collector is given one, a node may register a workload, and get its
 * certificate, only if the source says a pod with that namespace and service account (and that
 * IP, when the source knows it) runs on that node — Istio's node authorizer. Without one, the
 * node's token scope and range decide alone. An implementation that has not synced yet must answer
 * `[]` (fail closed).
 */
export interface PodOnNode {
  namespace: string;
  serviceAccount: string;
  /** The pod's IPv4 address, when known. */
  ip?: string;
  /** The pod's name, for messages. */
  name?: string;
}

/** Which nodes' pods changed: these, or (at the first sync) every node. */
export type NodePodsChange = ReadonlySet<string> | 'all';

export interface NodePods {
  /** The pods that run on `node` now, as the authority sees them. */
  podsOn(node: string): readonly PodOnNode[];
  /**
   * False until the authority has listed the pods once (absent: always true). Until then a node's
   * registration waits (nothing of it is admitted) and certificates are refused.
   */
  readonly hasSynced?: boolean;
  /** Call `listener` after the pods of some nodes changed; returns the unsubscribe. */
  onChange?(listener: (change: NodePodsChange) => void): () => void;
}
