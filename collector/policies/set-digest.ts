/**
 * What the collector's queries read of the compiled policy set, as plain data: which
 * AuthorizationPolicies and EgressPolicies select which labels (the dashboard's workload panel,
 * `egress list`) and the routes in force (`palisade status`). The set itself is compiled in the
 * policy worker (policy-worker.ts `check`), whose answer is this digest: the collector's thread
 * keeps it instead of thousands of compiled policies, and compiles nothing on a change from the
 * API. Made by `digestOf` the same way wherever the set was compiled.
 */
import type { EgressRuleView, RouteStatus } from '../../common/control-api';
import { DEFAULT_ROOT_NAMESPACE, PolicyIndex, selectsWorkload, type CompiledEgressRule, type PolicySet, type PolicyWorkload } from '../../common/policy';
import { routeViews } from './route-status';

/** An AuthorizationPolicy: enough to say whether it selects a workload. */
export interface AuthorizationDigest {
  namespace: string;
  name: string;
  action: string;
  selector?: Record<string, string>;
}

/** An EgressPolicy: its selector, and each deny then allow entry as `egress list` shows it. */
export interface EgressDigest {
  namespace: string;
  name: string;
  selector?: Record<string, string>;
  entries: Array<Pick<EgressRuleView, 'action' | 'hosts' | 'cidrs' | 'ports' | 'protocol'>>;
}

/** A route or DestinationRule in `palisade status`, but for who enforces it (route-status.ts). */
export type RouteDigest = Omit<RouteStatus, 'version' | 'enforcedBy' | 'agents'>;

export interface SetDigest {
  rootNamespace: string;
  /** In the index's order (namespace, name). */
  authorization: AuthorizationDigest[];
  /** In the index's order (namespace, name). */
  egress: EgressDigest[];
  routes: RouteDigest[];
}

export const EMPTY_DIGEST: SetDigest = { rootNamespace: DEFAULT_ROOT_NAMESPACE, authorization: [], egress: [], routes: [] };

const selectorOf = (s: Readonly<Record<string, string>> | undefined): { selector?: Record<string, string> } => (s === undefined ? {} : { selector: { ...s } });

/** The digest of a compiled set (`index`: its PolicyIndex, if already made). */
export function digestOf(set: PolicySet, index: PolicyIndex = new PolicyIndex(set)): SetDigest {
  return {
    rootNamespace: index.rootNamespace,
    authorization: index.authorization.map((p) => ({ namespace: p.namespace, name: p.name, action: p.action, ...selectorOf(p.selector) })),
    egress: index.egress.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      ...selectorOf(p.selector),
      entries: [...p.deny.map((r) => entryOf('deny', r)), ...p.rules.map((r) => entryOf('allow', r))],
    })),
    routes: routeViews([...(set.routes ?? []), ...(set.destinationRules ?? [])]),
  };
}

function entryOf(action: 'allow' | 'deny', r: CompiledEgressRule): EgressDigest['entries'][number] {
  return {
    action,
    hosts: [...(r.hosts ?? []), ...r.hostSuffixes.map((suffix) => `*${suffix}`)],
    cidrs: (r.cidrs ?? []).map((c) => c.text),
    ports: r.ports ? [...r.ports].sort((x, y) => x - y) : [],
    protocol: r.protocol,
  };
}

/** Whether the digested policy `p` selects `workload`. */
export const digestSelects = (digest: SetDigest, p: { namespace: string; selector?: Record<string, string> }, workload: PolicyWorkload): boolean =>
  selectsWorkload(digest.rootNamespace, { namespace: p.namespace, selector: p.selector }, workload);

/** The AuthorizationPolicies selecting `workload`, in evaluation order: DENY, ALLOW, AUDIT (PolicyIndex.policies). */
export function authorizationSelecting(digest: SetDigest, workload: PolicyWorkload): AuthorizationDigest[] {
  const mine = digest.authorization.filter((p) => digestSelects(digest, p, workload));
  return ['DENY', 'ALLOW', 'AUDIT'].flatMap((action) => mine.filter((p) => p.action === action));
}
