/**
 * `spec` of Palisade's EgressPolicy (palisade.dev/v1), validated and compiled: a selector, `allow`
 * and `deny` entries of `hosts` or `cidrs` with optional `ports` and `protocol` (TCP, UDP, ICMP),
 * and `dns: Resolve|Enforce` (agent/dns/). An example, which policies make an allowlist, why an
 * empty `deny` is refused and what protocols mean: docs/architecture.md "Egress decisions".
 */
import { IpAddr, parseIpInto } from './ip';
import { parseSelector } from './selector';
import { EGRESS_DNS_MODES, EGRESS_PROTOCOLS, type CompiledEgressRule, type EgressDnsMode, type EgressProtocol } from './types';
import { cidrs, ports } from './values';
import type { Field, Item, NodeReader, Problems } from '../yaml-reader';

const SPEC_FIELDS = ['selector', 'allow', 'deny', 'dns'];
const RULE_FIELDS = ['hosts', 'cidrs', 'ports', 'protocol'];
const DNS_LABEL_RE = /^[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?$/;

export interface ParsedEgressSpec {
  selector: Record<string, string> | undefined;
  rules: CompiledEgressRule[];
  deny: CompiledEgressRule[];
  allowlist: boolean;
  dns: EgressDnsMode;
}

/** How the messages about an entry of `spec.allow` / `spec.deny` word what it does. */
interface ListWords {
  field: 'allow' | 'deny';
  /** what the workload may connect to / may not connect to */
  what: string;
  /** allow / deny */
  verb: string;
  /** allows / denies */
  verbs: string;
}

const ALLOW: ListWords = { field: 'allow', what: 'what the workload may connect to', verb: 'allow', verbs: 'allows' };
const DENY: ListWords = { field: 'deny', what: 'what the workload may not connect to', verb: 'deny', verbs: 'denies' };
const EXAMPLE = '[{hosts: [api.example.com], ports: [443]}]';

export function parseEgressSpec(r: NodeReader, warnings: Problems, specNode: unknown, specLine: number): ParsedEgressSpec | undefined {
  const before = r.problems.found.length;
  const spec = r.fields(specNode, 'spec', SPEC_FIELDS, specLine);
  if (!spec) return undefined;
  const selectorField = spec.get('selector');
  const selector = selectorField ? parseSelector(r, warnings, selectorField, 'spec.selector') : undefined;
  const allowField = spec.get('allow');
  const denyField = spec.get('deny');
  const rules = allowField ? parseRules(r, allowField, ALLOW) : [];
  const deny = denyField ? parseRules(r, denyField, DENY) : [];
  if (denyField && deny.length === 0 && r.problems.found.length === before) {
    r.fail(denyField.line, 'spec.deny', 'must not be empty (remove "deny": a policy with neither allow nor deny entries denies every destination)');
  }
  const allowlist = allowField !== undefined || deny.length === 0;
  const dnsField = spec.get('dns');
  const dns = dnsField ? parseDnsMode(r, warnings, dnsField, { allowlist, hostRules: rules.some((rule) => rule.hosts !== undefined) }) : 'Resolve';
  if (r.problems.found.length > before || dns === undefined) return undefined;
  return { selector, rules, deny, allowlist, dns };
}

/** `spec.dns`: one of EGRESS_DNS_MODES; `Enforce` on an allowlist without host rules refuses every name (a warning). */
function parseDnsMode(r: NodeReader, warnings: Problems, field: Field, policy: { allowlist: boolean; hostRules: boolean }): EgressDnsMode | undefined {
  const text = r.string(field, 'spec.dns');
  if (text === undefined) return undefined;
  const mode = EGRESS_DNS_MODES.find((m) => m === text);
  if (mode === undefined) {
    r.fail(field.line, 'spec.dns', `unknown mode ${JSON.stringify(text.slice(0, 64))} (${EGRESS_DNS_MODES.join(' or ')}; Enforce answers NXDOMAIN for names the policy never allows)`);
    return undefined;
  }
  if (mode === 'Enforce' && policy.allowlist && !policy.hostRules) {
    warnings.add(field.line, `${r.label}: spec.dns: Enforce without an allow "hosts" rule answers NXDOMAIN for every name outside the mesh (add hosts rules, or remove "dns")`);
  }
  return mode;
}

function parseRules(r: NodeReader, field: Field, words: ListWords): CompiledEgressRule[] {
  const rules: CompiledEgressRule[] = [];
  r.list(field, `spec.${words.field}`, EXAMPLE)?.forEach((item, i) => {
    const rule = parseRule(r, item, `spec.${words.field}[${i}]`, words);
    if (rule) rules.push(rule);
  });
  return rules;
}

function parseRule(r: NodeReader, item: Item<unknown>, path: string, words: ListWords): CompiledEgressRule | undefined {
  const fields = r.fields(item.value, path, RULE_FIELDS, item.line);
  if (!fields) return undefined;
  const hostsField = fields.get('hosts');
  const cidrsField = fields.get('cidrs');
  if (hostsField && cidrsField) {
    r.fail(cidrsField.keyLine, path, 'has both "hosts" and "cidrs" (split it into two rules)');
    return undefined;
  }
  if (!hostsField && !cidrsField) {
    r.fail(item.line, path, `needs "hosts" or "cidrs" (${words.what})`);
    return undefined;
  }
  const protocol = parseProtocol(r, fields.get('protocol'), path);
  if (protocol === undefined) return undefined;
  if (hostsField && protocol !== 'TCP') {
    r.fail(fields.get('protocol')!.line, `${path}.protocol`, `${protocol} with "hosts": host rules are TCP only (names are checked against TLS SNI and HTTP Host); use cidrs for ${protocol}`);
    return undefined;
  }
  let portSet: Set<number> | undefined;
  const portsField = fields.get('ports');
  if (portsField && protocol === 'ICMP') {
    r.fail(portsField.keyLine, `${path}.ports`, 'ICMP has no ports (remove "ports")');
    return undefined;
  }
  if (portsField) {
    const values = r.strings(portsField, `${path}.ports`, { numbers: true });
    if (!values) return undefined;
    if (values.length === 0) {
      r.fail(portsField.line, `${path}.ports`, `must not be empty (remove "ports" to ${words.verb} any port)`);
      return undefined;
    }
    const list = ports(r, values, `${path}.ports`);
    if (!list) return undefined;
    portSet = new Set(list);
  }
  const listField = (hostsField ?? cidrsField)!;
  const listPath = `${path}.${hostsField ? 'hosts' : 'cidrs'}`;
  const values = r.strings(listField, listPath);
  if (!values) return undefined;
  if (values.length === 0) {
    r.fail(listField.line, listPath, `must not be empty (a rule with nothing in it ${words.verbs} nothing: remove it)`);
    return undefined;
  }
  if (cidrsField) {
    const blocks = cidrs(r, values, listPath);
    return blocks && { protocol, hosts: undefined, hostSuffixes: [], cidrs: blocks, ports: portSet };
  }
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const v of values) {
    const host = v.value.toLowerCase().replace(/\.$/, '');
    const problem = host === '*' ? `matches every host (use cidrs: [0.0.0.0/0, "::/0"] to ${words.verb} every destination)` : hostProblem(host);
    if (problem) r.fail(v.line, listPath, `${JSON.stringify(v.value)} ${problem}`);
    else if (host.startsWith('*.')) suffixes.push(host.slice(1));
    else exact.add(host);
  }
  if (exact.size + suffixes.length === 0 || values.some((v) => hostProblem(v.value.toLowerCase().replace(/\.$/, '')))) return undefined;
  return { protocol, hosts: exact, hostSuffixes: suffixes, cidrs: undefined, ports: portSet };
}

/** `protocol`: TCP (also when absent), UDP or ICMP, in any case; undefined with a problem otherwise. */
function parseProtocol(r: NodeReader, field: Field | undefined, path: string): EgressProtocol | undefined {
  if (!field) return 'TCP';
  const value = r.string(field, `${path}.protocol`);
  if (value === undefined) return undefined;
  const upper = value.toUpperCase() as EgressProtocol;
  if (EGRESS_PROTOCOLS.includes(upper)) return upper;
  r.fail(field.line, `${path}.protocol`, `${JSON.stringify(value)} is not a protocol (use TCP, UDP or ICMP)`);
  return undefined;
}

/** Why a (lowercased) host is not an exact DNS name or `*.suffix`, or undefined. */
export function hostProblem(host: string): string | undefined {
  const ip = new IpAddr();
  if (parseIpInto(host.replace(/^\[|\]$/g, ''), ip)) return 'is an IP address (use cidrs for addresses)';
  if (host === '*') return 'allows every host (use cidrs: [0.0.0.0/0, "::/0"] to allow every destination)';
  const name = host.startsWith('*.') ? host.slice(2) : host;
  if (name.includes('*')) return 'is a bad wildcard (use an exact name or "*.suffix", like *.example.com)';
  if (name.includes(':')) return 'has a port (use "ports" for ports)';
  if (name.length > 253 || !name.split('.').every((label) => DNS_LABEL_RE.test(label))) {
    return 'is not a DNS name (letters, digits, "-" and "_" in dot-separated labels of at most 63 characters)';
  }
  return undefined;
}
