/**
 * What a user's reference names: `[Kind/]namespace/name` or a unique name → a stored policy (or,
 * for history, a deleted one), `namespace/name` or a unique name → a registered workload. Pure
 * functions over the current set and the registry; each bad reference is one line.
 */
import { invalidArgument, PalisadeError } from '../../common/errors';
import { endpointMatch } from '../../common/flows-api';
import type { RegistryWorkload } from '../../common/mesh-protocol';
import { policyKey, type StoredPolicy } from './repository';

/** A reference as it is quoted back in messages: JSON, cut at 80 characters. */
export const quoteRef = (v: string): string => JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);

/** The stored policies `ref` names; throws on a malformed reference. */
export function matchingPolicies(current: readonly StoredPolicy[], ref: string): StoredPolicy[] {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > 512) throw invalidArgument('invalid policy name: give [Kind/]namespace/name or a name');
  const parts = ref.split('/');
  if (parts.length > 3 || parts.some((x) => x === '')) throw invalidArgument(`invalid policy name ${quoteRef(ref)}: give [Kind/]namespace/name or a name`);
  const [kind, namespace, name] = parts.length === 3 ? parts : parts.length === 2 ? [undefined, parts[0], parts[1]] : [undefined, undefined, parts[0]];
  if (kind !== undefined && kind !== 'AuthorizationPolicy' && kind !== 'EgressPolicy' && kind !== 'HTTPRoute' && kind !== 'GRPCRoute' && kind !== 'FaultInjection' && kind !== 'DestinationRule') {
    throw invalidArgument(`invalid policy kind ${quoteRef(kind)}: use AuthorizationPolicy, EgressPolicy, HTTPRoute, GRPCRoute, FaultInjection or DestinationRule`);
  }
  return current.filter((p) => (kind === undefined || p.kind === kind) && (namespace === undefined || p.namespace === namespace) && p.name === name);
}

/** `[Kind/]namespace/name` or a unique name → the stored policy. */
export function resolvePolicy(current: readonly StoredPolicy[], ref: string): StoredPolicy {
  const matches = matchingPolicies(current, ref);
  if (matches.length === 0) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no policy ${quoteRef(ref)} (palisade policy list shows them)`);
  if (matches.length > 1) {
    throw invalidArgument(`${quoteRef(ref)} names ${matches.length} policies (${matches.map((p) => policyKey(p)).join(', ')}): name it as Kind/namespace/name`);
  }
  return matches[0]!;
}

/**
 * The history key for `ref`: a stored policy, or a full Kind/namespace/name of a deleted one
 * (one `hasHistory` knows).
 */
export function historyKey(current: readonly StoredPolicy[], ref: string, hasHistory: (key: string) => boolean): string {
  const matches = matchingPolicies(current, ref);
  if (matches.length === 1) return policyKey(matches[0]!);
  if (matches.length > 1) return policyKey(resolvePolicy(current, ref));
  const parts = ref.split('/');
  if (parts.length === 3 && hasHistory(ref)) return ref;
  throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no policy ${quoteRef(ref)} (a deleted one needs its full Kind/namespace/name)`);
}

/**
 * A registered workload by `namespace/name` or unique `name`. With `allowUnknownNamespaced`, a
 * `namespace/name` no one registers is taken as it is (its recorded flows may still be there).
 */
export function resolveWorkload(
  workloads: readonly RegistryWorkload[],
  ref: string,
  allowUnknownNamespaced = false,
): { namespace: string; name: string } {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > 253) throw invalidArgument('invalid workload: give namespace/name or name');
  const m = endpointMatch(ref);
  let found: RegistryWorkload[];
  if (m.kind === 'namespaced') found = workloads.filter((w) => w.namespace === m.namespace && w.name === m.workload);
  else if (m.kind === 'workload') found = workloads.filter((w) => w.name === m.workload);
  else throw invalidArgument(`invalid workload ${quoteRef(ref)}: give namespace/name or name, not an address or identity`);
  const unique = [...new Map(found.map((w) => [`${w.namespace}/${w.name}`, w])).values()];
  if (unique.length === 1) return { namespace: unique[0]!.namespace, name: unique[0]!.name };
  if (unique.length > 1) throw invalidArgument(`workload ${quoteRef(ref)} is ambiguous (${unique.map((w) => `${w.namespace}/${w.name}`).join(', ')}): name it as namespace/name`);
  if (allowUnknownNamespaced && m.kind === 'namespaced') return { namespace: m.namespace, name: m.workload };
  const known = [...new Set(workloads.map((w) => `${w.namespace}/${w.name}`))].sort().slice(0, 10);
  throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `unknown workload ${quoteRef(ref)} (registered: ${known.length ? known.join(', ') : 'none'})`);
}
