/**
 * UDP and ICMP policy compiled for the kernel (palisade_rules, an LPM trie the per-pod filters
 * read): a pure function from the enrolled pods and the policies in force to trie entries.
 *
 * From a pod (EgressPolicy): for each pod and protocol, one address space per port an entry names
 * plus one for "any port" (port 0). The filter looks the exact port up first, then port 0, and
 * takes the longest prefix; so every space holds the entries that apply on that port, and the
 * entries are adjusted until longest-prefix matching gives what authorizeEgress decides: an allow
 * block inside a deny block becomes a deny, and a metadata address inside an allow block that does
 * not name it exactly gets its own /32 deny. Without an allow entry of the protocol there is
 * nothing: default deny. The unit test checks the verdicts against authorizeEgress itself (where
 * several allow entries cover a destination, the longest names the flow's rule, not the first).
 *
 * To a strict pod (AuthorizationPolicy): UDP only on ports an ALLOW rule names, and only from
 * mesh workloads (the source is known by its registered address, no mTLS) that `authorize` allows
 * on that port; one /32 entry per allowed source.
 */
import { authorize, type PolicyIndex, type PolicyWorkload } from '../../common/policy';
import { cidrContains, IpAddr, METADATA_ADDRESSES, parseCidr, parseIpInto, type Cidr } from '../../common/policy/ip';
import type { CompiledEgressPolicy, EgressProtocol } from '../../common/policy/types';
import { IPPROTO_ICMP, IPPROTO_UDP, type RuleEntry } from '../datapath/pod-codec';

/** Which policy rule a kernel entry stands for (flow records name it). */
export interface RuleRef {
  /** `namespace/name`; undefined for the metadata-address guard */
  policy: string | undefined;
  /** index in spec.allow / spec.deny (egress) or spec.rules (authorization) */
  rule: number;
  reason: 'allowed-by-cidr' | 'denied-by-cidr' | 'metadata-address' | 'allowed-by-policy';
}

/** A palisade_rules entry before the writer gives it a generation and a number for its ref. */
export type KernelRule = Omit<RuleEntry, 'gen' | 'ref'> & { ref: RuleRef };

export interface RulePod {
  podId: number;
  workload: PolicyWorkload & { ip: string; strict: boolean };
}

/** A mesh workload UDP to a strict pod may come from (by its registered address). */
export interface RuleSource {
  ip: string;
  identity: string;
  namespace: string;
}

interface Entry {
  cidr: Cidr;
  ports: ReadonlySet<number> | undefined;
  verdict: 'allow' | 'deny';
  ref: RuleRef;
}

const METADATA_V4: Cidr[] = METADATA_ADDRESSES.map((a) => parseCidr(a)).flatMap((r) => ('cidr' in r && !r.cidr.v6 ? [r.cidr] : []));

function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.bits > inner.bits) return false;
  const ip = new IpAddr();
  ip.v4 = inner.v4;
  return cidrContains(outer, ip);
}

/** The IPv4 allow and deny entries of `protocol` in the policies selecting a pod. */
function entriesOf(policies: readonly CompiledEgressPolicy[], protocol: EgressProtocol): Entry[] {
  const out: Entry[] = [];
  for (const p of policies) {
    p.deny.forEach((r, i) => {
      if (r.protocol !== protocol) return;
      for (const cidr of r.cidrs ?? []) if (!cidr.v6) out.push({ cidr, ports: r.ports, verdict: 'deny', ref: { policy: p.id, rule: i, reason: 'denied-by-cidr' } });
    });
    p.rules.forEach((r, i) => {
      if (r.protocol !== protocol) return;
      for (const cidr of r.cidrs ?? []) if (!cidr.v6) out.push({ cidr, ports: r.ports, verdict: 'allow', ref: { policy: p.id, rule: i, reason: 'allowed-by-cidr' } });
    });
  }
  return out;
}

/** One port's address space: entries adjusted so the longest prefix gives authorizeEgress's verdict. */
function space(entries: Entry[]): Array<Omit<Entry, 'ports'>> {
  const byCidr = new Map<string, Omit<Entry, 'ports'>>();
  // Deny first: on the same block, deny wins.
  for (const e of entries) if (e.verdict === 'deny' && !byCidr.has(e.cidr.text)) byCidr.set(e.cidr.text, e);
  for (const e of entries) if (e.verdict === 'allow' && !byCidr.has(e.cidr.text)) byCidr.set(e.cidr.text, e);
  const denies = entries.filter((e) => e.verdict === 'deny');
  const out = [...byCidr.values()].map((e) => {
    if (e.verdict === 'deny') return e;
    const d = denies.find((x) => contains(x.cidr, e.cidr));
    return d ? { cidr: e.cidr, verdict: 'deny' as const, ref: d.ref } : e;
  });
  // A metadata address is allowed only by an entry naming exactly it (checked above for denies).
  for (const m of METADATA_V4) {
    if (byCidr.has(m.text)) continue;
    if (out.some((e) => e.verdict === 'allow' && contains(e.cidr, m))) {
      out.push({ cidr: m, verdict: 'deny', ref: { policy: undefined, rule: 0, reason: 'metadata-address' } });
    }
  }
  return out;
}

function egressRules(pod: RulePod, index: PolicyIndex, protocol: EgressProtocol): KernelRule[] {
  const entries = entriesOf(index.egressFor(pod.workload), protocol);
  if (!entries.some((e) => e.verdict === 'allow')) return []; // default deny
  const proto = protocol === 'UDP' ? IPPROTO_UDP : IPPROTO_ICMP;
  const ports = new Set<number>([0]);
  if (protocol === 'UDP') for (const e of entries) for (const p of e.ports ?? []) ports.add(p);
  const out: KernelRule[] = [];
  for (const port of ports) {
    const applicable = entries.filter((e) => e.ports === undefined || (port !== 0 && e.ports.has(port)));
    for (const e of space(applicable)) {
      out.push({ direction: 'from-pod', protocol: proto, podId: pod.podId, port, cidr: e.cidr.text, verdict: e.verdict, ref: e.ref });
    }
  }
  return out;
}

/** The ports ALLOW rules of policies selecting the workload name (`to.operation.ports`), read from their manifests. */
export function allowedPorts(index: PolicyIndex, workload: PolicyWorkload): number[] {
  const ports = new Set<number>();
  for (const p of index.policies(workload).allow) {
    const rules = (p.manifest.spec as { rules?: unknown } | undefined)?.rules;
    if (!Array.isArray(rules)) continue;
    for (const rule of rules as Array<{ to?: Array<{ operation?: { ports?: unknown } }> }>) {
      for (const to of rule?.to ?? []) {
        const list = to?.operation?.ports;
        if (Array.isArray(list)) for (const v of list) if (/^[0-9]{1,5}$/.test(String(v)) && Number(v) >= 1 && Number(v) <= 65535) ports.add(Number(v));
      }
    }
  }
  return [...ports].sort((a, b) => a - b);
}

function strictUdpRules(pod: RulePod, index: PolicyIndex, sources: readonly RuleSource[]): KernelRule[] {
  const out: KernelRule[] = [];
  const ip = new IpAddr();
  for (const port of allowedPorts(index, pod.workload)) {
    for (const s of sources) {
      if (!parseIpInto(s.ip, ip) || ip.v6) continue;
      const v = authorize(
        { source: { principal: s.identity, namespace: s.namespace, ip: s.ip }, destination: { ip: pod.workload.ip, port, workload: pod.workload } },
        index,
        'tcp',
      );
      if (v.allowed && v.reason === 'allowed-by-policy') {
        const ref: RuleRef = { policy: v.policy, rule: v.rule ?? 0, reason: 'allowed-by-policy' };
        out.push({ direction: 'to-pod', protocol: IPPROTO_UDP, podId: pod.podId, port, cidr: `${s.ip}/32`, verdict: 'allow', ref });
      }
    }
  }
  return out;
}

/** Every palisade_rules entry for these pods under these policies (`sources`: the mesh's workloads). */
export function compileKernelRules(pods: readonly RulePod[], index: PolicyIndex, sources: readonly RuleSource[]): KernelRule[] {
  const out: KernelRule[] = [];
  for (const pod of pods) {
    out.push(...egressRules(pod, index, 'UDP'), ...egressRules(pod, index, 'ICMP'));
    if (pod.workload.strict) out.push(...strictUdpRules(pod, index, sources));
  }
  return out;
}
