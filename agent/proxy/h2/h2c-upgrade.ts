/**
 * HTTP/2 from an HTTP/1.1 request (`Upgrade: h2c`, RFC 7540 §3.2; deprecated by RFC 9113 but
 * still sent, e.g. by `curl --http2`): the HTTP/1.1 engine answers 101 and hands the connection
 * here; the upgrade request is then stream 1 of the HTTP/2 connection, half-closed by the client.
 * nghttp2 (Node's http2 server) has no way to be given that stream, so the proxy gives it what a
 * prior-knowledge client would have sent: once the client's preface and first SETTINGS frame are
 * in, a HEADERS frame for stream 1 (the request, END_STREAM: an upgrade request has no body) goes
 * in right after them, and every byte after passes unchanged. The client's next stream is 3, so
 * the order of stream ids holds. The HTTP2-Settings header's values are not applied: the client's
 * SETTINGS frame follows at once and carries its settings (the 101 is not taken as their ack).
 *
 * `headersFrames` (HPACK literal fields without indexing, no Huffman) is pure and table-tested.
 */
import type { Duplex } from 'node:stream';
import { joinedStream, type Push } from './joined';
import { H2_PREFACE } from './preface';

const FRAME_HEADER = 9;
const TYPE_SETTINGS = 0x4;
const TYPE_HEADERS = 0x1;
const TYPE_CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
/** SETTINGS_MAX_FRAME_SIZE's initial value: every peer accepts frames this large */
const MAX_FRAME = 16_384;

/** What the 101 says. */
export const SWITCHING_TO_H2C = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n', 'latin1');

/** Hop-by-hop and HTTP/1.1-only headers of the upgrade request, never in an HTTP/2 request. */
const NOT_IN_H2 = new Set(['connection', 'upgrade', 'http2-settings', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'host', 'te']);

/**
 * Whether an HTTP/1.1 request's raw headers ask for h2c as RFC 7540 §3.2 says: an Upgrade that
 * names h2c, Connection naming Upgrade and HTTP2-Settings, and exactly one HTTP2-Settings.
 */
export function asksForH2c(rawHeaders: readonly string[]): boolean {
  let upgrade = false;
  let settings = 0;
  const connection: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!.toLowerCase();
    if (name === 'upgrade') upgrade ||= value.split(',').some((t) => t.trim() === 'h2c');
    else if (name === 'http2-settings') settings++;
    else if (name === 'connection') connection.push(...value.split(',').map((t) => t.trim()));
  }
  return upgrade && settings === 1 && connection.includes('upgrade') && connection.includes('http2-settings');
}

/** The upgrade request as stream 1 sees it. */
export interface UpgradeRequest {
  method: string;
  /** the normalized path and query */
  target: string;
  /** the Host header as sent */
  authority: string;
  /** the forwarded headers: name, value, name, value… */
  headers: readonly string[];
}

function hpackInt(value: number, prefixBits: number, out: number[]): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) return void out.push(value);
  out.push(max);
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function literal(name: string, value: string, out: number[]): void {
  out.push(0x00); // literal header field without indexing, new name
  const n = Buffer.from(name, 'latin1');
  hpackInt(n.length, 7, out);
  for (const b of n) out.push(b);
  const v = Buffer.from(value, 'latin1');
  hpackInt(v.length, 7, out);
  for (const b of v) out.push(b);
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(FRAME_HEADER + payload.length);
  f.writeUIntBE(payload.length, 0, 3);
  f[3] = type;
  f[4] = flags;
  f.writeUInt32BE(stream & 0x7fffffff, 5);
  payload.copy(f, FRAME_HEADER);
  return f;
}

/** The upgrade request as HEADERS (and CONTINUATION) frames of stream 1, END_STREAM set. */
export function headersFrames(req: UpgradeRequest): Buffer {
  const out: number[] = [];
  literal(':method', req.method, out);
  literal(':scheme', 'http', out);
  literal(':path', req.target, out);
  literal(':authority', req.authority, out);
  for (let i = 0; i < req.headers.length; i += 2) {
    const name = req.headers[i]!.toLowerCase();
    if (!NOT_IN_H2.has(name)) literal(name, req.headers[i + 1]!, out);
  }
  const block = Buffer.from(out);
  const frames: Buffer[] = [];
  for (let off = 0; off < block.length || off === 0; off += MAX_FRAME) {
    const piece = block.subarray(off, off + MAX_FRAME);
    const last = off + MAX_FRAME >= block.length;
    const first = off === 0;
    frames.push(frame(first ? TYPE_HEADERS : TYPE_CONTINUATION, (first ? END_STREAM : 0) | (last ? END_HEADERS : 0), 1, piece));
    if (block.length === 0) break;
  }
  return Buffer.concat(frames);
}

/**
 * `conn` (after the 101; `head`: the bytes that came after the upgrade request) as the stream a
 * prior-knowledge client would have sent: stream 1's HEADERS go in after the client's preface and
 * first SETTINGS frame. A client that does not start with them gets its bytes passed as they are
 * (nghttp2 then refuses the connection).
 */
export function withUpgradedStream(conn: Duplex, head: Buffer, req: UpgradeRequest): Duplex {
  let pending: Buffer | undefined;
  let injected = false;
  const injection = headersFrames(req);
  const take = (d: Buffer, push: Push): void => {
    if (injected) return push(d);
    const buf = pending === undefined ? d : Buffer.concat([pending, d]);
    pending = undefined;
    const at = H2_PREFACE.length;
    if (buf.length < at + FRAME_HEADER) return void (pending = buf);
    const settingsLength = buf.readUIntBE(at, 3);
    injected = true;
    if (!buf.subarray(0, at).equals(H2_PREFACE) || buf[at + 3] !== TYPE_SETTINGS) return push(buf);
    const end = at + FRAME_HEADER + settingsLength;
    if (buf.length < end) {
      injected = false;
      return void (pending = buf);
    }
    push(buf.subarray(0, end));
    push(injection);
    push(buf.subarray(end));
  };
  return joinedStream(conn, head, take, (push) => pending !== undefined && push(pending));
}
