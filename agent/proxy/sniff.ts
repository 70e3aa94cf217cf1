/**
 * Protocol detection on the first bytes of a client-first connection, without terminating
 * anything: a TLS ClientHello (and its SNI), an HTTP/1.x request line, or neither. The bytes read
 * are handed back (`head`) so the caller forwards them unchanged.
 *
 * `parseClientHello` and `looksLikeHttp` are pure and table-tested; `sniff` does the reading.
 */
import type { Duplex } from 'node:stream';
import type { SniffHold, SniffRefusal } from './limits/sniff-budget';

export type Sniffed =
  | { kind: 'tls'; sni: string | undefined; head: Buffer }
  | { kind: 'http'; head: Buffer }
  /** bytes that are neither, or a client that sent nothing in time / closed */
  | { kind: 'other' | 'timeout' | 'closed'; head: Buffer }
  /** the client's bytes did not fit in the sniff budget: the caller refuses the connection */
  | { kind: 'over-budget'; reason: SniffRefusal; head: Buffer };

/**
 * The largest ClientHello we read (the handshake message, header included): one TLS record's worth.
 * Hellos of browsers and TLS libraries are 0.5–2 KiB (post-quantum key shares included), rarely
 * past 6 KiB; a larger one is read no further and treated as bytes without a name ('other').
 */
export const MAX_CLIENT_HELLO = 16 * 1024;

/** The most one connection's sniff reads: a maximal hello in one record and its header. */
export const MAX_SNIFF_BYTES = MAX_CLIENT_HELLO + 5;

/** The longest HTTP method we recognise plus the space after it. */
const METHOD_TOKEN = /^[A-Z]{3,12} /;
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PRI']);

/**
 * 'yes' when the bytes start like an HTTP/1.x request (`METHOD SP`: a method we recognise, or with
 * `anyMethod` any token of 3–12 capitals, as WebDAV's), 'no' when they cannot, 'more' when too few
 * bytes have arrived to tell.
 */
export function looksLikeHttp(head: Buffer, anyMethod = false): 'yes' | 'no' | 'more' {
  const n = Math.min(head.length, 13);
  for (let i = 0; i < n; i++) {
    const c = head[i]!;
    if (c === 0x20) {
      if (i < 3) return 'no';
      const m = METHOD_TOKEN.exec(head.toString('latin1', 0, i + 1));
      return m && (anyMethod || HTTP_METHODS.has(head.toString('latin1', 0, i))) ? 'yes' : 'no';
    }
    if (c < 0x41 || c > 0x5a) return 'no';
  }
  return head.length >= 13 ? 'no' : 'more';
}

export type ClientHello = { complete: true; sni: string | undefined } | { complete: false; need: number } | { invalid: string };

/**
 * Parse a TLS ClientHello far enough to read server_name. Handles a handshake message split
 * across several records. Returns `need` (bytes wanted in total) while incomplete.
 */
export function parseClientHello(buf: Buffer): ClientHello {
  if (buf.length < 1) return { complete: false, need: 5 };
  if (buf[0] !== 0x16) return { invalid: 'not a TLS handshake record' };
  // Reassemble the handshake bytes from consecutive records.
  const hs: Buffer[] = [];
  let hsLen = 0;
  let off = 0;
  let wanted = -1;
  while (true) {
    if (buf.length < off + 5) return { complete: false, need: off + 5 };
    if (buf[off] !== 0x16) return { invalid: 'handshake interrupted by another record type' };
    if (buf[off + 1] !== 0x03) return { invalid: 'not a TLS record version' };
    const recLen = buf.readUInt16BE(off + 3);
    if (recLen === 0 || recLen > 16384) return { invalid: 'bad TLS record length' };
    if (buf.length < off + 5 + recLen) return { complete: false, need: off + 5 + recLen };
    hs.push(buf.subarray(off + 5, off + 5 + recLen));
    hsLen += recLen;
    off += 5 + recLen;
    if (wanted < 0 && hsLen >= 4) {
      const first = hs.length === 1 ? hs[0]! : Buffer.concat(hs);
      if (first[0] !== 0x01) return { invalid: 'first handshake message is not a ClientHello' };
      wanted = 4 + first.readUIntBE(1, 3);
      if (wanted > MAX_CLIENT_HELLO) return { invalid: 'ClientHello too large' };
    }
    if (wanted >= 0 && hsLen >= wanted) break;
    if (off >= MAX_SNIFF_BYTES) return { invalid: 'ClientHello too large' };
  }
  const body = Buffer.concat(hs).subarray(4, wanted);
  return readSni(body);
}

function readSni(b: Buffer): ClientHello {
  const bad = { invalid: 'malformed ClientHello' } as const;
  let p = 2 + 32; // legacy_version + random
  if (b.length < p + 1) return bad;
  p += 1 + b[p]!; // session id
  if (b.length < p + 2) return bad;
  p += 2 + b.readUInt16BE(p); // cipher suites
  if (b.length < p + 1) return bad;
  p += 1 + b[p]!; // compression methods
  if (p === b.length) return { complete: true, sni: undefined }; // no extensions
  if (b.length < p + 2) return bad;
  const extEnd = p + 2 + b.readUInt16BE(p);
  p += 2;
  if (extEnd > b.length) return bad;
  let sni: string | undefined;
  let seenSni = false;
  while (p + 4 <= extEnd) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    p += 4;
    if (p + len > extEnd) return bad;
    if (type === 0) {
      // Two server_name extensions are a protocol violation and a classic way to make two
      // parsers disagree on the name.
      if (seenSni) return { invalid: 'duplicate server_name extension' };
      seenSni = true;
      const r = readServerNameList(b.subarray(p, p + len));
      if (typeof r !== 'string' && r !== undefined) return r;
      sni = r;
    }
    p += len;
  }
  if (p !== extEnd) return bad;
  return { complete: true, sni };
}

function readServerNameList(ext: Buffer): string | undefined | { invalid: string } {
  if (ext.length < 2) return { invalid: 'malformed server_name' };
  const listLen = ext.readUInt16BE(0);
  if (listLen + 2 !== ext.length) return { invalid: 'malformed server_name' };
  let p = 2;
  let name: string | undefined;
  while (p + 3 <= ext.length) {
    const type = ext[p]!;
    const len = ext.readUInt16BE(p + 1);
    p += 3;
    if (p + len > ext.length) return { invalid: 'malformed server_name' };
    if (type === 0) {
      if (name !== undefined) return { invalid: 'several host names in server_name' };
      const raw = ext.subarray(p, p + len);
      // RFC 6066: ASCII, no trailing dot. Anything else is refused rather than guessed at.
      if (len === 0 || len > 253 || !/^[A-Za-z0-9._-]+$/.test(raw.toString('latin1'))) return { invalid: 'bad host name in server_name' };
      name = raw.toString('latin1').toLowerCase().replace(/\.$/, '');
    }
    p += len;
  }
  return name;
}

/**
 * Read from `conn` (paused) until the protocol is known, `timeoutMs` passes or the peer closes.
 * Leaves the stream paused with the bytes read returned in `head`. With a `hold`, every byte read
 * is accounted in the sniff budget first, and released once the sniff is decided.
 */
export function sniff(conn: Duplex, timeoutMs: number, hold?: SniffHold): Promise<Sniffed> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const head = (): Buffer => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    const finish = (s: Sniffed): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.off('data', onData);
      conn.off('end', onEnd);
      conn.off('close', onEnd);
      conn.off('error', onEnd);
      conn.pause();
      hold?.release();
      resolve(s);
    };
    const classify = (final: boolean): void => {
      const h = head();
      if (h[0] === 0x16) {
        const r = parseClientHello(h);
        if ('invalid' in r) return finish({ kind: 'other', head: h });
        if (r.complete) return finish({ kind: 'tls', sni: r.sni, head: h });
        if (final || h.length >= MAX_SNIFF_BYTES) return finish({ kind: 'other', head: h });
        return;
      }
      const http = looksLikeHttp(h);
      if (http === 'yes') return finish({ kind: 'http', head: h });
      if (http === 'no' || final) return finish({ kind: 'other', head: h });
    };
    const onData = (c: Buffer): void => {
      if (hold && !hold.take(c.length)) return finish({ kind: 'over-budget', reason: hold.refused ?? 'node-sniff-budget', head: head() });
      chunks.push(c);
      size += c.length;
      classify(false);
    };
    const onEnd = (): void => {
      if (size === 0) finish({ kind: 'closed', head: Buffer.alloc(0) });
      else classify(true);
    };
    const timer = setTimeout(() => finish({ kind: size === 0 ? 'timeout' : 'other', head: head() }), timeoutMs);
    conn.on('data', onData);
    conn.once('end', onEnd);
    conn.once('close', onEnd);
    conn.once('error', onEnd);
    conn.resume();
  });
}
