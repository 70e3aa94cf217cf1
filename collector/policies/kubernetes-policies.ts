/**
 * Policies owned by the Kubernetes API (`palisade collector --kubernetes`): the AuthorizationPolicy,
 * EgressPolicy, HTTPRoute, GRPCRoute and FaultInjection objects of the cluster, each checked alone by the watch (a refused object keeps
 * its previous version), replace the ones the API owned before. Ownership goes policy directory,
 * then Kubernetes, then the collector's own API: an object whose name the policy directory defines
 * stays the directory's (and is reported as shadowed); one created through the collector's API is
 * taken over.
 */
import { allOf, type PolicySet } from '../../common/policy';
import { desiredPolicy, policyKey, type DesiredPolicy, type StoredPolicy } from './repository';

export function withKubernetesPolicies(
  set: PolicySet,
  current: readonly StoredPolicy[],
): { next: DesiredPolicy[]; takenOver: StoredPolicy[]; shadowed: string[] } {
  const dirKeys = new Set(current.filter((p) => p.origin === 'dir').map(policyKey));
  const incoming = allOf(set);
  const shadowed = incoming.filter((p) => dirKeys.has(policyKey(p))).map((p) => p.source);
  const fromApi = incoming.filter((p) => !dirKeys.has(policyKey(p))).map((p) => desiredPolicy(p, 'kubernetes', p.source));
  const apiKeys = new Set(fromApi.map(policyKey));
  const takenOver = current.filter((p) => p.origin === 'api' && apiKeys.has(policyKey(p)));
  const next = [...current.filter((p) => p.origin !== 'kubernetes' && !apiKeys.has(policyKey(p))), ...fromApi];
  return { next, takenOver, shadowed };
}
