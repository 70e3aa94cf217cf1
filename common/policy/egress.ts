/**
 * `authorizeEgress(request, index)`: may a workload open this outbound connection? A pure function
 * over the EgressPolicies selecting the source workload: deny entries, then deny-only policies,
 * cloud metadata addresses, allow CIDRs, allow hosts (only to an address the name resolves to);
 * only entries of the request's protocol count (TCP unless it says UDP or ICMP, which are
 * default-deny). The order, every reason and `needsHost`: docs/architecture.md "Egress decisions".
 * Allocation-free apart from the verdict (and a lowercased copy of a host not already lowercase).
 */
import { cidrContains, IpAddr, isMetadataAddress, isSingleAddress, parseIpInto, sameAddress } from './ip';
import type { PolicyIndex } from './policy-index';
import type { DnsNameRequest, DnsNameVerdict, EgressReason, EgressRequest, EgressVerdict } from './requests';
import type { CompiledEgressPolicy, CompiledEgressRule, EgressProtocol } from './types';

const dst = new IpAddr();
const other = new IpAddr();

let protocol: EgressProtocol = 'TCP'; // the request's, for the one synchronous authorizeEgress call

/** The entry is of the request's protocol and covers the port. */
function portAllowed(rule: CompiledEgressRule, port: number): boolean {
  return rule.protocol === protocol && (rule.ports === undefined || rule.ports.has(port));
}

function cidrMatch(rule: CompiledEgressRule, exactOnly: boolean): boolean {
  if (rule.cidrs === undefined) return false;
  for (const c of rule.cidrs) if ((!exactOnly || isSingleAddress(c)) && cidrContains(c, dst)) return true;
  return false;
}

function hostMatch(rule: CompiledEgressRule, host: string): boolean {
  if (rule.hosts === undefined) return false;
  if (rule.hosts.has(host)) return true;
  for (const s of rule.hostSuffixes) if (host.length > s.length && host.endsWith(s)) return true;
  return false;
}

function resolvesToDestination(resolved: readonly string[] | undefined): boolean {
  if (resolved === undefined) return false;
  for (const r of resolved) if (parseIpInto(r, other, true) && sameAddress(other, dst)) return true;
  return false;
}

/** The name lowercased without a trailing dot; undefined for none. */
function normalizeHost(host: string | undefined): string | undefined {
  if (host === undefined || host === '') return undefined;
  let h = host.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h === '' ? undefined : h;
}

/** Some allow `hosts` rule of `policies` covers `port`. */
function hostRuleOnPort(policies: readonly CompiledEgressPolicy[], port: number): boolean {
  for (const p of policies) for (const rule of p.rules) if (rule.hosts !== undefined && portAllowed(rule, port)) return true;
  return false;
}

function verdict(allowed: boolean, reason: EgressReason, policy: string | undefined, rule: number, needsHost: boolean): EgressVerdict {
  const v: EgressVerdict = { allowed, reason };
  if (policy !== undefined) {
    v.policy = policy;
    v.rule = rule;
  }
  if (needsHost) v.needsHost = true;
  return v;
}

export function authorizeEgress(req: EgressRequest, index: PolicyIndex): EgressVerdict {
  const policies = index.egressFor(req.source);
  protocol = req.protocol ?? 'TCP';
  const tcp = protocol === 'TCP';
  if (policies.length === 0) return tcp ? { allowed: true, reason: 'no-egress-policy' } : { allowed: false, reason: 'no-rule-matched' };
  if (!parseIpInto(req.destination.ip, dst, true)) return { allowed: false, reason: 'no-rule-matched' };
  const port = req.destination.port;
  const host = normalizeHost(req.host);

  // 1. deny entries; without a name, note whether a deny host entry could still match.
  let denyHostOnPort = false;
  let allowlist = false;
  for (const p of policies) {
    allowlist ||= p.allowlist;
    const deny = p.deny;
    for (let i = 0; i < deny.length; i++) {
      const rule = deny[i]!;
      if (!portAllowed(rule, port)) continue;
      if (cidrMatch(rule, false)) return verdict(false, 'denied-by-cidr', p.id, i, false);
      if (rule.hosts === undefined) continue;
      if (host === undefined) denyHostOnPort = true;
      else if (hostMatch(rule, host)) return verdict(false, 'denied-by-host', p.id, i, false);
    }
  }
  // 2. deny-only policies (UDP and ICMP are default-deny whatever the policies: no allowlist, nothing allowed)
  if (!allowlist) return tcp ? verdict(true, 'not-denied', undefined, 0, denyHostOnPort) : { allowed: false, reason: 'no-rule-matched' };

  // 3. cloud metadata
  if (isMetadataAddress(dst)) {
    for (const p of policies) {
      for (let i = 0; i < p.rules.length; i++) {
        const rule = p.rules[i]!;
        if (portAllowed(rule, port) && cidrMatch(rule, true)) return verdict(true, 'allowed-by-cidr', p.id, i, denyHostOnPort);
      }
    }
    return { allowed: false, reason: 'metadata-address' };
  }

  // 4. allow cidrs
  for (const p of policies) {
    for (let i = 0; i < p.rules.length; i++) {
      const rule = p.rules[i]!;
      if (portAllowed(rule, port) && cidrMatch(rule, false)) return verdict(true, 'allowed-by-cidr', p.id, i, denyHostOnPort);
    }
  }

  // 5. allow hosts
  if (host === undefined) return verdict(false, 'no-rule-matched', undefined, 0, hostRuleOnPort(policies, port));
  let mismatch: CompiledEgressPolicy | undefined;
  let mismatchRule = 0;
  for (const p of policies) {
    for (let i = 0; i < p.rules.length; i++) {
      const rule = p.rules[i]!;
      if (!portAllowed(rule, port) || !hostMatch(rule, host)) continue;
      if (resolvesToDestination(req.resolved)) return verdict(true, 'allowed-by-host', p.id, i, false);
      if (mismatch === undefined) {
        mismatch = p;
        mismatchRule = i;
      }
    }
  }
  if (mismatch !== undefined) return verdict(false, 'host-address-mismatch', mismatch.id, mismatchRule, false);
  return { allowed: false, reason: 'host-not-allowed' };
}

/**
 * `authorizeDnsName(request, index)`: may the DNS proxy answer this name for this workload?
 * Only when a selecting EgressPolicy has `dns: Enforce` can the answer be no, and then, against
 * every selecting policy, as authorizeEgress would decide for the name on some port:
 * 1. a `deny` hosts entry without `ports` that matches denies (`denied-by-host`);
 * 2. a workload that is an allowlist needs an allow `hosts` rule that matches, on any port
 *    (`host-not-allowed`, naming the first enforcing policy, otherwise).
 * Anything else resolves: a name may be needed for a `cidrs` rule, so only Enforce refuses it.
 * The caller answers a refusal with NXDOMAIN (agent/dns/answerer.ts says why not REFUSED).
 */
export function authorizeDnsName(req: DnsNameRequest, index: PolicyIndex): DnsNameVerdict {
  const policies = index.egressFor(req.source);
  let enforcing: CompiledEgressPolicy | undefined;
  for (const p of policies) if (p.dns === 'Enforce') enforcing ??= p;
  if (enforcing === undefined) return { allowed: true };
  const host = normalizeHost(req.name);
  if (host === undefined) return { allowed: true };
  let allowlist = false;
  for (const p of policies) {
    allowlist ||= p.allowlist;
    for (let i = 0; i < p.deny.length; i++) {
      const rule = p.deny[i]!;
      if (rule.ports === undefined && hostMatch(rule, host)) return { allowed: false, reason: 'denied-by-host', policy: p.id, rule: i };
    }
  }
  if (!allowlist) return { allowed: true };
  for (const p of policies) for (const rule of p.rules) if (hostMatch(rule, host)) return { allowed: true };
  return { allowed: false, reason: 'host-not-allowed', policy: enforcing.id };
}
