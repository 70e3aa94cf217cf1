/**
 * `learnEgress`: propose the smallest EgressPolicy that allows what one workload was seen doing,
 * from its egress flow records: names when known, else addresses; ports per destination; the
 * flows' protocol (UDP and ICMP flows become `protocol:` entries of addresses, never names);
 * optionally `*.parent` groups. Output is sorted, so the same flows give the same YAML. What is
 * left out and how entries are grouped: docs/architecture.md "What-if: policy test and egress
 * learn".
 */
import { Document, isSeq, visit } from 'yaml';
import type { StoredFlow } from '../../common/flows-api';
import type { EgressLearnResponse } from '../../common/control-api';
import type { FlowRecord } from '../../common/flow';
import { WORKLOAD_LABEL } from '../../common/labels';
import { EGRESS_API_VERSION } from '../../common/policy';
import type { EgressProtocol } from '../../common/policy/types';
import { formatIp, IpAddr, isMetadataAddress, parseIpInto } from '../../common/policy/ip';
import { hostProblem } from '../../common/policy/parse-egress';
import { egressProtocolOf } from './flow-protocol';

export interface LearnOptions {
  /** Replace two or more names under one parent domain by `*.parent`. */
  groupSuffixes?: boolean;
  /** Learn destinations that policy denied too (never explicit denials, spoofing or metadata). */
  includeDenied?: boolean;
  /** metadata.name of the proposal; default `<workload>-egress-learned`. */
  policyName?: string;
}

/** Denials an allow entry would undo, learned with `includeDenied`. */
const LEARNABLE_DENIALS: ReadonlySet<string> = new Set(['no-rule-matched', 'host-not-allowed']);

/** Second-level names under a country code that act as public suffixes (co.uk, com.au, ...). */
const SECOND_LEVEL: ReadonlySet<string> = new Set(['ac', 'co', 'com', 'edu', 'go', 'gob', 'gov', 'gv', 'ltd', 'mil', 'ne', 'net', 'nom', 'or', 'org', 'plc', 'sch']);

/** Flows of a protocol no egress entry can name (arp, other) are left out with this reason. */
const UNLEARNABLE_PROTOCOL = 'unlearnable-protocol';

/** The order entries of each protocol come in (TCP, the default, first). */
const PROTOCOL_ORDER: readonly EgressProtocol[] = ['TCP', 'UDP', 'ICMP'];

/** One learned destination: a name (TCP only), `*.suffix` or a CIDR, its ports (undefined: any) and flow count. */
interface Destination {
  protocol: EgressProtocol;
  host?: string;
  cidr?: string;
  ports: Set<number> | undefined;
  flows: number;
}

export function learnEgress(
  flows: Iterable<StoredFlow | FlowRecord>,
  workload: { namespace: string; name: string },
  opts: LearnOptions = {},
): EgressLearnResponse {
  const skipped: Record<string, number> = {};
  const byKey = new Map<string, Destination>();
  const ip = new IpAddr();
  let looked = 0;
  let first = Infinity;
  let last = -Infinity;

  for (const f of flows) {
    if (f.direction !== 'egress' || f.source.namespace !== workload.namespace || f.source.workload !== workload.name) continue;
    looked++;
    const t = Date.parse(f.time);
    if (t < first) first = t;
    if (t > last) last = t;
    const learnable = f.verdict === 'allowed' || f.verdict === 'audit' || (f.verdict === 'denied' && opts.includeDenied === true && LEARNABLE_DENIALS.has(f.reason));
    const protocol = egressProtocolOf(f.protocol);
    const why = !learnable ? f.reason : protocol === undefined ? UNLEARNABLE_PROTOCOL : !parseIpInto(f.destination.ip, ip, true) ? 'bad-address' : undefined;
    if (why !== undefined || protocol === undefined) {
      skipped[why!] = (skipped[why!] ?? 0) + 1;
      continue;
    }
    // Names are checked against TLS SNI and HTTP Host: host entries are TCP only.
    const host = isMetadataAddress(ip) || protocol !== 'TCP' ? undefined : learnableHost(f.destination.host);
    const dest: Destination =
      host !== undefined ? { protocol, host, ports: new Set(), flows: 0 } : { protocol, cidr: `${formatIp(ip)}/${ip.v6 ? 128 : 32}`, ports: new Set(), flows: 0 };
    const key = `${protocol} ${host ?? dest.cidr!}`;
    let d = byKey.get(key);
    if (d === undefined) byKey.set(key, (d = dest));
    d.flows++;
    const port = f.destination.port;
    if (port === undefined || protocol === 'ICMP') d.ports = undefined; // ICMP has no ports
    else d.ports?.add(port);
  }

  let hosts = [...byKey.values()].filter((d) => d.host !== undefined);
  if (opts.groupSuffixes) hosts = groupSuffixes(hosts);
  hosts.sort((a, b) => compareHosts(a.host!, b.host!));
  const allow = entries(hosts, 'hosts', 'TCP');
  const cidrs: Destination[] = [];
  for (const protocol of PROTOCOL_ORDER) {
    const of = [...byKey.values()].filter((d) => d.cidr !== undefined && d.protocol === protocol).sort((a, b) => compareCidrs(a.cidr!, b.cidr!));
    allow.push(...entries(of, 'cidrs', protocol));
    cidrs.push(...of);
  }

  const name = opts.policyName ?? `${workload.name}-egress-learned`;
  const manifest: Record<string, unknown> = {
    apiVersion: EGRESS_API_VERSION,
    kind: 'EgressPolicy',
    metadata: { name, namespace: workload.namespace },
    spec: { selector: { matchLabels: { [WORKLOAD_LABEL]: workload.name } }, allow },
  };
  const doc = new Document(manifest);
  doc.commentBefore = header(workload, looked, first, last, skipped, allow.length === 0);
  visit(doc, {
    Pair: (_, pair) => {
      if (isSeq(pair.value) && String(pair.key) === 'ports') pair.value.flow = true; // ports: [443]
    },
  });
  return {
    yaml: doc.toString({ lineWidth: 0, flowCollectionPadding: false }),
    manifest,
    flows: looked,
    skipped,
    destinations: [...hosts, ...cidrs].map((d) => ({
      ...(d.host !== undefined ? { host: d.host } : { cidr: d.cidr! }),
      ports: sortedPorts(d.ports) ?? [],
      ...(d.protocol === 'TCP' ? {} : { protocol: d.protocol }),
      flows: d.flows,
    })),
  };
}

/** The record's name as an exact DNS name for a `hosts` entry, or undefined (then the address is used). */
function learnableHost(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === '' || h.includes('*') || hostProblem(h) !== undefined) return undefined;
  return h;
}

/** The parent domain `*.parent` may stand for, or undefined (too short, or a public suffix). */
function groupableParent(host: string): string | undefined {
  const parent = host.slice(host.indexOf('.') + 1);
  const labels = parent.split('.');
  if (host.indexOf('.') < 0 || labels.length < 2) return undefined;
  if (labels.length === 2 && /^[a-z]{2}$/.test(labels[1]!) && SECOND_LEVEL.has(labels[0]!)) return undefined;
  return parent;
}

function groupSuffixes(hosts: Destination[]): Destination[] {
  const byParent = new Map<string, Destination[]>();
  for (const d of hosts) {
    const parent = groupableParent(d.host!);
    if (parent === undefined) continue;
    const list = byParent.get(parent);
    if (list) list.push(d);
    else byParent.set(parent, [d]);
  }
  const suffixOf = new Map<string, Destination>();
  for (const [parent, list] of byParent) if (list.length >= 2) suffixOf.set(parent, { protocol: 'TCP', host: `*.${parent}`, ports: new Set(), flows: 0 });
  if (suffixOf.size === 0) return hosts;
  const merge = (into: Destination, d: Destination): void => {
    into.flows += d.flows;
    if (into.ports === undefined || d.ports === undefined) into.ports = undefined;
    else for (const p of d.ports) into.ports.add(p);
  };
  // The grouped names make each suffix (and its ports).
  const rest: Destination[] = [];
  for (const d of hosts) {
    const parent = groupableParent(d.host!);
    const s = parent === undefined ? undefined : suffixOf.get(parent);
    if (s) merge(s, d);
    else rest.push(d);
  }
  // Then a name or narrower suffix that a wider suffix covers, ports included, folds into the
  // widest such: narrowest first, so nothing folds into a suffix that has already folded.
  const suffixes = [...suffixOf.values()].sort((a, b) => a.host!.length - b.host!.length);
  const out: Destination[] = [];
  for (const d of [...rest, ...[...suffixes].reverse()]) {
    const covering = suffixes.find((x) => x !== d && d.host!.length > x.host!.length - 1 && d.host!.endsWith(x.host!.slice(1)) && portsWithin(d.ports, x.ports));
    if (covering) merge(covering, d);
    else out.push(d);
  }
  return out;
}

/** Every port of `inner` is in `outer` (undefined: any port). */
function portsWithin(inner: Set<number> | undefined, outer: Set<number> | undefined): boolean {
  if (outer === undefined) return true;
  if (inner === undefined) return false;
  for (const p of inner) if (!outer.has(p)) return false;
  return true;
}

function sortedPorts(ports: Set<number> | undefined): number[] | undefined {
  return ports === undefined ? undefined : [...ports].sort((a, b) => a - b);
}

/**
 * One allow entry per distinct port set, in the order of first appearance of the (sorted)
 * destinations; `protocol` written out unless it is TCP (the default).
 */
function entries(dests: Destination[], field: 'hosts' | 'cidrs', protocol: EgressProtocol): Record<string, unknown>[] {
  const tagged = (e: Record<string, unknown>): Record<string, unknown> => (protocol === 'TCP' ? e : { ...e, protocol });
  const byPorts = new Map<string, { values: string[]; ports: number[] | undefined }>();
  for (const d of dests) {
    const ports = sortedPorts(d.ports);
    const key = ports === undefined ? 'any' : ports.join(',');
    let e = byPorts.get(key);
    if (e === undefined) byPorts.set(key, (e = { values: [], ports }));
    e.values.push(field === 'hosts' ? d.host! : d.cidr!);
  }
  return [...byPorts.entries()]
    .sort((a, b) => comparePortSets(a[1].ports, b[1].ports))
    .map(([, e]) => tagged(e.ports === undefined ? { [field]: e.values } : { [field]: e.values, ports: e.ports }));
}

/** Any port first, then by the port lists, element by element. */
function comparePortSets(a: number[] | undefined, b: number[] | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** By registrable-looking domain first: labels compared from the right, `*` before names. */
function compareHosts(a: string, b: string): number {
  const x = a.split('.').reverse().join('.');
  const y = b.split('.').reverse().join('.');
  return x < y ? -1 : x > y ? 1 : 0;
}

/** IPv4 before IPv6, then by address. */
function compareCidrs(a: string, b: string): number {
  const pa = new IpAddr();
  const pb = new IpAddr();
  parseIpInto(a.slice(0, a.indexOf('/')), pa);
  parseIpInto(b.slice(0, b.indexOf('/')), pb);
  if (pa.v6 !== pb.v6) return pa.v6 ? 1 : -1;
  if (!pa.v6) return pa.v4 - pb.v4;
  for (let i = 0; i < 4; i++) if (pa.w[i] !== pb.w[i]) return pa.w[i]! - pb.w[i]!;
  return 0;
}

function header(
  workload: { namespace: string; name: string },
  looked: number,
  first: number,
  last: number,
  skipped: Record<string, number>,
  empty: boolean,
): string {
  const window = looked > 0 && Number.isFinite(first) ? `, ${new Date(first).toISOString()} to ${new Date(last).toISOString()}` : '';
  const lines = [` Learned by palisade egress learn for ${workload.namespace}/${workload.name} from ${looked} egress flow${looked === 1 ? '' : 's'}${window}.`];
  const left = Object.keys(skipped).sort();
  if (left.length > 0) lines.push(` Left out: ${left.map((r) => `${skipped[r]} ${r}`).join(', ')}.`);
  lines.push(empty ? ' Nothing to allow was seen: applied, this policy denies all egress of the workload.' : ' Applied, it allows these destinations and denies all other egress of the workload: review it first.');
  return lines.join('\n');
}
