/**
 * `replayFlows`: which recorded decisions would a candidate policy set change? Each stored flow an
 * authorization decision was made on is decided again under the current set and the candidate,
 * the way the agent decides it; flows whose allowed/denied outcome differs are grouped. What is
 * replayed, what is skipped and what is counted as undetermined (never guessed):
 * docs/architecture.md "What-if: policy test and egress learn".
 */
import type { StoredFlow } from '../../common/flows-api';
import type { PolicyTestResponse, VerdictChangeGroup } from '../../common/control-api';
import type { FlowEndpoint } from '../../common/flow';
import {
  authorize,
  authorizeEgress,
  PolicyIndex,
  type AuthzRequest,
  type AuthzVerdict,
  type CompiledPolicy,
  type EgressReason,
  type EgressVerdict,
  type PolicySet,
  type PolicyWorkload,
  type WorkloadPolicies,
} from '../../common/policy';
import { readsHeaders } from '../../common/policy/conditions';
import { egressProtocolOf } from './flow-protocol';

export interface ReplayInput {
  flows: Iterable<StoredFlow>;
  current: PolicySet;
  candidate: PolicySet;
  /** The labels of a registered workload now, or undefined if it is not registered. */
  workloadLabels: (namespace: string, name: string) => Record<string, string> | undefined;
}

/** Flow ids kept per group. */
const MAX_FLOW_IDS = 10;

/** Reasons of denials a policy decided; any other denial stays a denial whatever the policies. */
const AUTHZ_DENIALS: ReadonlySet<string> = new Set<AuthzVerdict['reason']>(['denied-by-policy', 'no-allow-policy-matched']);
const EGRESS_DENIALS: ReadonlySet<string> = new Set<EgressReason>([
  'denied-by-cidr',
  'denied-by-host',
  'host-not-allowed',
  'host-address-mismatch',
  'metadata-address',
  'no-rule-matched',
]);

type Outcome = 'allowed' | 'denied';
/** A decision under both sets, or why there is none. */
type Replayed = { undetermined: string } | { from: Outcome; to: Outcome; reason: string; policy: string | undefined } | undefined;

export function replayFlows(input: ReplayInput): PolicyTestResponse {
  const r = new Replayer(input);
  const groups = new Map<string, VerdictChangeGroup>();
  const undetermined: Record<string, number> = {};
  let replayed = 0;
  for (const f of input.flows) {
    if (!decidedByPolicy(f)) continue;
    const result = f.direction === 'inbound' ? r.inbound(f) : r.egress(f);
    if (result !== undefined && 'undetermined' in result) {
      undetermined[result.undetermined] = (undetermined[result.undetermined] ?? 0) + 1;
      continue;
    }
    replayed++;
    if (result === undefined || result.from === result.to) continue;
    const source = endpointName(f.source);
    const destination = f.direction === 'inbound' ? endpointName(f.destination) : f.destination.ip;
    const detail = f.direction === 'inbound' ? (f.http ? `${f.http.method} ${f.http.path}` : undefined) : f.destination.host || undefined;
    const key = JSON.stringify([source, destination, detail ?? null, result.from, result.to, result.reason, result.policy ?? null]);
    let g = groups.get(key);
    if (g === undefined) {
      g = { source, destination, from: result.from, to: result.to, count: 0, reason: result.reason, flowIds: [] };
      if (detail !== undefined) g.detail = detail;
      if (result.policy !== undefined) g.policy = result.policy;
      groups.set(key, g);
    }
    g.count++;
    if (g.flowIds.length < MAX_FLOW_IDS) g.flowIds.push(f.id);
  }
  return { flows: replayed, changed: [...groups.values()].sort(byCountThenName), undetermined };
}

/** Records an authorization decision was made on that a policy change could change. */
function decidedByPolicy(f: StoredFlow): boolean {
  if (f.direction === 'outbound' || f.verdict === 'error') return false;
  if (f.verdict !== 'denied') return true;
  return (f.direction === 'inbound' ? AUTHZ_DENIALS : EGRESS_DENIALS).has(f.reason);
}

interface Selection {
  workload: PolicyWorkload;
  cur: WorkloadPolicies;
  cand: WorkloadPolicies;
  /** Nothing that decides inbound (`authz`) / egress can change. */
  same: { authz: boolean; egress: boolean };
}

class Replayer {
  private readonly current: PolicyIndex;
  private readonly candidate: PolicyIndex;
  /** Whether two selections decide alike, per pair of (cached, so stable) selections. */
  private readonly same = new WeakMap<WorkloadPolicies, WeakMap<WorkloadPolicies, { authz: boolean; egress: boolean }>>();
  private readonly manifests = new WeakMap<CompiledPolicy, string>();
  private readonly headerSelections = new WeakMap<WorkloadPolicies, boolean>();

  constructor(private readonly input: ReplayInput) {
    this.current = new PolicyIndex(input.current);
    this.candidate = new PolicyIndex(input.candidate);
  }

  inbound(f: StoredFlow): Replayed {
    const s = this.select(f.destination);
    if ('undetermined' in s) return s;
    const { workload, cur, cand } = s;
    if (s.same.authz) return undefined;
    const req: AuthzRequest = {
      source: { ip: f.source.ip },
      destination: { ip: f.destination.ip, port: f.destination.port ?? 0, workload },
    };
    if (f.source.identity) req.source.principal = f.source.identity;
    if (f.source.namespace) req.source.namespace = f.source.namespace;

    if (f.http) {
      if (this.readsHeaders(cur) || this.readsHeaders(cand)) return { undetermined: 'needs-headers' };
      const host = f.destination.host ?? '';
      req.http = { method: f.http.method, path: f.http.path, host, headers: host ? { host: [host] } : {} };
      return change(authorize(req, this.current, 'request'), authorize(req, this.candidate, 'request'));
    }
    const before = authorize(req, this.current, 'tcp');
    const after = authorize(req, this.candidate, 'tcp');
    // Not read as HTTP before, read as HTTP now: if it carried HTTP, its requests decide. Denied
    // at `tcp` and at `connection` means every request is denied too; allowed at `tcp` means every
    // request is allowed; otherwise it depends on requests the record does not have.
    if (cand.needsHttp && !cur.needsHttp && !after.allowed && authorize(req, this.candidate, 'connection').allowed) {
      return { undetermined: 'needs-http' };
    }
    return change(before, after);
  }

  egress(f: StoredFlow): Replayed {
    const s = this.select(f.source);
    if ('undetermined' in s) return s;
    if (s.same.egress) return undefined;
    const protocol = egressProtocolOf(f.protocol);
    if (protocol === undefined) return { undetermined: 'other-protocol' };
    const host = f.destination.host;
    const req = {
      source: s.workload,
      destination: { ip: f.destination.ip, port: f.destination.port ?? 0 },
      protocol,
      ...(host ? { host, resolved: f.reason === 'host-address-mismatch' ? [] : [f.destination.ip] } : {}),
    };
    const before = authorizeEgress(req, this.current);
    const after = authorizeEgress(req, this.candidate);
    // Recorded without a name and not read for one before: the candidate would read it, and it decides.
    if (!host && f.protocol === 'tcp' && after.needsHost === true && before.needsHost !== true) return { undetermined: 'needs-host' };
    return change(before, after);
  }

  /** The endpoint's workload as registered now, and the policies selecting it in each set. */
  private select(e: FlowEndpoint): Selection | { undetermined: string } {
    const labels = e.namespace === undefined || e.workload === undefined ? undefined : this.input.workloadLabels(e.namespace, e.workload);
    if (labels === undefined) return { undetermined: 'unknown-workload' };
    const workload = { namespace: e.namespace!, labels };
    const cur = this.current.policies(workload);
    const cand = this.candidate.policies(workload);
    return { workload, cur, cand, same: this.compare(cur, cand) };
  }

  private compare(a: WorkloadPolicies, b: WorkloadPolicies): { authz: boolean; egress: boolean } {
    let byB = this.same.get(a);
    if (byB === undefined) this.same.set(a, (byB = new WeakMap()));
    let result = byB.get(b);
    if (result === undefined) {
      // AUDIT policies never change allowed/denied (nor the stage, unless an ALLOW or DENY reads HTTP too).
      result = { authz: this.sameList(a.deny, b.deny) && this.sameList(a.allow, b.allow), egress: this.sameList(a.egress, b.egress) };
      byB.set(b, result);
    }
    return result;
  }

  /** The same policies (in the index's order), by content. */
  private sameList(a: readonly CompiledPolicy[], b: readonly CompiledPolicy[]): boolean {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && (a[i]!.id !== b[i]!.id || this.manifest(a[i]!) !== this.manifest(b[i]!))) return false;
    return true;
  }

  private manifest(p: CompiledPolicy): string {
    let text = this.manifests.get(p);
    if (text === undefined) this.manifests.set(p, (text = JSON.stringify(p.manifest)));
    return text;
  }

  /** Some ALLOW or DENY policy of the selection has a `request.headers[...]` condition. */
  private readsHeaders(wp: WorkloadPolicies): boolean {
    let reads = this.headerSelections.get(wp);
    if (reads === undefined) {
      reads = [...wp.deny, ...wp.allow].some((p) => p.rules.some((rule) => [...rule.when, ...(rule.from ?? []).flat(), ...(rule.to ?? []).flat()].some(readsHeaders)));
      this.headerSelections.set(wp, reads);
    }
    return reads;
  }
}

function change(before: AuthzVerdict | EgressVerdict, after: AuthzVerdict | EgressVerdict): Replayed {
  return { from: before.allowed ? 'allowed' : 'denied', to: after.allowed ? 'allowed' : 'denied', reason: after.reason, policy: after.policy };
}

/** `namespace/workload`, or the address. */
function endpointName(e: FlowEndpoint): string {
  return e.namespace !== undefined && e.workload !== undefined ? `${e.namespace}/${e.workload}` : e.ip;
}

/** Largest first, then by name, so the same flows give the same answer. */
function byCountThenName(a: VerdictChangeGroup, b: VerdictChangeGroup): number {
  if (a.count !== b.count) return b.count - a.count;
  const ka = [a.source, a.destination, a.detail ?? '', a.from, a.to, a.reason, a.policy ?? ''];
  const kb = [b.source, b.destination, b.detail ?? '', b.from, b.to, b.reason, b.policy ?? ''];
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
  return 0;
}
