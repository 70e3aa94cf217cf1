/**
 * DNS wire format, the parts every message shares (RFC 1035 §4.1): the header, names with
 * compression, and the numbers the proxy speaks of. Strict and bounded: a name is at most 255
 * bytes of at most 63-byte labels, a compression pointer must point backwards into the message
 * (past the header) and at most MAX_POINTERS of them are followed, reserved label types are
 * refused. Anything else is a DnsFormatError, never an exception of another kind, never a loop.
 *
 * Why our own and not a library: the proxy reads the question, TTLs and the A/AAAA/CNAME answers
 * and rewrites IDs, TTLs and the question in place; a general-purpose decoder (dns-packet & co.)
 * builds an object per record of every section and a string per name, which is what a flood of
 * queries must not cost, and is built to read what servers send, not to refuse what we refuse
 * (forward pointers, pointers into the header, counts that cannot fit the message). About 300
 * lines here do what the proxy needs. The README's "DNS" section has the picture.
 */

export const HEADER_SIZE = 12;
/** RFC 1035 §2.3.4 */
export const MAX_NAME_WIRE = 255;
export const MAX_LABEL = 63;
/** No legitimate name needs more: 255 bytes hold at most 127 labels, each reached once. */
export const MAX_POINTERS = 127;

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;
export const CLASS_IN = 1;
export const OPCODE_QUERY = 0;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type RcodeName = keyof typeof RCODE;

const RCODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RCODE).map(([k, v]) => [v, k]));
const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));

/** `NXDOMAIN`, or `RCODE17` for one we have no name for. */
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

/** `AAAA`, or `TYPE65` (RFC 3597's spelling) for one we have no name for. */
export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `TYPE${type}`;
}

/** Flag bits of header word 2. */
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010 } as const;

export class DnsFormatError extends Error {
  readonly code = 'PALISADE_ERR_DNS_FORMAT';
}

function fail(what: string): never {
  throw new DnsFormatError(what);
}

export interface Header {
  id: number;
  flags: number;
  opcode: number;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export function readHeader(msg: Buffer): Header {
  if (msg.length < HEADER_SIZE) fail(`message of ${msg.length} bytes is shorter than a header`);
  const flags = msg.readUInt16BE(2);
  return {
    id: msg.readUInt16BE(0),
    flags,
    opcode: (flags >> 11) & 0xf,
    rcode: flags & 0xf,
    qdcount: msg.readUInt16BE(4),
    ancount: msg.readUInt16BE(6),
    nscount: msg.readUInt16BE(8),
    arcount: msg.readUInt16BE(10),
  };
}

/** A name read from a message: where it ends in place, and its presentation form. */
export interface ReadName {
  /** Offset just past the name where it was read (not where pointers led). */
  end: number;
  /** Lowercase, dot-separated, no trailing dot (`""` for the root); bytes outside [a-z0-9-_] escaped as `\DDD`. */
  name: string;
}

/** Skip a name (checked exactly as readName checks it) and return the offset past it. */
export function skipName(msg: Buffer, offset: number): number {
  return walkName(msg, offset, undefined);
}

export function readName(msg: Buffer, offset: number): ReadName {
  const parts: string[] = [];
  const end = walkName(msg, offset, parts);
  return { end, name: parts.join('.') };
}

/**
 * Walk a possibly compressed name at `offset`, pushing its labels (presentation form) to `out`
 * when given. Every bound of the module header is checked here, once for both callers.
 */
function walkName(msg: Buffer, offset: number, out: string[] | undefined): number {
  let pos = offset;
  let end = -1;
  let wire = 1; // the root label's zero byte
  let pointers = 0;
  for (;;) {
    if (pos >= msg.length) fail('name runs past the end of the message');
    const len = msg[pos]!;
    if (len === 0) return end < 0 ? pos + 1 : end;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= msg.length) fail('compression pointer cut short');
      const target = ((len & 0x3f) << 8) | msg[pos + 1]!;
      if (target < HEADER_SIZE || target >= pos) fail('compression pointer does not point back into the message');
      if (++pointers > MAX_POINTERS) fail('too many compression pointers');
      if (end < 0) end = pos + 2;
      pos = target;
      continue;
    }
    if (kind !== 0) fail('reserved label type');
    wire += len + 1;
    if (wire > MAX_NAME_WIRE) fail(`name longer than ${MAX_NAME_WIRE} bytes`);
    if (pos + 1 + len > msg.length) fail('label runs past the end of the message');
    if (out) out.push(labelText(msg, pos + 1, len));
    pos += 1 + len;
  }
}

/** A label's presentation form, lowercased: [a-z0-9-_] as is, every other byte `\DDD`. */
function labelText(msg: Buffer, start: number, len: number): string {
  let plain = true;
  for (let i = start; i < start + len; i++) {
    const c = msg[i]!;
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f)) {
      plain = false;
      break;
    }
  }
  if (plain) return msg.toString('latin1', start, start + len);
  let s = '';
  for (let i = start; i < start + len; i++) {
    let c = msg[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
    s += ok ? String.fromCharCode(c) : `\\${c.toString().padStart(3, '0')}`;
  }
  return s;
}

/**
 * A presentation-form name (as readName makes them, or a hostname) in wire form, uncompressed.
 * `\DDD` escapes are understood; a name that does not fit the bounds throws DnsFormatError.
 */
export function encodeName(name: string): Buffer {
  const bytes: number[] = [];
  if (name !== '' && name !== '.') {
    for (const label of name.replace(/\.$/, '').split('.')) {
      const raw: number[] = [];
      for (let i = 0; i < label.length; i++) {
        const esc = label[i] === '\\' ? /^\\(\d{3})/.exec(label.slice(i)) : null;
        if (esc) {
          raw.push(Number(esc[1]) & 0xff);
          i += 3;
        } else {
          const c = label.charCodeAt(i);
          if (c > 0x7f) fail('name is not ASCII');
          raw.push(c);
        }
      }
      if (raw.length === 0 || raw.length > MAX_LABEL) fail(`label of ${raw.length} bytes`);
      bytes.push(raw.length, ...raw);
    }
  }
  bytes.push(0);
  if (bytes.length > MAX_NAME_WIRE) fail(`name longer than ${MAX_NAME_WIRE} bytes`);
  return Buffer.from(bytes);
}
