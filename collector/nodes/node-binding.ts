/**
 * What a join token binds a node to, decided at `palisade collector token create` and kept with
 * the node once it joins: its name, optionally the IPv4 range its pods use (`--node-cidr`), and
 * the namespaces / service accounts it may run (`--scope`, `ns/sa` or `ns/*`; none given: any).
 * Pure: parsing the flags and the questions the collector asks of a binding. The checks that use
 * them are workload-admission.ts (registrations, certificates) and node-trust.ts (joins,
 * sessions). See docs/architecture.md, "Proof before identity".
 */
import { isDnsLabel } from '../../common/identity';
import { invalidArgument, quoteValue } from '../../common/errors';
import { cidrContains, IpAddr, parseCidr, parseIpInto } from '../../common/policy/ip';

/** Every namespace and service account: what a token created without `--scope` allows. */
export const ANY_SCOPE = '*/*';

export interface NodeBinding {
  node: string;
  /** Canonical IPv4 CIDR of the node's pods; undefined: no range declared. */
  nodeCidr?: string;
  /** `ns/sa`, `ns/*` or `*\/*`, canonical; never empty. */
  scopes: readonly string[];
}

/** `ns/sa`, `ns/*` or `*\/*` → itself; anything else throws one line (invalid argument). */
export function parseScope(text: string): string {
  const slash = text.indexOf('/');
  const ns = slash < 0 ? text : text.slice(0, slash);
  const sa = slash < 0 ? '' : text.slice(slash + 1);
  const ok = text === ANY_SCOPE || (isDnsLabel(ns) && (sa === '*' || isDnsLabel(sa)));
  if (!ok) throw invalidArgument(`invalid --scope ${quoteValue(text)}: use namespace/serviceaccount or namespace/* (e.g. default/web, default/*)`);
  return text;
}

/** The scopes of a new token: each checked, duplicates dropped; none means any. */
export function parseScopes(texts: readonly string[]): string[] {
  if (texts.length === 0) return [ANY_SCOPE];
  const out = [...new Set(texts.map(parseScope))];
  return out.includes(ANY_SCOPE) ? [ANY_SCOPE] : out.sort();
}

/** An IPv4 CIDR (`10.0.1.0/24`) → canonical text; anything else throws one line. */
export function parseNodeCidr(text: string): string {
  const parsed = parseCidr(text);
  if ('problem' in parsed) throw invalidArgument(`invalid --node-cidr ${quoteValue(text)}: ${parsed.problem}`);
  if (parsed.cidr.v6) throw invalidArgument(`invalid --node-cidr ${quoteValue(text)}: pod addresses are IPv4, use an IPv4 range like 10.0.1.0/24`);
  if (parsed.cidr.bits < 8) throw invalidArgument(`invalid --node-cidr ${quoteValue(text)}: a /${parsed.cidr.bits} is wider than any node's pods (at most a /8)`);
  return parsed.cidr.text;
}

/** May a node bound by `scopes` run a workload of service account `namespace/serviceAccount`? */
export function scopeAllows(scopes: readonly string[], namespace: string, serviceAccount: string): boolean {
  return scopes.some((s) => s === ANY_SCOPE || s === `${namespace}/*` || s === `${namespace}/${serviceAccount}`);
}

/** Node ranges parsed (a registration checks each of its workloads against its node's: parsed once, not per workload). */
const parsedRanges = new Map<string, ReturnType<typeof parseCidr>>();

/** Is `ip` inside the node's declared range? Without one, any address is (other checks still apply). */

export function inNodeRange(nodeCidr: string | undefined, ip: string): boolean {
  if (nodeCidr === undefined) return true;
  let parsed = parsedRanges.get(nodeCidr);
  if (parsed === undefined) {
    if (parsedRanges.size >= 4096) parsedRanges.clear();
    parsedRanges.set(nodeCidr, (parsed = parseCidr(nodeCidr)));
  }
  const addr = new IpAddr();
  return 'cidr' in parsed && parseIpInto(ip, addr) && cidrContains(parsed.cidr, addr);
}

/** `default/*, prod/api` or `any`: the scope as people read it. */
export function describeScopes(scopes: readonly string[]): string {
  return scopes.includes(ANY_SCOPE) ? 'any namespace' : scopes.join(', ');
}
