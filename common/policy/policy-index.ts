/**
 * Which policies apply to which workload, built once per PolicySet. Selection is Istio's: a
 * policy applies to workloads of its own namespace (every namespace if it is in the root
 * namespace) whose labels contain every `matchLabels` entry; no selector selects them all.
 * Results are cached per namespace + label set.
 */
import { DestinationTable } from '../routes/destination-table';
import { RouteTable } from '../routes/route-table';
import type { PolicyWorkload } from './requests';
import { DEFAULT_ROOT_NAMESPACE, type CompiledAuthorizationPolicy, type CompiledEgressPolicy, type PolicySet } from './types';

/** The policies selecting one workload, in evaluation order (by namespace, then name). */
export interface WorkloadPolicies {
  readonly deny: readonly CompiledAuthorizationPolicy[];
  readonly allow: readonly CompiledAuthorizationPolicy[];
  readonly audit: readonly CompiledAuthorizationPolicy[];
  readonly egress: readonly CompiledEgressPolicy[];
  /** Some authorization policy selecting the workload has an HTTP-only condition. */
  readonly needsHttp: boolean;
}

interface CacheEntry {
  namespace: string;
  /** The labels the entry was computed from, sorted; a mutated labels object is a miss. */
  labels: readonly (readonly [string, string])[];
  result: WorkloadPolicies;
}

/** Distinct label sets remembered before the cache starts over (bounds memory on label churn). */
const MAX_CACHED = 10_000;

export class PolicyIndex {
  readonly rootNamespace: string;
  readonly authorization: readonly CompiledAuthorizationPolicy[];
  readonly egress: readonly CompiledEgressPolicy[];
  /** The HTTPRoutes in force, by the Service they attach to. */
  readonly routes: RouteTable;
  /** The DestinationRules in force, by the Service their host names. */
  readonly destinations: DestinationTable;
  /** Keyed by the labels object, so callers that rebuild `{namespace, labels}` per request still hit. */
  private readonly byLabels = new WeakMap<object, CacheEntry>();
  private readonly byKey = new Map<string, WorkloadPolicies>();

  constructor(set: PolicySet, opts: { rootNamespace?: string } = {}) {
    this.rootNamespace = opts.rootNamespace ?? set.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
    const order = (a: { namespace: string; name: string }, b: { namespace: string; name: string }): number =>
      a.namespace === b.namespace ? compare(a.name, b.name) : compare(a.namespace, b.namespace);
    this.authorization = [...set.authorization].sort(order);
    this.egress = [...set.egress].sort(order);
    this.routes = set.routes && set.routes.length > 0 ? new RouteTable(set.routes, set.faults) : RouteTable.EMPTY;
    this.destinations = set.destinationRules && set.destinationRules.length > 0 ? new DestinationTable(set.destinationRules) : DestinationTable.EMPTY;
  }

  /** True if `policy` applies to `workload`. */
  selects(policy: { namespace: string; selector: Readonly<Record<string, string>> | undefined }, workload: PolicyWorkload): boolean {
    return selectsWorkload(this.rootNamespace, policy, workload);
  }

  policies(workload: PolicyWorkload): WorkloadPolicies {
    const labels = workload.labels;
    const hit = this.byLabels.get(labels);
    if (hit !== undefined && hit.namespace === workload.namespace && sameLabels(hit.labels, labels)) return hit.result;
    const sorted = Object.entries(labels).sort((a, b) => compare(a[0], b[0]));
    const key = JSON.stringify([workload.namespace, sorted]);
    let result = this.byKey.get(key);
    if (result === undefined) {
      result = this.select(workload);
      if (this.byKey.size >= MAX_CACHED) this.byKey.clear();
      this.byKey.set(key, result);
    }
    this.byLabels.set(labels, { namespace: workload.namespace, labels: sorted, result });
    return result;
  }

  /** Whether any policy selecting the workload needs the HTTP request to decide. */
  needsHttp(workload: PolicyWorkload): boolean {
    return this.policies(workload).needsHttp;
  }

  egressFor(workload: PolicyWorkload): readonly CompiledEgressPolicy[] {
    return this.policies(workload).egress;
  }

  private select(workload: PolicyWorkload): WorkloadPolicies {
    const mine = this.authorization.filter((p) => this.selects(p, workload));
    return {
      deny: mine.filter((p) => p.action === 'DENY'),
      allow: mine.filter((p) => p.action === 'ALLOW'),
      audit: mine.filter((p) => p.action === 'AUDIT'),
      egress: this.egress.filter((p) => this.selects(p, workload)),
      needsHttp: mine.some((p) => p.http),
    };
  }
}

/** True if `policy` applies to `workload`, policies of `rootNamespace` applying in every namespace. */
export function selectsWorkload(rootNamespace: string, policy: { namespace: string; selector: Readonly<Record<string, string>> | undefined }, workload: PolicyWorkload): boolean {
  if (policy.namespace !== workload.namespace && policy.namespace !== rootNamespace) return false;
  const selector = policy.selector;
  if (selector === undefined) return true;
  const labels = workload.labels;
  for (const key in selector) {
    if (!Object.prototype.hasOwnProperty.call(labels, key) || labels[key] !== selector[key]) return false;
  }
  return true;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Same label set as the snapshot, without allocating. */
function sameLabels(snapshot: readonly (readonly [string, string])[], labels: Record<string, string>): boolean {
  let count = 0;
  for (const key in labels) {
    if (Object.prototype.hasOwnProperty.call(labels, key)) count++;
  }
  if (count !== snapshot.length) return false;
  for (let i = 0; i < snapshot.length; i++) {
    const entry = snapshot[i]!;
    if (labels[entry[0]] !== entry[1] || !Object.prototype.hasOwnProperty.call(labels, entry[0])) return false;
  }
  return true;
}
