/**
 * Egress rules as `palisade egress` shows and makes them: each rule is one EgressPolicy. `allow`
 * and `deny` build a new policy selecting exactly one workload (its palisade.dev/workload label);
 * `list` reads every allow and deny entry of the compiled set, with the workloads it selects.
 */
import type { EgressRuleRequest, EgressRuleView } from '../../common/control-api';
import { invalidArgument } from '../../common/errors';
import { WORKLOAD_LABEL } from '../../common/labels';
import type { RegistryWorkload } from '../../common/mesh-protocol';
import { parseCidr } from '../../common/policy/ip';
import { hostProblem } from '../../common/policy/parse-egress';
import { quoteRef } from './references';
import { digestSelects, type SetDigest } from './set-digest';
import { policyKey, type StoredPolicy } from './repository';

/** Most destinations one `egress allow|deny` takes. */
const MAX_DESTINATIONS = 100;

/**
 * The manifest of the EgressPolicy `egress allow|deny W DEST… [--port P] [--protocol X]` creates
 * for workload `w`, named after it, the action and the policy's `id`; throws on a bad destination,
 * port or protocol (hosts are TCP only; ICMP has no ports).
 */
export function egressRuleManifest(w: { namespace: string; name: string }, req: EgressRuleRequest, id: number): Record<string, unknown> {
  if (!Array.isArray(req.destinations) || req.destinations.length === 0) throw invalidArgument('name at least one destination (a host, *.suffix or CIDR)');
  if (req.destinations.length > MAX_DESTINATIONS) throw invalidArgument(`at most ${MAX_DESTINATIONS} destinations at once`);
  const hosts: string[] = [];
  const cidrs: string[] = [];
  for (const d of req.destinations) {
    const kind = classifyDestination(d);
    if ('problem' in kind) throw invalidArgument(`invalid destination ${quoteRef(String(d))}: ${kind.problem}`);
    if (kind.host !== undefined) hosts.push(kind.host);
    else cidrs.push(kind.cidr);
  }
  const ports = req.ports ?? [];
  for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalidArgument(`invalid port ${quoteRef(String(p))}: use a number from 1 to 65535`);
  const protocol = req.protocol ?? 'TCP';
  if (protocol !== 'TCP' && hosts.length > 0) {
    throw invalidArgument(`${quoteRef(hosts[0]!)} is a host: host rules are TCP only (names are checked against TLS SNI and HTTP Host); give ${protocol} destinations as CIDRs`);
  }
  if (protocol === 'ICMP' && ports.length > 0) throw invalidArgument('ICMP has no ports (leave out --port)');
  const portList = [...new Set(ports)].sort((a, b) => a - b);
  const entry = (k: 'hosts' | 'cidrs', values: string[]): Record<string, unknown> => ({
    [k]: [...new Set(values)],
    ...(portList.length ? { ports: portList } : {}),
    ...(protocol !== 'TCP' ? { protocol } : {}),
  });
  const name = `${w.name}-${req.action}-${id}`.slice(0, 63).replace(/-+$/, '');
  return {
    apiVersion: 'palisade.dev/v1',
    kind: 'EgressPolicy',
    metadata: { name, namespace: w.namespace, labels: { 'palisade.dev/managed-by': 'cli' } },
    spec: {
      selector: { matchLabels: { [WORKLOAD_LABEL]: w.name } },
      [req.action]: [...(hosts.length ? [entry('hosts', hosts)] : []), ...(cidrs.length ? [entry('cidrs', cidrs)] : [])],
    },
  };
}

/** A destination from the command line: a host, `*.suffix`, or an address / CIDR. */
export function classifyDestination(d: unknown): { host: string } | { cidr: string; host?: undefined } | { problem: string } {
  if (typeof d !== 'string' || d.length === 0 || d.length > 300) return { problem: 'give a host, *.suffix or CIDR' };
  const looksIp = /^[0-9.]+(\/\d+)?$/.test(d) || d.includes(':');
  if (looksIp) {
    const r = parseCidr(d);
    if ('problem' in r) return { problem: r.problem };
    return { cidr: r.cidr.text };
  }
  const host = d.toLowerCase().replace(/\.$/, '');
  const problem = hostProblem(host);
  return problem ? { problem } : { host };
}

/**
 * Every deny and allow entry of the EgressPolicies of `digest` (the compiled set, as the agents
 * see it: set-digest.ts), with the stored policy's id, origin and version and the registered
 * workloads it selects; with `only`, just the policies selecting that workload.
 */
export function egressRuleViews(
  digest: SetDigest,
  stored: ReadonlyMap<string, StoredPolicy>,
  workloads: readonly RegistryWorkload[],
  only?: { namespace: string; name: string },
): EgressRuleView[] {
  const rules: EgressRuleView[] = [];
  for (const p of digest.egress) {
    const selected = workloads.filter((w) => digestSelects(digest, p, w));
    if (only && !selected.some((w) => w.namespace === only.namespace && w.name === only.name)) continue;
    const { id, origin, version } = stored.get(policyKey({ kind: 'EgressPolicy', namespace: p.namespace, name: p.name }))!;
    const selectedNames = [...new Set(selected.map((w) => `${w.namespace}/${w.name}`))].sort();
    for (const e of p.entries) {
      rules.push({ id, namespace: p.namespace, policy: p.name, selector: p.selector ? { ...p.selector } : null, workloads: selectedNames, ...e, origin, version });
    }
  }
  return rules;
}
