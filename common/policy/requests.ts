/**
 * The plain-data requests and verdicts of `authorize` / `authorizeEgress`, and the workload a
 * policy selects: what callers build and read, without the compiled policies (types.ts).
 */

/** Where a workload stands for policy selection. */
export interface PolicyWorkload {
  namespace: string;
  labels: Record<string, string>;
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
  /** Default TCP (the proxy's connections); only entries of this protocol count. */
  protocol?: 'TCP' | 'UDP' | 'ICMP';
  /** SNI or HTTP Host: lowercase, no port, no trailing dot. */
  host?: string;
  /**
   * The addresses this workload's own DNS lookups of `host` answered and that are still valid
   * (agent/dns/pod-names.ts): a host rule allows only one of these.
   */
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

/** A name a workload asks the DNS proxy about (lowercase presentation form). */
export interface DnsNameRequest {
  source: PolicyWorkload;
  name: string;
}

/** May the name be answered; a refusal says which policy (and deny entry) refused it. */
export type DnsNameVerdict =
  | { allowed: true }
  | { allowed: false; reason: 'denied-by-host' | 'host-not-allowed'; policy: string; rule?: number };
