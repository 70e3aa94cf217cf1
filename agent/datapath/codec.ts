/**
 * Byte layouts of bpf/palisade.h, mirrored field for field. Keep in step with the
 * header: codec.test.ts checks the sizes, the privileged suite checks the meaning.
 */
import { isIPv4 } from 'node:net';
import { stripMapped } from '../ipv4-mapped';

export const CONFIG_SIZE = 8;
export const POD_SIZE = 16;
export const ORIG_SIZE = 32;
export const TUPLE_SIZE = 24;
export const LPM_KEY_SIZE = 20;

export const POD_FLAG_REDIRECT = 1 << 0;
export const POD_FLAG_STRICT = 1 << 1;

/** enum palisade_stat, in order. */
export const STAT_NAMES = [
  'redirected',
  'excluded',
  'origUpdateFail',
  'tupleUpdateFail',
  'v6Denied',
  'dropUncounted',
  'held',
] as const;
export type StatName = (typeof STAT_NAMES)[number];

/** enum palisade_dns_stat (bpf/dns.bpf.c), in order. */
export const DNS_STAT_NAMES = ['udp', 'tcp', 'storageFail', 'peerFail', 'origFail', 'v6Denied'] as const;
export type DnsStatName = (typeof DNS_STAT_NAMES)[number];

export interface Endpoint {
  ip: string;
  port: number;
}

/** dotted quad -> 4 bytes, network order. */
export function ipv4Bytes(ip: string): Buffer {
  if (!isIPv4(ip)) throw new TypeError(`not an IPv4 address: ${ip}`);
  return Buffer.from(ip.split('.').map((p) => Number(p)));
}

/** IPv4 (also written ::ffff:a.b.c.d) -> 16-byte IPv4-mapped address. */
export function mappedBytes(ip: string): Buffer {
  const v4 = stripMapped(ip);
  const out = Buffer.alloc(16);
  out[10] = 0xff;
  out[11] = 0xff;
  ipv4Bytes(v4).copy(out, 12);
  return out;
}

/** 16-byte address -> text; IPv4-mapped comes back as a dotted quad. */
export function addressFromBytes(b: Buffer): string {
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

export function encodeConfig(proxyIp: string, proxyPort: number, dnsPort: number): Buffer {
  const b = Buffer.alloc(CONFIG_SIZE);
  ipv4Bytes(proxyIp).copy(b, 0);
  b.writeUInt16LE(proxyPort, 4);
  b.writeUInt16LE(dnsPort, 6);
  return b;
}

export function encodeNetnsCookie(cookie: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(cookie);
  return b;
}

export function decodeNetnsCookie(b: Buffer): bigint {
  return b.readBigUInt64LE(0);
}

export interface PodEntry {
  podId: number;
  flags: number;
  ip: string | undefined;
  /** its host-side interface, 0 for none */
  ifindex: number;
}

export function encodePod(p: PodEntry): Buffer {
  const b = Buffer.alloc(POD_SIZE);
  b.writeUInt32LE(p.podId, 0);
  b.writeUInt32LE(p.flags, 4);
  if (p.ip) ipv4Bytes(p.ip).copy(b, 8);
  b.writeUInt32LE(p.ifindex, 12);
  return b;
}

export function decodePod(b: Buffer): PodEntry {
  const ip4 = b.subarray(8, 12);
  return {
    podId: b.readUInt32LE(0),
    flags: b.readUInt32LE(4),
    ip: ip4.every((x) => x === 0) ? undefined : `${ip4[0]}.${ip4[1]}.${ip4[2]}.${ip4[3]}`,
    ifindex: b.readUInt32LE(12),
  };
}

export interface OrigEntry {
  dst: Endpoint;
  podId: number;
  netnsCookie: bigint;
}

export function decodeOrig(b: Buffer): OrigEntry {
  return {
    dst: { ip: addressFromBytes(b.subarray(0, 16)), port: b.readUInt16LE(16) },
    podId: b.readUInt32LE(20),
    netnsCookie: b.readBigUInt64LE(24),
  };
}

export function encodeTuple(ip: string, port: number): Buffer {
  const b = Buffer.alloc(TUPLE_SIZE);
  mappedBytes(ip).copy(b, 0);
  b.writeUInt16LE(port, 16);
  return b;
}

/** CIDR a.b.c.d/n -> LPM key over the IPv4-mapped address (prefix n + 96). */
export function encodeLpmKey(cidr: string): Buffer {
  const m = /^([0-9.]+)(?:\/(\d{1,2}))?$/.exec(cidr);
  const ip = m?.[1];
  const len = m?.[2] === undefined ? 32 : Number(m[2]);
  if (!m || !ip || !isIPv4(ip) || len > 32) throw new TypeError(`not an IPv4 CIDR: ${cidr}`);
  const b = Buffer.alloc(LPM_KEY_SIZE);
  b.writeUInt32LE(96 + len, 0);
  mappedBytes(ip).copy(b, 4);
  return b;
}

export function decodeLpmKey(b: Buffer): string {
  return `${addressFromBytes(b.subarray(4, 20))}/${b.readUInt32LE(0) - 96}`;
}

export function encodePort(port: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(port);
  return b;
}

export function decodePort(b: Buffer): number {
  return b.readUInt16LE(0);
}

/** Sum a per-CPU u64 value (each CPU's slot is 8 bytes). */
export function sumPerCpu(b: Buffer): bigint {
  let total = 0n;
  for (let off = 0; off + 8 <= b.length; off += 8) total += b.readBigUInt64LE(off);
  return total;
}
