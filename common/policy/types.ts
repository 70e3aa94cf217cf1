/**
 * The policy model shared by agent, collector and CLI: compiled policies (validated once, matchers
 * built as closures). The plain-data requests and verdicts of `authorize` / `authorizeEgress` are
 * in requests.ts.
 */
import type { Cidr } from './ip';
import type { EvalContext } from './eval-context';
import type { CompiledDestinationRule } from '../routes/destination-rule';
import type { CompiledFaultInjection, CompiledGrpcRoute, CompiledHttpRoute, CompiledRoute } from '../routes/types';

export const AUTHZ_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'] as const;
export const EGRESS_API_VERSION = 'palisade.dev/v1';
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
export const DEFAULT_NAMESPACE = 'default';

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT';

/** Fields every compiled policy has. */
interface PolicyBase {
  readonly apiVersion: string;
  readonly namespace: string;
  readonly name: string;
  /** `namespace/name`, as verdicts report it. */
  readonly id: string;
  /** `spec.selector.matchLabels`; undefined selects every workload of the namespace. */
  readonly selector: Readonly<Record<string, string>> | undefined;
  /** Where it was defined: the file (or other source name) and the line of its document. */
  readonly source: string;
  readonly line: number;
  /**
   * The document as plain data (JSON-safe, `status` and server-set metadata removed): what the
   * collector stores and pushes, and what `parsePolicies(JSON.stringify(manifest))` compiles back.
   */
  readonly manifest: Readonly<Record<string, unknown>>;
}

/** One condition of a rule, compiled. */
export interface Condition {
  /** HTTP-only (methods, paths, hosts, request headers, request principals, request.auth.*). */
  readonly http: boolean;
  readonly test: (ctx: EvalContext) => boolean;
}

/** A rule: any `from` AND any `to` AND every `when`. */
export interface CompiledAuthzRule {
  /** OR of sources, each an AND of conditions; undefined = any source. */
  readonly from: readonly (readonly Condition[])[] | undefined;
  /** OR of operations, each an AND of conditions; undefined = any operation. */
  readonly to: readonly (readonly Condition[])[] | undefined;
  readonly when: readonly Condition[];
  /** Some condition of the rule is HTTP-only. */
  readonly http: boolean;
}

export interface CompiledAuthorizationPolicy extends PolicyBase {
  readonly kind: 'AuthorizationPolicy';
  readonly action: AuthzAction;
  /** No rules: matches nothing (so an ALLOW policy with no rules allows nothing). */
  readonly rules: readonly CompiledAuthzRule[];
  /** Some rule has an HTTP-only condition. */
  readonly http: boolean;
}

/** What an EgressPolicy entry applies to: TCP (the default) goes through the proxy, UDP and ICMP are enforced in the kernel. */
export type EgressProtocol = 'TCP' | 'UDP' | 'ICMP';
export const EGRESS_PROTOCOLS: readonly EgressProtocol[] = ['TCP', 'UDP', 'ICMP'];

/** One `spec.allow[]` or `spec.deny[]` entry of an EgressPolicy. */
export interface CompiledEgressRule {
  /** `protocol`, default TCP. `hosts` entries are TCP only; ICMP entries have no ports. */
  readonly protocol: EgressProtocol;
  /** Exact DNS names (lowercase, no trailing dot). */
  readonly hosts: ReadonlySet<string> | undefined;
  /** `*.example.com` stored as `.example.com`. */
  readonly hostSuffixes: readonly string[];
  readonly cidrs: readonly Cidr[] | undefined;
  /** Undefined: any port. */
  readonly ports: ReadonlySet<number> | undefined;
}

export interface CompiledEgressPolicy extends PolicyBase {
  readonly kind: 'EgressPolicy';
  /** `spec.allow`: what the selected workloads may connect to. */
  readonly rules: readonly CompiledEgressRule[];
  /** `spec.deny`: what they may not connect to, whatever any policy allows. */
  readonly deny: readonly CompiledEgressRule[];
  /**
   * The policy makes the workloads it selects default-deny: it has an `allow` field (even an
   * empty one), or no `deny` entries (a policy with neither denies everything, as before `deny`
   * existed). A deny-only policy (`deny` entries, no `allow` field) only denies what it names.
   */
  readonly allowlist: boolean;
  /**
   * `spec.dns`: `Enforce` has the node's DNS proxy answer NXDOMAIN for a name the selected
   * workloads could never be allowed to reach by name (authorizeDnsName); `Resolve` (the
   * default) answers every name and leaves the decision to the connection.
   */
  readonly dns: EgressDnsMode;
}

export const EGRESS_DNS_MODES = ['Resolve', 'Enforce'] as const;
export type EgressDnsMode = (typeof EGRESS_DNS_MODES)[number];

/** HTTPRoutes, GRPCRoutes, FaultInjections and DestinationRules (common/routes) are stored, versioned and pushed like policies. */
export type CompiledPolicy = CompiledAuthorizationPolicy | CompiledEgressPolicy | CompiledHttpRoute | CompiledGrpcRoute | CompiledFaultInjection | CompiledDestinationRule;

/** Every object of a set: policies, then routes and fault injections. */
export function allOf(set: PolicySet): CompiledPolicy[] {
  return [...set.authorization, ...set.egress, ...(set.routes ?? []), ...(set.faults ?? []), ...(set.destinationRules ?? [])];
}

/**
 * A validated, all-or-nothing set of policies. Sets compiled separately can be merged by
 * concatenating the lists (each policy is self-contained).
 */
export interface PolicySet {
  readonly authorization: readonly CompiledAuthorizationPolicy[];
  readonly egress: readonly CompiledEgressPolicy[];
  /** HTTPRoutes and GRPCRoutes attached to Services (absent: none) */
  readonly routes?: readonly CompiledRoute[];
  /** FaultInjections the routes' ExtensionRef filters name (absent: none) */
  readonly faults?: readonly CompiledFaultInjection[];
  /** DestinationRules (their trafficPolicy) for Services (absent: none) */
  readonly destinationRules?: readonly CompiledDestinationRule[];
  /** Policies in this namespace apply mesh-wide; default `istio-system`. */
  readonly rootNamespace?: string;
  /** Accepted but probably not what was meant, one line each like problems. */
  readonly warnings?: readonly string[];
}
