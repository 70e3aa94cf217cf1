/**
 * Responses the proxy writes: its own answers (mesh names, the hosts file), errors (FORMERR,
 * SERVFAIL, NXDOMAIN, REFUSED, NOTIMP), a cached upstream answer made the client's own, the
 * truncated form of an answer too big for the client's UDP size, and the query sent upstream.
 * Every response repeats the client's question byte for byte (case included) and carries an EDNS
 * OPT record exactly when the query did (RFC 6891 §7).
 */
import { isIPv4 } from 'node:net';
import type { Edns, Query } from './message';
import { CLASS_IN, FLAG, HEADER_SIZE, TYPE } from './wire';

/** What the proxy advertises and uses upstream: the DNS flag day 2020 size, safe from fragmentation. */
export const EDNS_UDP_SIZE = 1232;
const OPT_SIZE = 11;
const ADDITIONAL_COUNT = 10;

/** The OPT record of a response (or of the query sent upstream with `dnssecOk`). */
function writeOpt(out: Buffer, at: number, dnssecOk: boolean): number {
  out[at] = 0; // root
  out.writeUInt16BE(TYPE.OPT, at + 1);
  out.writeUInt16BE(EDNS_UDP_SIZE, at + 3);
  out.writeUInt32BE(dnssecOk ? 0x8000 : 0, at + 5);
  out.writeUInt16BE(0, at + 9);
  return at + OPT_SIZE;
}

/** Response flags for `query`: QR, its opcode, RD and CD, RA (we recurse), and `rcode`. */
function responseFlags(query: Query, rcode: number, extra = 0): number {
  const q = query.header.flags;
  return FLAG.QR | (q & 0x7800) | (q & FLAG.RD) | (q & FLAG.CD) | FLAG.RA | extra | (rcode & 0xf);
}

/** Header and question of a response to `msg`, room for `body` more bytes; returns the write offset. */
function start(msg: Buffer, query: Query, flags: number, body: number): { out: Buffer; at: number } {
  const qlen = query.question.end - query.question.start;
  const out = Buffer.allocUnsafe(HEADER_SIZE + qlen + body + (query.edns ? OPT_SIZE : 0));
  out.writeUInt16BE(query.header.id, 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt32BE(0, 6); // ancount, nscount
  out.writeUInt16BE(query.edns ? 1 : 0, ADDITIONAL_COUNT);
  msg.copy(out, HEADER_SIZE, query.question.start, query.question.end);
  return { out, at: HEADER_SIZE + qlen };
}

function finish(out: Buffer, at: number, edns: Edns | undefined): Buffer {
  if (edns) at = writeOpt(out, at, false);
  return at === out.length ? out : out.subarray(0, at);
}

/** An answerless response with `rcode` (NXDOMAIN, SERVFAIL, …; NOERROR is NODATA). */
export function rcodeResponse(msg: Buffer, query: Query, rcode: number, opts: { authoritative?: boolean; truncated?: boolean } = {}): Buffer {
  const extra = (opts.authoritative ? FLAG.AA : 0) | (opts.truncated ? FLAG.TC : 0);
  const { out, at } = start(msg, query, responseFlags(query, rcode, extra), 0);
  return finish(out, at, query.edns);
}

/**
 * FORMERR for a message whose question could not be read: the header's ID and opcode, no question.
 * Undefined when not even a header came (nothing to answer to).
 */
export function formatErrorResponse(msg: Buffer): Buffer | undefined {
  if (msg.length < HEADER_SIZE || msg[2]! & 0x80) return undefined;
  const out = Buffer.alloc(HEADER_SIZE);
  msg.copy(out, 0, 0, 2);
  out.writeUInt16BE(FLAG.QR | (msg.readUInt16BE(2) & (0x7800 | FLAG.RD)) | FLAG.RA | 1, 2);
  return out;
}

/**
 * The proxy's own answer: an A or AAAA record per address of the question's type (the others
 * are left out: NODATA when none is left), each pointing at the question's name.
 */
export function addressResponse(msg: Buffer, query: Query, addresses: readonly string[], ttl: number): Buffer {
  const type = query.question.type;
  const want = addresses.filter((ip) => (type === TYPE.A ? isIPv4(ip) : type === TYPE.AAAA && !isIPv4(ip)));
  const rdlen = type === TYPE.A ? 4 : 16;
  const { out, at: first } = start(msg, query, responseFlags(query, 0, FLAG.AA), want.length * (12 + rdlen));
  let at = first;
  for (const ip of want) {
    out.writeUInt16BE(0xc000 | HEADER_SIZE, at); // the question's name
    out.writeUInt16BE(type, at + 2);
    out.writeUInt16BE(CLASS_IN, at + 4);
    out.writeUInt32BE(ttl, at + 6);
    out.writeUInt16BE(rdlen, at + 10);
    addressBytes(ip, rdlen).copy(out, at + 12);
    at += 12 + rdlen;
  }
  out.writeUInt16BE(want.length, 6);
  return finish(out, at, query.edns);
}

function addressBytes(ip: string, size: number): Buffer {
  if (size === 4) return Buffer.from(ip.split('.').map(Number));
  const out = Buffer.alloc(16);
  const [head = '', tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return out;
}

/** A cached upstream answer, without its additional section, as stored by the cache. */
export interface StoredAnswer {
  /** Header, question, answer and authority sections (ARCOUNT already 0). */
  msg: Buffer;
  /** Where the question ends in `msg`. */
  questionEnd: number;
  /** TTL fields to lower by the time spent in the cache. */
  ttlOffsets: readonly number[];
  /** The upstream response's flags (AA, rcode, …). */
  flags: number;
}

/**
 * A stored answer as the answer to `query`: its ID, question bytes (same name in the client's
 * case: the stored records point at it), RD/CD, every TTL lowered by `elapsedS`, and an OPT
 * record when the query had one.
 */
export function answerFromStored(msg: Buffer, query: Query, stored: StoredAnswer, elapsedS: number): Buffer {
  const body = stored.msg.length;
  const out = Buffer.allocUnsafe(body + (query.edns ? OPT_SIZE : 0));
  stored.msg.copy(out, 0, 0, body);
  out.writeUInt16BE(query.header.id, 0);
  const upstream = stored.flags & (FLAG.AA | 0xf);
  out.writeUInt16BE(responseFlags(query, upstream & 0xf, upstream & FLAG.AA), 2);
  msg.copy(out, query.question.start, query.question.start, query.question.end);
  for (const off of stored.ttlOffsets) out.writeUInt32BE(Math.max(0, out.readUInt32BE(off) - elapsedS), off);
  out.writeUInt16BE(query.edns ? 1 : 0, ADDITIONAL_COUNT);
  return finish(out, body, query.edns);
}

/** The most a UDP response to `query` may hold: 512 without EDNS, else its size up to ours. */
export function udpLimit(query: Query): number {
  return query.edns ? Math.min(query.edns.udpSize, EDNS_UDP_SIZE) : 512;
}

/** The query the proxy sends upstream for `query`: a fresh ID, recursion desired, our EDNS size. */
export function upstreamQuery(msg: Buffer, query: Query, id: number): Buffer {
  const qlen = query.question.end - query.question.start;
  const out = Buffer.alloc(HEADER_SIZE + qlen + OPT_SIZE);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(FLAG.RD | (query.header.flags & FLAG.CD), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, ADDITIONAL_COUNT);
  msg.copy(out, HEADER_SIZE, query.question.start, query.question.end);
  writeOpt(out, HEADER_SIZE + qlen, query.edns?.dnssecOk ?? false);
  return out;
}
