/**
 * The bytes the engine writes: request heads to the upstream, response heads to the client,
 * chunk framing, and its own short answers. Pure functions of their arguments (and the clock,
 * for Date). Header lines go out as the parser read them (latin1: every byte as it came); the
 * forms follow what Node's ClientRequest and ServerResponse wrote before this engine, so the
 * upstream reads exactly the requests it read then.
 */
import { STATUS_CODES } from 'node:http';
import { relayedResponseHeaders } from './headers';
import { DENIED_BODY } from './refusal';

/**
 * `METHOD target HTTP/1.1`, the forwarded header lines, and `Connection: keep-alive` unless
 * the lines set Connection themselves (an upgrade).
 */
export function requestHead(method: string, target: string, lines: readonly string[]): Buffer {
  let head = method + ' ' + target + ' HTTP/1.1\r\n';
  let connection = false;
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') connection = true;
    head += name + ': ' + lines[i + 1]! + '\r\n';
  }
  if (!connection) head += 'Connection: keep-alive\r\n';
  return Buffer.from(head + '\r\n', 'latin1');
}

let dateSecond = -1;
let dateLine = '';

/** `Date: <IMF-fixdate>\r\n`, formatted once per second. */
export function dateHeaderLine(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = 'Date: ' + new Date(second * 1000).toUTCString() + '\r\n';
  }
  return dateLine;
}

export interface ResponseFraming {
  /** the client's request was HEAD, or the status has no body (1xx, 204, 304) */
  noBody: boolean;
  /** the header lines carry a Content-Length */
  contentLength: boolean;
  /** the client speaks HTTP/1.1 (chunked framing is possible) */
  http11: boolean;
  /** the connection is to stay open after this response, as far as the exchange knows */
  keepAlive: boolean;
}

export interface ResponsePlan {
  /** re-frame the body as chunks */
  chunked: boolean;
  /** the connection closes after this response */
  close: boolean;
}

/**
 * How a relayed response is framed towards the client: its own Content-Length, else chunks
 * (HTTP/1.1), else the body runs to the close (HTTP/1.0).
 */
export function planResponse(f: ResponseFraming): ResponsePlan {
  if (f.noBody || f.contentLength) return { chunked: false, close: !f.keepAlive || (!f.http11 && !f.contentLength) };
  if (f.http11) return { chunked: true, close: !f.keepAlive };
  return { chunked: false, close: true };
}

/**
 * A response head for the client: status line, the relayed lines, Date when they have none,
 * Connection, and chunked framing when planned.
 */
export function responseHead(status: number, message: string, lines: readonly string[], plan: ResponsePlan): string {
  let head = 'HTTP/1.1 ' + status + ' ' + message + '\r\n';
  let date = false;
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!;
    if (name.length === 4 && name.toLowerCase() === 'date') date = true;
    head += name + ': ' + lines[i + 1]! + '\r\n';
  }
  if (!date) head += dateHeaderLine();
  head += plan.close ? 'Connection: close\r\n' : 'Connection: keep-alive\r\n';
  if (plan.chunked) head += 'Transfer-Encoding: chunked\r\n';
  return head + '\r\n';
}

/** What of the client's request decides how a response is written to it. */
export interface ClientSide {
  method: string;
  httpVersion: string;
  /** the connection may stay open after this response, as far as the exchange knows */
  keepAlive: boolean;
}

export type RelayedHead = { head: string; plan: ResponsePlan; noBody: boolean } | { bad: string };

const REASON_TEXT = /^[\t\x20-\x7e\x80-\xff]*$/;

function hasContentLength(lines: readonly string[]): boolean {
  for (let i = 0; i < lines.length; i += 2) if (lines[i]!.length === 14 && lines[i]!.toLowerCase() === 'content-length') return true;
  return false;
}

/**
 * The upstream's response head as the client gets it: hop-by-hop lines out, framing and
 * Connection ours. A status or reason phrase Node's ServerResponse refused is `bad` (the
 * error code it threw).
 */
export function relayedHead(status: number, message: string, rawHeaders: string[], client: ClientSide): RelayedHead {
  if (status < 100 || status > 999) return { bad: 'ERR_HTTP_INVALID_STATUS_CODE' };
  if (!REASON_TEXT.test(message)) return { bad: 'ERR_INVALID_CHAR' };
  const lines = relayedResponseHeaders(rawHeaders, false);
  const noBody = client.method === 'HEAD' || status === 204 || status === 304;
  const plan = planResponse({ noBody, contentLength: hasContentLength(lines), http11: client.httpVersion === '1.1', keepAlive: client.keepAlive });
  return { head: responseHead(status, message, lines, plan), plan, noBody };
}

/** Whether a request's header lines declare a body (Transfer-Encoding, or a Content-Length other than 0). */
export function declaresBody(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true;
    if (name.length === 14 && name.toLowerCase() === 'content-length' && rawHeaders[i + 1] !== '0') return true;
  }
  return false;
}

/** A chunk's size line. */
export function chunkSize(n: number): string {
  return n.toString(16) + '\r\n';
}

export const CRLF = Buffer.from('\r\n', 'latin1');
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
export const CONTINUE_100 = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

const NO_LINES: readonly string[] = [];

/**
 * One of the engine's own answers (a refusal, a denial, 503, a route's redirect): text/plain with
 * a fixed body, which a HEAD request does not get; `lines` (name, value, …: a redirect's
 * location, a route's response headers, checked printable at parse) go first.
 */
export function ownResponse(status: number, body: string, close: boolean, head: boolean, lines: readonly string[] = NO_LINES): Buffer {
  let extra = '';
  for (let i = 0; i < lines.length; i += 2) extra += lines[i] + ': ' + lines[i + 1] + '\r\n';
  const text =
    'HTTP/1.1 ' + status + ' ' + (STATUS_CODES[status] ?? 'Error') + '\r\n' +
    extra +
    'content-type: text/plain\r\ncontent-length: ' + Buffer.byteLength(body) + '\r\n' +
    dateHeaderLine() +
    (close ? 'Connection: close\r\n' : 'Connection: keep-alive\r\n') +
    '\r\n';
  return Buffer.from(head ? text : text + body, 'latin1');
}

/** Istio's denial (with `lines`: a route's response headers, when the 403 is a route's fault abort). */
export function deniedResponse(close: boolean, head: boolean, lines?: readonly string[]): Buffer {
  return ownResponse(403, DENIED_BODY, close, head, lines);
}
