/**
 * Policies owned by the Kubernetes API (`palisade collector --kubernetes`): the AuthorizationPolicy,
 * EgressPolicy, HTTPRoute, GRPCRoute and FaultInjection objects of the cluster, each checked alone by the watch (a refused object keeps
 * its previous version), replace the ones the API owned before. Ownership goes policy directory,
 * then Kubernetes, then the collector's own API: an object whose name the policy directory defines
 * stays the directory's (and is reported as shadowed); one created through the collector's API is
 * taken over.
 */
import type { PolicyChange } from '../../common/control-api';
import { invalidArgument } from '../../common/errors';
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

/** One policy written to the Kubernetes API: created or replaced (`put`, with its manifest), or deleted. */
export interface ApiPolicyWrite {
  op: 'put' | 'delete';
  kind: string;
  namespace: string;
  name: string;
  manifest?: Readonly<Record<string, unknown>>;
}

/**
 * In Kubernetes mode, where changes through the collector's API are stored: the Kubernetes API
 * (collector/kubernetes/policy-writes.ts). `write` resolves once the change is in force here.
 */
export interface ApiPolicyStore {
  /** This replica's name, in audit records and on the objects it writes. */
  readonly replica: string;
  /** Whether the policy's object was written through a collector (so it may be changed through one). */
  writable(p: { kind: string; namespace: string; name: string }): boolean;
  /** Whether the Kubernetes API holds the policy's object. */
  holds(p: { kind: string; namespace: string; name: string }): boolean;
  /** Whether the cluster serves `kind` (false: its CRD is not installed; undefined: not known yet). */
  served(kind: string): boolean | undefined;
  write(writes: readonly ApiPolicyWrite[], author: string): Promise<unknown>;
}

/** The writes that make `plan`'s changes: a put of each created or updated policy (its manifest in `next`), a delete of each deleted one. */
export function apiWritesOf(changes: readonly Pick<PolicyChange, 'op' | 'kind' | 'namespace' | 'name'>[], next: readonly DesiredPolicy[]): ApiPolicyWrite[] {
  const byKey = new Map(next.map((p) => [policyKey(p), p]));
  return changes
    .filter((c) => c.op !== 'unchanged')
    .map((c) => {
      const id = { kind: c.kind, namespace: c.namespace, name: c.name };
      if (c.op === 'delete') return { op: 'delete', ...id };
      const want = byKey.get(policyKey(c));
      if (!want) throw new Error(`internal: ${policyKey(c)} is ${c.op}d but not in the next set`);
      return { op: 'put', ...id, manifest: want.manifest };
    });
}

/**
 * Kubernetes mode: where a change is stored. In the Kubernetes API, unless it only creates or
 * updates policies of kinds the cluster does not serve (no CRD) or deletes policies the API does
 * not hold (this replica's own): those stay in this replica's store, as with one collector (like
 * the join tokens without their CRD), `unserved` naming the kinds so the answer can warn. A change
 * needing both is refused (PALISADE_ERR_INVALID_ARGUMENT): half of it would not be shared.
 */
export function storeOf(
  changes: readonly Pick<PolicyChange, 'op' | 'kind' | 'namespace' | 'name'>[],
  cluster: { served(kind: string): boolean | undefined; holds(p: { kind: string; namespace: string; name: string }): boolean },
): { where: 'api' | 'local'; unserved: string[] } {
  const changed = changes.filter((c) => c.op !== 'unchanged');
  const local = changed.filter((c) => (c.op === 'delete' ? !cluster.holds(c) : cluster.served(c.kind) === false));
  const unserved = [...new Set(local.filter((c) => c.op !== 'delete').map((c) => c.kind))].sort();
  if (local.length === 0) return { where: 'api', unserved };
  if (local.length === changed.length) return { where: 'local', unserved };
  const apart = local.map((c) => `${c.kind} ${c.namespace}/${c.name}`).join(', ');
  throw invalidArgument(`${apart}: kept at this collector only (${unserved.length > 0 ? `the cluster serves no ${unserved.join(', ')}: its CRD is not installed` : 'not in the Kubernetes API'}), while the rest of the change goes to the Kubernetes API: apply them apart, or install the CRD`);
}
