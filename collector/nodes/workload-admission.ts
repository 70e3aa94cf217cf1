/**
 * What a node may claim, decided from its binding (node-binding.ts) and, when the collector has
 * one, the pod authority (node-pods.ts). Pure: the registry asks `registrationRefusal` for every
 * workload a node registers, the node session asks `certificateRefusal` before signing a workload
 * identity. Each answer is undefined (allowed) or one phrase saying why not, safe to log and to
 * send back to the node.
 */
import type { WorkloadRegistration } from '../../common/mesh-protocol';
import { describeScopes, inNodeRange, scopeAllows, type NodeBinding } from './node-binding';
import type { PodOnNode } from './node-pods';

/**
 * Why `binding.node` may not register `w`, or undefined. `pods`: what the pod authority says runs
 * on the node (undefined: no authority configured).
 */
export function registrationRefusal(binding: NodeBinding, w: WorkloadRegistration, pods: readonly PodOnNode[] | undefined): string | undefined {
  const scope = scopeRefusal(binding, w.namespace, w.serviceAccount);
  if (scope) return scope;
  if (!inNodeRange(binding.nodeCidr, w.ip)) return `ip ${w.ip} is outside node ${binding.node}'s pod range ${binding.nodeCidr ?? ''}`;
  if (pods === undefined) return undefined;
  const match = pods.find((p) => p.namespace === w.namespace && p.serviceAccount === w.serviceAccount && (p.ip === undefined || p.ip === w.ip));
  if (match) return undefined;
  return `no pod of service account ${w.namespace}/${w.serviceAccount} at ${w.ip} runs on node ${binding.node}`;
}

/** Why `binding.node` may not have a certificate for service account `namespace/serviceAccount`, or undefined. */
export function certificateRefusal(
  binding: NodeBinding,
  namespace: string,
  serviceAccount: string,
  pods: readonly PodOnNode[] | undefined,
): string | undefined {
  const scope = scopeRefusal(binding, namespace, serviceAccount);
  if (scope) return scope;
  if (pods === undefined || pods.some((p) => p.namespace === namespace && p.serviceAccount === serviceAccount)) return undefined;
  return `no pod of service account ${namespace}/${serviceAccount} runs on node ${binding.node}`;
}

function scopeRefusal(binding: NodeBinding, namespace: string, serviceAccount: string): string | undefined {
  if (scopeAllows(binding.scopes, namespace, serviceAccount)) return undefined;
  return `service account ${namespace}/${serviceAccount} is outside node ${binding.node}'s scope (${describeScopes(binding.scopes)})`;
}
