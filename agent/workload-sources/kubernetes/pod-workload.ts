/**
 * Kubernetes pods as mesh workloads, decided once at the boundary: a Pod object becomes a plain
 * `PodView`; which pods are in the mesh (`meshMembership`) and what workload a pod is
 * (`workloadFromPod`) are pure functions of it, table-tested.
 *
 * Membership: a namespace is in the mesh with the label `palisade.dev/mesh: enabled`; a pod's
 * annotation `palisade.dev/mesh: enabled|disabled` overrides its namespace. Pods on the host's
 * network are never enrolled (they share the node's network namespace).
 */
import { isDnsLabel, spiffeId } from '../../../common/identity';
import { isLabelKey, isLabelValue, WORKLOAD_LABEL } from '../../../common/labels';
import type { Workload } from '../../workloads';

/** The namespace label that puts a namespace's pods in the mesh, with the value MESH_ENABLED. */
export const MESH_LABEL = 'palisade.dev/mesh';
/** The pod annotation that overrides its namespace: MESH_ENABLED or MESH_DISABLED. */
export const MESH_ANNOTATION = 'palisade.dev/mesh';
export const MESH_ENABLED = 'enabled';
export const MESH_DISABLED = 'disabled';
/** Pod annotation `palisade.dev/strict: "true"`: only the node proxy may open connections to the pod. */
export const STRICT_ANNOTATION = 'palisade.dev/strict';
/** The most labels a workload may carry (the mesh protocol's limit), ours included. */
export const MAX_WORKLOAD_LABELS = 64;

/** What the agent uses of a Pod object. */
export interface PodView {
  uid: string;
  namespace: string;
  name: string;
  nodeName: string | undefined;
  serviceAccount: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  hostNetwork: boolean;
  /** status.podIP, when the kubelet has set it. */
  podIp: string | undefined;
  phase: string | undefined;
}

/** The fields of a Pod object (client-node's V1Pod) this module reads. */
export interface PodObject {
  metadata?: { uid?: string; namespace?: string; name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { nodeName?: string; serviceAccountName?: string; hostNetwork?: boolean };
  status?: { podIP?: string; phase?: string };
}

/** A Pod object as plain data; undefined when it lacks what every pod has (uid, name, namespace). */
export function podView(o: PodObject): PodView | undefined {
  const m = o.metadata;
  if (!m?.uid || !m.name || !m.namespace) return undefined;
  return {
    uid: m.uid.toLowerCase(),
    namespace: m.namespace,
    name: m.name,
    nodeName: o.spec?.nodeName || undefined,
    serviceAccount: o.spec?.serviceAccountName || 'default',
    labels: { ...(m.labels ?? {}) },
    annotations: { ...(m.annotations ?? {}) },
    hostNetwork: o.spec?.hostNetwork === true,
    podIp: o.status?.podIP || undefined,
    phase: o.status?.phase || undefined,
  };
}

export interface Membership {
  member: boolean;
  /** Why, in a few words (for the log). */
  why: string;
}

/** Is the pod in the mesh, given its namespace's labels? */
export function meshMembership(pod: Pick<PodView, 'hostNetwork' | 'annotations'>, namespaceLabels: Record<string, string>): Membership {
  if (pod.hostNetwork) return { member: false, why: 'the pod uses the host network' };
  const override = pod.annotations[MESH_ANNOTATION];
  if (override === MESH_ENABLED) return { member: true, why: `annotation ${MESH_ANNOTATION}=${MESH_ENABLED}` };
  if (override === MESH_DISABLED) return { member: false, why: `annotation ${MESH_ANNOTATION}=${MESH_DISABLED}` };
  const label = namespaceLabels[MESH_LABEL];
  if (label === MESH_ENABLED) return { member: true, why: `namespace label ${MESH_LABEL}=${MESH_ENABLED}` };
  return { member: false, why: `namespace without ${MESH_LABEL}=${MESH_ENABLED}` };
}

export type PodWorkload = { ok: true; workload: Workload } | { ok: false; problem: string };

/**
 * The workload a pod in the mesh is, at `ip` in network namespace `netns`. A pod the mesh cannot
 * carry (a name or service account that is not a DNS label, too many labels) is a one-line problem.
 */
export function workloadFromPod(pod: PodView, where: { netns: string; ip: string }, trustDomain: string): PodWorkload {
  const label = `pod ${pod.namespace}/${pod.name}`;
  if (!isDnsLabel(pod.name)) {
    return { ok: false, problem: `${label}: the mesh names workloads by DNS-1123 label (lowercase letters, digits and '-', at most 63), and ${JSON.stringify(pod.name)} is not one (rename the pod, or annotate it ${MESH_ANNOTATION}: ${MESH_DISABLED})` };
  }
  if (!isDnsLabel(pod.namespace)) return { ok: false, problem: `${label}: namespace ${JSON.stringify(pod.namespace)} is not a DNS-1123 label` };
  if (!isDnsLabel(pod.serviceAccount)) {
    return { ok: false, problem: `${label}: service account ${JSON.stringify(pod.serviceAccount)} is not a DNS-1123 label (it is part of the pod's SPIFFE identity)` };
  }
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(pod.labels)) {
    if (k === WORKLOAD_LABEL) continue;
    if (!isLabelKey(k) || typeof v !== 'string' || !isLabelValue(v)) return { ok: false, problem: `${label}: label ${JSON.stringify(k)} is not a valid label` };
    labels[k] = v;
  }
  labels[WORKLOAD_LABEL] = pod.name;
  const count = Object.keys(labels).length;
  if (count > MAX_WORKLOAD_LABELS) {
    return { ok: false, problem: `${label}: ${count - 1} labels is more than the mesh carries (at most ${MAX_WORKLOAD_LABELS - 1}, plus ${WORKLOAD_LABEL})` };
  }
  return {
    ok: true,
    workload: {
      name: pod.name,
      namespace: pod.namespace,
      serviceAccount: pod.serviceAccount,
      netns: where.netns,
      ip: where.ip,
      strict: pod.annotations[STRICT_ANNOTATION] === 'true',
      labels,
      identity: spiffeId(trustDomain, pod.namespace, pod.serviceAccount),
    },
  };
}
