/**
 * The collector's control API (policies, egress rules, the audit log, status) as both ends see
 * it: paths, request bodies and answers. The collector serves it (collector/api/), the CLI calls
 * it (common/api-client.ts). The routes with their requests and answers, who may call them and
 * how failures look: docs/architecture.md "The control API".
 */
import type { SinkCounts } from './sink-counts';

export const CONTROL_API = {
  status: '/v1/status',
  policies: '/v1/policies',
  policyGet: '/v1/policies/get',
  policyHistory: '/v1/policies/history',
  policyApply: '/v1/policies/apply',
  policyDelete: '/v1/policies/delete',
  policyTest: '/v1/policies/test',
  egress: '/v1/egress',
  egressRules: '/v1/egress/rules',
  egressRemove: '/v1/egress/remove',
  egressLearn: '/v1/egress/learn',
  audit: '/v1/audit',
  auditVerify: '/v1/audit/verify',
} as const;

/** Write endpoints: POST only, admin token only. */
export const CONTROL_WRITES: ReadonlySet<string> = new Set([
  CONTROL_API.policyApply,
  CONTROL_API.policyDelete,
  CONTROL_API.egressRules,
  CONTROL_API.egressRemove,
]);
/** POST endpoints that change nothing (a body too large for a query string). */
export const CONTROL_POST_READS: ReadonlySet<string> = new Set([CONTROL_API.policyTest]);

/** Largest request body the collector reads (policy files included). */
export const MAX_CONTROL_BODY_BYTES = 4 * 1024 * 1024;

export type PolicyKind = 'AuthorizationPolicy' | 'EgressPolicy' | 'HTTPRoute' | 'GRPCRoute' | 'FaultInjection' | 'DestinationRule';
/**
 * Where a stored policy came from: the API (CLI), the collector's `--policy-dir`, or the Kubernetes
 * API's policy objects (`--kubernetes`); the last two are read-only through the collector's API.
 */
export type PolicyOrigin = 'api' | 'dir' | 'kubernetes';

/** One stored policy object, without its manifest. */
export interface PolicySummary {
  /** Stable number, never reused; `egress remove ID` takes it. */
  id: number;
  kind: PolicyKind;
  namespace: string;
  name: string;
  origin: PolicyOrigin;
  /** For `dir`: the file it is defined in (relative to the policy directory). */
  file?: string;
  /** The version that last created or changed it. */
  version: number;
  /** ISO time of that version. */
  updated: string;
  /** Who made that version: `admin`, `policy-dir`. */
  author: string;
}

export interface PolicyListResponse {
  /** The current policy version (0: none ever). */
  version: number;
  policies: PolicySummary[];
}

export interface PolicyGetResponse {
  policy: PolicySummary;
  /** The document as plain data (what `policy apply` takes back). */
  manifest: Record<string, unknown>;
}

export type ChangeOp = 'create' | 'update' | 'delete' | 'unchanged';

export interface PolicyChange {
  op: ChangeOp;
  kind: PolicyKind;
  namespace: string;
  name: string;
  /** Unified-style line diff of the YAML (`-`/`+`/` ` prefixed lines); empty for unchanged. */
  diff: string;
}

export interface PolicyApplyRequest {
  files: Array<{ source: string; text: string }>;
  dryRun?: boolean;
}

export interface PolicyDeleteRequest {
  /** [Kind/]namespace/name, or a name unique among stored policies. */
  name: string;
  dryRun?: boolean;
}

export interface PolicyChangeResponse {
  /** The version now in force (unchanged when dryRun or when nothing changed). */
  version: number;
  /** A new version was made. */
  applied: boolean;
  dryRun: boolean;
  changes: PolicyChange[];
  /** egress rules: the id of the object created. */
  id?: number;
  warnings?: string[];
}

export interface PolicyVersionRecord {
  version: number;
  time: string;
  author: string;
  /** apply, delete, egress-allow, egress-deny, egress-remove, policy-dir */
  action: string;
  changes: PolicyChange[];
}

export interface PolicyHistoryResponse {
  versions: PolicyVersionRecord[];
}

export interface EgressRuleRequest {
  /** `namespace/name` or `name` of a registered workload. */
  workload: string;
  action: 'allow' | 'deny';
  /** host, `*.suffix` or CIDR (a bare address is a /32 or /128). */
  destinations: string[];
  ports?: number[];
  /** TCP (default), UDP or ICMP; host destinations are TCP only, ICMP takes no ports. */
  protocol?: 'TCP' | 'UDP' | 'ICMP';
  dryRun?: boolean;
}

export interface EgressRemoveRequest {
  id: number;
  dryRun?: boolean;
}

/** One allow/deny entry of an EgressPolicy, as `egress list` shows it. */
export interface EgressRuleView {
  /** The policy object's id (`egress remove ID` removes the whole object). */
  id: number;
  namespace: string;
  policy: string;
  /** `spec.selector.matchLabels`, null: every workload of the namespace. */
  selector: Record<string, string> | null;
  /** The registered workloads the policy selects now (`namespace/name`). */
  workloads: string[];
  action: 'allow' | 'deny';
  hosts: string[];
  cidrs: string[];
  /** Empty: any port. */
  ports: number[];
  protocol: 'TCP' | 'UDP' | 'ICMP';
  origin: PolicyOrigin;
  version: number;
}

export interface EgressListResponse {
  version: number;
  rules: EgressRuleView[];
}

export interface EgressLearnResponse {
  /** The proposed EgressPolicy as YAML, ready for `policy apply -f`. */
  yaml: string;
  manifest: Record<string, unknown>;
  /** Egress flows looked at, and how many of them were left out (denied, errors) and why. */
  flows: number;
  skipped: Record<string, number>;
  /** `protocol` only when not TCP (a UDP or ICMP destination is always a `cidr`). */
  destinations: Array<{ host?: string; cidr?: string; ports: number[]; protocol?: 'UDP' | 'ICMP'; flows: number }>;
}

export interface PolicyTestRequest {
  /** The candidate change: these files applied on top of the stored policies, as `apply` would. */
  files: Array<{ source: string; text: string }>;
  /** Replay flows stored at or after this time (epoch ms). */
  since: number;
}

export interface VerdictChangeGroup {
  /** `namespace/workload` (or the IP) of the source and the destination. */
  source: string;
  destination: string;
  /** host or HTTP method+path when known */
  detail?: string;
  from: 'allowed' | 'denied';
  to: 'allowed' | 'denied';
  count: number;
  /** The deciding policy under the candidate set, and its reason. */
  reason: string;
  policy?: string;
  /** ids of up to 10 of the flows */
  flowIds: number[];
}

export interface PolicyTestResponse {
  /** Flows replayed. */
  flows: number;
  changed: VerdictChangeGroup[];
  /** Flows that could not be replayed, by why (e.g. a rule reads headers the record lacks). */
  undetermined: Record<string, number>;
}

export type AuditKind = 'policy-change' | 'denied-flows' | 'trust-refusal';
export const AUDIT_KINDS: readonly AuditKind[] = ['policy-change', 'denied-flows', 'trust-refusal'];
/** `audit list`: records answered when no limit is given, and at most. */
export const DEFAULT_AUDIT_LIMIT = 100;
export const MAX_AUDIT_LIMIT = 10_000;

export interface AuditRecord {
  seq: number;
  time: string;
  kind: AuditKind;
  /** admin, policy-dir, collector; trust-refusal: node:<name> or remote:<address> */
  actor: string;
  /** policy-change: {version, action, changes:[{op,kind,namespace,name}]};
   *  denied-flows: {window:{start,end}, groups:[{source, destination, reason, policy, count}], total, dropped};
   *  trust-refusal: {event, reason, node?, remote?, detail?}, or the window's
   *  {event:"summary", window, recorded, counted, groups:[{event, reason, count}], dropped} */
  data: Record<string, unknown>;
  /** hex HMAC-SHA256 of the previous record (64 zeros for the first) */
  prev: string;
  hash: string;
}

export interface AuditListResponse {
  records: AuditRecord[];
}

export interface AuditVerifyResponse {
  ok: boolean;
  records: number;
  /** The last verified record's seq. */
  head: number;
  /** Where the chain breaks, one line each, first break first (empty when ok). */
  problems: Array<{ seq: number; problem: string }>;
}

export interface NodeStatus {
  node: string;
  connected: boolean;
  /** The policy version the agent said it enforces (undefined: not reported yet). */
  policyVersion?: number;
  /** The agent rejected that version: the problems it reported. */
  policyProblems?: string[];
  /** The agent could not write its UDP/ICMP kernel rules: why (it fails closed and retries). */
  wireRulesStale?: string;
  workloads: number;
  lastSeen?: string;
  agentVersion?: string;
}

export interface StatusResponse {
  policyVersion: number;
  nodes: NodeStatus[];
  flows: { stored: number; sinks?: Record<string, SinkCounts> };
  audit: { records: number };
  /** With `collector --kubernetes`: what it makes of the cluster. */
  kubernetes?: KubernetesStatus;
  /** HTTPRoutes and GRPCRoutes in force (absent: none). */
  routes?: RouteStatus[];
}

/** A route in force, for `palisade status`. */
export interface RouteStatus {
  kind: 'HTTPRoute' | 'GRPCRoute' | 'DestinationRule';
  namespace: string;
  name: string;
  /** Parent Services, `namespace/name[:port]`. */
  parents: string[];
  rules: number;
  /** a DestinationRule: what its trafficPolicy sets (its port-level settings are `rules`) */
  summary?: string;
  /** a DestinationRule: what of it cannot apply (a request hash on a Service without a route: its connections are balanced at L4) */
  warning?: string;
  /** The policy version that last changed it. */
  version: number;
  /** Connected agents whose reported policy version includes it, of `agents` connected. */
  enforcedBy: number;
  agents: number;
}

/**
 * One collector replica, as the replica answering judges it from its Lease (collector/nodes/
 * replica-liveness.ts). Ages are on the answering replica's clock.
 */
export interface ReplicaStatus {
  /** Its id (its registry's epoch): the Lease's holderIdentity. */
  replica: string;
  /** The replica answering. */
  self: boolean;
  /** Its Lease: `held` (seen), `deleted` (a clean shutdown), `none` (never seen: known only by the nodes it holds). */
  lease: 'held' | 'deleted' | 'none';
  /** Since its renewTime was last seen to change (its own renewal, for the answering replica). */
  renewedAgoMs?: number;
  durationMs?: number;
  /** `self`; `alive`, `dead`, or `not judged` while the answering replica's own view is not current. */
  judgement: 'self' | 'alive' | 'dead' | 'not judged';
  /** Why, when dead or not judged. */
  why?: string;
  /** Nodes whose latest session is at it, and of those how many are shown offline here. */
  nodes: number;
  offline: number;
}

/** The collector's view of the Kubernetes API (`collector --kubernetes`). */
export interface KubernetesStatus {
  /** Every watch has listed at least once (before that, nothing from the API is published). */
  synced: boolean;
  /** Services taken from the API (Services + EndpointSlices). */
  services: number;
  /** Pods some node may claim (the node authorizer's view: scheduled, not host network, not ended). */
  pods?: number;
  /** Per policy kind, the API version watched (`security.istio.io/v1`), `not installed` or `looking`. */
  policyKinds: Record<string, string>;
  /** Policy objects in force (their last accepted version). */
  policyObjects: number;
  /** Objects whose current version was refused: its problems, and whether an earlier version still applies. */
  refused: Array<{ object: string; problems: string[]; previousInForce: boolean }>;
  /** HTTPRoutes and GRPCRoutes attached to no Service: a gateway's routes, not the mesh's, so left alone. */
  ignoredRoutes?: number;
  /** The collector replicas, as the replica answering sees them (their Leases and its judgement). */
  replicas?: ReplicaStatus[];
}
