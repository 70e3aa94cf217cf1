/**
 * `authorizeEgress(request, index)`: may a workload open this outbound connection?
 *
 * No EgressPolicy selects the workload: allowed. Otherwise default deny, and in this order:
 * 1. Cloud metadata addresses (169.254.169.254 ...) are denied unless a `cidrs` entry names
 *    exactly that address (a /32, /128 or bare address); wide blocks and host rules never allow them.
 * 2. A `cidrs` rule containing the destination (and allowing the port) allows.
 * 3. A `hosts` rule matching the name (SNI or HTTP Host) and port allows only if the destination
 *    address is one the name resolves to: otherwise a client could send an allowed SNI to any
 *    address (`host-address-mismatch`).
 * Without a name only `cidrs` rules can match; `needsHost` then says a host rule allows the port.
 */
import { cidrContains, IpAddr, isMetadataAddress, isSingleAddress, parseIpInto, sameAddress } from './ip';
import type { PolicyIndex } from './policy-index';
import type { CompiledEgressRule, EgressRequest, EgressVerdict } from './types';

const dst = new IpAddr();
const other = new IpAddr();

function portAllowed(rule: CompiledEgressRule, port: number): boolean {
  return rule.ports === undefined || rule.ports.has(port);
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

export function authorizeEgress(req: EgressRequest, index: PolicyIndex): EgressVerdict {
  const policies = index.egressFor(req.source);
  if (policies.length === 0) return { allowed: true, reason: 'no-egress-policy' };
  if (!parseIpInto(req.destination.ip, dst, true)) return { allowed: false, reason: 'no-rule-matched' };
  const port = req.destination.port;

  if (isMetadataAddress(dst)) {
    for (const p of policies) {
      for (let i = 0; i < p.rules.length; i++) {
        const rule = p.rules[i]!;
        if (portAllowed(rule, port) && cidrMatch(rule, true)) return { allowed: true, reason: 'allowed-by-cidr', policy: p.id, rule: i };
      }
    }
    return { allowed: false, reason: 'metadata-address' };
  }

  for (const p of policies) {
    for (let i = 0; i < p.rules.length; i++) {
      const rule = p.rules[i]!;
      if (portAllowed(rule, port) && cidrMatch(rule, false)) return { allowed: true, reason: 'allowed-by-cidr', policy: p.id, rule: i };
    }
  }

  let host = req.host;
  if (host === undefined || host === '') {
    const needsHost = policies.some((p) => p.rules.some((rule) => rule.hosts !== undefined && portAllowed(rule, port)));
    return needsHost ? { allowed: false, reason: 'no-rule-matched', needsHost: true } : { allowed: false, reason: 'no-rule-matched' };
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);

  let mismatch: { policy: string; rule: number } | undefined;
  for (const p of policies) {
    for (let i = 0; i < p.rules.length; i++) {
      const rule = p.rules[i]!;
      if (!portAllowed(rule, port) || !hostMatch(rule, host)) continue;
      if (resolvesToDestination(req.resolved)) return { allowed: true, reason: 'allowed-by-host', policy: p.id, rule: i };
      mismatch ??= { policy: p.id, rule: i };
    }
  }
  if (mismatch) return { allowed: false, reason: 'host-address-mismatch', ...mismatch };
  return { allowed: false, reason: 'host-not-allowed' };
}
