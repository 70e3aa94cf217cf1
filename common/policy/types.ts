/**
 * The policy model shared by agent, collector and CLI: compiled policies (validated once, matchers
 * built as closures) and the plain-data requests and verdicts of `authorize` / `authorizeEgress`.
 */
import type { Cidr } from './ip';
import type { EvalContext } from './eval-context';

export const AUTHZ_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'] as const;
export const EGRESS_API_VERSION = 'palisade.dev/v1';
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
export const DEFAULT_NAMESPACE = 'default';

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT';

/** Where a workload stands for policy selection. */
export interface PolicyWorkload {
  namespace: string;
  labels: Record<string, string>;
}

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

/** One `spec.allow[]` or `spec.deny[]` entry of an EgressPolicy. */
export interface CompiledEgressRule {
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
}

export type CompiledPolicy = CompiledAuthorizationPolicy | CompiledEgressPolicy;

/**
 * A validated, all-or-nothing set of policies. Sets compiled separately can be merged by
 * concatenating the lists (each policy is self-contained).
 */
export interface PolicySet {
  readonly authorization: readonly CompiledAuthorizationPolicy[];
  readonly egress: readonly CompiledEgressPolicy[];
  /** Policies in this namespace apply mesh-wide; default `istio-system`. */
  readonly rootNamespace?: string;
  /** Accepted but probably not what was meant, one line each like problems. */
  readonly warnings?: readonly string[];
}

export interface AuthzRequest {
  source: {
    /** The peer's full SPIFFE ID (`spiffe://td/ns/x/sa/y`), undefined without mTLS. */
    principal?: string;
    /** The peer's namespace from its SPIFFE ID; ignored when `principal` is undefined (as in Istio). */
    namespace?: string;
    ip: string;
  };
  destination: { ip: string; port: number; workload: PolicyWorkload };
  sni?: string;
  http?: {
    method: string;
    /** Already normalized, without the query. */
    path: string;
    /** Lowercased, may have `:port`. */
    host: string;
    /** Lowercase names, every value. */
    headers: Record<string, string[]>;
  };
}

/**
 * - `request`: one HTTP request (`http` set; without it the request is evaluated as `tcp`).
 * - `tcp`: non-HTTP traffic, Istio's TCP semantics.
 * - `connection`: an HTTP connection without a request (at accept, or when policies change): denied
 *   only if every request on it would be denied.
 */
export type AuthzStage = 'request' | 'tcp' | 'connection';

export interface AuthzVerdict {
  allowed: boolean;
  /**
   * `no-policy`: no ALLOW policy selects the workload and no DENY matched (DENY/AUDIT policies may
   * exist). `no-allow-policy-matched`: ALLOW policies select it and none matched.
   */
  reason: 'no-policy' | 'allowed-by-policy' | 'denied-by-policy' | 'no-allow-policy-matched';
  /**
   * `namespace/name` of the deciding policy: the DENY that matched, or the ALLOW that matched;
   * for `no-allow-policy-matched`, the ALLOW policies none of which matched (comma-separated).
   */
  policy?: string;
  /** Index in `spec.rules` of the matching rule. */
  rule?: number;
  /** The first AUDIT policy that matched, if any. */
  audit?: { policy: string; rule: number };
}

export interface EgressRequest {
  source: PolicyWorkload;
  destination: { ip: string; port: number };
  /** SNI or HTTP Host: lowercase, no port, no trailing dot. */
  host?: string;
  /** What the agent's resolver says `host` resolves to. */
  resolved?: string[];
}

/**
 * - `no-egress-policy`: no EgressPolicy selects the workload.
 * - `denied-by-cidr` / `denied-by-host`: a `spec.deny` entry matched (`rule` indexes `spec.deny`).
 * - `not-denied`: only deny-only policies select the workload and none of their entries matched.
 * - every other reason is the allowlist's (`rule` indexes `spec.allow`).
 */
export type EgressReason =
  | 'no-egress-policy'
  | 'denied-by-cidr'
  | 'denied-by-host'
  | 'not-denied'
  | 'allowed-by-cidr'
  | 'allowed-by-host'
  | 'host-not-allowed'
  | 'host-address-mismatch'
  | 'metadata-address'
  | 'no-rule-matched';

export interface EgressVerdict {
  allowed: boolean;
  reason: EgressReason;
  policy?: string;
  rule?: number;
  /**
   * Decided without a host, and the name (SNI/Host) could change it: denied, but a host rule
   * allows this port (the name could allow it); or allowed, but a `deny` host entry covers this
   * port (the name could deny it). The agent then reads the name before deciding for good.
   */
  needsHost?: boolean;
}
