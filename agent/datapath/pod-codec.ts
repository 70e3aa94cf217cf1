/**
 * Byte layouts of the per-pod structs of bpf/palisade.h (palisade_iface, palisade_drop*,
 * palisade_flow_key, palisade_dgram, palisade_rule*, palisade_host, palisade_agent), mirrored
 * field for field; pod-codec.test.ts checks the sizes against the header, the privileged suite
 * the meaning. Addresses: IPv4 network order as in the packet; ports as each field says.
 */
import { addressFromBytes, ipv4Bytes, mappedBytes } from './codec';

export const IFACE_SIZE = 20;
export const DROP_KEY_SIZE = 8;
export const DROP_SIZE = 32;
export const DROP6_SIZE = 40;
export const FLOW_KEY_SIZE = 16;
export const DGRAM_SIZE = 48;
export const RULE_KEY_SIZE = 32;
export const RULE_SIZE = 8;
export const HOST_SIZE = 8;
export const AGENT_SIZE = 8;

export const DIR_FROM_POD = 1;
export const DIR_TO_POD = 2;
export type Direction = 'from-pod' | 'to-pod';

export const RULE_ALLOW = 1;
export const RULE_DENY = 2;
/** Bits of palisade_rule_key after prefixlen that every entry fixes (gen .. reserved2). */
export const RULE_PREFIX_BITS = 96;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** enum palisade_drop_reason, in order from 1: the `reason` of drop counters, metrics and flow summaries. */
export const DROP_REASONS = [
  'spoofed-mac',
  'spoofed-arp',
  'spoofed-source',
  'ipv6',
  'not-ip',
  'malformed',
  'fragment',
  'proxy-port',
  'tcp-not-redirected',
  'tcp-no-connection',
  'udp-not-allowed',
  'udp-denied-by-policy',
  'icmp-not-allowed',
  'icmp-denied-by-policy',
  'icmp-error-unrelated',
  'protocol-not-allowed',
  'strict-not-from-agent',
  'strict-udp-not-allowed',
  'strict-icmp',
  'ipv6-link-local',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

function ipv4At(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export interface IfaceEntry {
  podId: number;
  flags: number;
  ip: string;
  mac: Buffer;
}

export function encodeIfindex(ifindex: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(ifindex);
  return b;
}

export function encodeIface(e: IfaceEntry): Buffer {
  if (e.mac.length !== 6) throw new TypeError('a MAC address is 6 bytes');
  const b = Buffer.alloc(IFACE_SIZE);
  b.writeUInt32LE(e.podId, 0);
  b.writeUInt32LE(e.flags, 4);
  ipv4Bytes(e.ip).copy(b, 8);
  e.mac.copy(b, 12);
  return b;
}

export function decodeIface(b: Buffer): IfaceEntry {
  return { podId: b.readUInt32LE(0), flags: b.readUInt32LE(4), ip: ipv4At(b, 8), mac: Buffer.from(b.subarray(12, 18)) };
}

export interface DropKey {
  podId: number;
  reason: DropReason;
  direction: Direction;
}

/** A key from the kernel: undefined for a reason or direction this agent does not know (a newer program). */
export function decodeDropKey(b: Buffer): DropKey | undefined {
  const reason = DROP_REASONS[b[4]! - 1];
  const dir = b[5];
  if (reason === undefined || (dir !== DIR_FROM_POD && dir !== DIR_TO_POD)) return undefined;
  return { podId: b.readUInt32LE(0), reason, direction: dir === DIR_FROM_POD ? 'from-pod' : 'to-pod' };
}

export function encodeDropKey(k: DropKey): Buffer {
  const b = Buffer.alloc(DROP_KEY_SIZE);
  b.writeUInt32LE(k.podId, 0);
  b[4] = DROP_REASONS.indexOf(k.reason) + 1;
  b[5] = k.direction === 'from-pod' ? DIR_FROM_POD : DIR_TO_POD;
  return b;
}

/** IPv6 packets between link-local ends (ND, RS, MLD) the pod's kernel sends on its own: counted, no flow record. */
export const COUNTED_ONLY: ReadonlySet<DropReason> = new Set(['ipv6-link-local']);

/** An IPv6 address as people write it (zeros compressed), from 16 bytes. */
export function ipv6Text(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** A palisade_drops_v6 value: when, and the newest dropped IPv6 packet's addresses. */
export function decodeDrop6(b: Buffer): { lastNs: bigint; source: string; destination: string } {
  return { lastNs: b.readBigUInt64LE(0), source: ipv6Text(b.subarray(8, 24)), destination: ipv6Text(b.subarray(24, 40)) };
}

/** The newest dropped packet's headers. */
export interface DropSample {
  source: string;
  destination: string;
  /** TCP/UDP ports; ICMP: type and code */
  sourcePort: number;
  destinationPort: number;
  /** IP protocol (IPv6: the next header), 0 when not IP */
  protocol: number;
  /** ethertype */
  ethProto: number;
}

export interface DropCount {
  packets: bigint;
  /** undefined until one was dropped */
  sample: DropSample | undefined;
}

/** Sum a per-CPU palisade_drop value: packets added up, the sample of the CPU that saw the newest. */
export function decodeDrops(b: Buffer): DropCount {
  let packets = 0n;
  let newest = 0n;
  let at = -1;
  for (let off = 0; off + DROP_SIZE <= b.length; off += DROP_SIZE) {
    packets += b.readBigUInt64LE(off);
    const ns = b.readBigUInt64LE(off + 8);
    if (ns > newest) {
      newest = ns;
      at = off;
    }
  }
  if (at < 0) return { packets, sample: undefined };
  return {
    packets,
    sample: {
      source: ipv4At(b, at + 16),
      destination: ipv4At(b, at + 20),
      sourcePort: b.readUInt16LE(at + 24),
      destinationPort: b.readUInt16LE(at + 26),
      protocol: b[at + 28]!,
      ethProto: b.readUInt16LE(at + 30),
    },
  };
}

export interface FlowKey {
  podIp: string;
  peerIp: string;
  /** host byte order; ICMP: the echo identifier */
  podPort: number;
  peerPort: number;
  protocol: number;
}

export function decodeFlowKey(b: Buffer): FlowKey {
  return {
    podIp: ipv4At(b, 0),
    peerIp: ipv4At(b, 4),
    podPort: b.readUInt16BE(8),
    peerPort: b.readUInt16BE(10),
    protocol: b[12]!,
  };
}

export function encodeFlowKey(k: FlowKey): Buffer {
  const b = Buffer.alloc(FLOW_KEY_SIZE);
  ipv4Bytes(k.podIp).copy(b, 0);
  ipv4Bytes(k.peerIp).copy(b, 4);
  b.writeUInt16BE(k.podPort, 8);
  b.writeUInt16BE(k.peerPort, 10);
  b[12] = k.protocol;
  return b;
}

export interface DgramEntry {
  podId: number;
  /** who sent the first packet */
  direction: Direction;
  /** the rule ref that allowed it, 0 for none */
  rule: number;
  packetsOut: bigint;
  bytesOut: bigint;
  packetsIn: bigint;
  bytesIn: bigint;
}

export function decodeDgram(b: Buffer): DgramEntry {
  return {
    podId: b.readUInt32LE(0),
    direction: b[4] === DIR_FROM_POD ? 'from-pod' : 'to-pod',
    rule: b.readUInt32LE(8),
    packetsOut: b.readBigUInt64LE(16),
    bytesOut: b.readBigUInt64LE(24),
    packetsIn: b.readBigUInt64LE(32),
    bytesIn: b.readBigUInt64LE(40),
  };
}

/** One entry of palisade_rules: IPv4 CIDRs only (enrolled pods have no IPv6 address). */
export interface RuleEntry {
  gen: number;
  direction: Direction;
  protocol: typeof IPPROTO_UDP | typeof IPPROTO_ICMP;
  podId: number;
  /** 0: any port */
  port: number;
  /** a.b.c.d/len */
  cidr: string;
  verdict: 'allow' | 'deny';
  /** the agent's name for the deciding rule, never 0 */
  ref: number;
}

export function encodeRuleKey(e: Pick<RuleEntry, 'gen' | 'direction' | 'protocol' | 'podId' | 'port' | 'cidr'>): Buffer {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(e.cidr);
  const len = m ? Number(m[2]) : -1;
  if (!m || len > 32) throw new TypeError(`not an IPv4 CIDR: ${e.cidr}`);
  const b = Buffer.alloc(RULE_KEY_SIZE);
  b.writeUInt32LE(RULE_PREFIX_BITS + 96 + len, 0);
  b[4] = e.gen;
  b[5] = e.direction === 'from-pod' ? DIR_FROM_POD : DIR_TO_POD;
  b[6] = e.protocol;
  b.writeUInt32LE(e.podId, 8);
  b.writeUInt16LE(e.port, 12);
  mappedBytes(m[1]!).copy(b, 16);
  return b;
}

export function decodeRuleKeyGen(b: Buffer): number {
  return b[4]!;
}

export function describeRuleKey(b: Buffer): string {
  return `gen ${b[4]} dir ${b[5]} proto ${b[6]} pod ${b.readUInt32LE(8)} port ${b.readUInt16LE(12)} ${addressFromBytes(b.subarray(16, 32))}/${b.readUInt32LE(0) - RULE_PREFIX_BITS - 96}`;
}

export function encodeRule(e: Pick<RuleEntry, 'verdict' | 'ref'>): Buffer {
  const b = Buffer.alloc(RULE_SIZE);
  b.writeUInt32LE(e.verdict === 'allow' ? RULE_ALLOW : RULE_DENY, 0);
  b.writeUInt32LE(e.ref, 4);
  return b;
}

export function encodeU32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export function encodeU64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}

export function encodeAgent(pid: number, since: number): Buffer {
  const b = Buffer.alloc(AGENT_SIZE);
  b.writeUInt32LE(pid >>> 0, 0);
  b.writeUInt32LE(since >>> 0, 4);
  return b;
}

export function decodeAgent(b: Buffer): { pid: number; since: number } {
  return { pid: b.readUInt32LE(0), since: b.readUInt32LE(4) };
}
