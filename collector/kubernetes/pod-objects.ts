/**
 * A Pod object as the node authorizer sees it (pure, table-tested): on which node it runs, as
 * which namespace and service account, at which IPv4 address once the kubelet has set one.
 * What no node may claim a certificate for is left out: a pod not scheduled yet, one on the host's
 * network (never in the mesh; its address is the node's), one whose containers have all ended
 * (phase Succeeded or Failed). A terminating pod (deletionTimestamp set) still runs until the
 * object is gone: it keeps its place, so it can drain with its identity.
 */
import { isIPv4 } from 'node:net';
import type { PodOnNode } from '../nodes/node-pods';

/** The fields of a Pod (client-node's V1Pod) read here. */
export interface PodObject {
  metadata?: { uid?: string; namespace?: string; name?: string };
  spec?: { nodeName?: string; serviceAccountName?: string; hostNetwork?: boolean };
  status?: { phase?: string; podIP?: string; podIPs?: Array<{ ip?: string }> };
}

export interface PodPlacement {
  uid: string;
  node: string;
  pod: PodOnNode;
}

const ENDED_PHASES: ReadonlySet<string> = new Set(['Succeeded', 'Failed']);

/** Where the pod runs and as what, or undefined when no node may claim it (see above). */
export function podPlacement(o: PodObject): PodPlacement | undefined {
  const m = o.metadata;
  const node = o.spec?.nodeName;
  if (!m?.uid || !m.namespace || !m.name || !node) return undefined;
  if (o.spec?.hostNetwork === true || ENDED_PHASES.has(o.status?.phase ?? '')) return undefined;
  const ip = [o.status?.podIP, ...(o.status?.podIPs ?? []).map((p) => p.ip)].find((a): a is string => a !== undefined && isIPv4(a));
  return {
    uid: m.uid,
    node,
    pod: { namespace: m.namespace, serviceAccount: o.spec?.serviceAccountName || 'default', name: m.name, ...(ip ? { ip } : {}) },
  };
}
