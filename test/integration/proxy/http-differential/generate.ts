/**
 * Generated client byte streams for the differential test: each case is one connection's worth
 * of bytes (one to three requests, pipelined, sometimes cut into pieces at random points),
 * drawn from valid, borderline and hostile shapes of every part of a request: method, target,
 * version, header lines, framing and body. A seed makes the same cases every run.
 */
import { Rng } from '../../../harness/random';

export interface Case {
  /** bytes as written, in pieces (each piece one write) */
  pieces: Buffer[];
  /** requests generated (a hostile one may parse as fewer or more) */
  requests: number;
}

/** Each part of a request: what clients send, and (drawn less often) what they should not. */
interface Choices<T> {
  plain: readonly T[];
  odd: readonly T[];
}

const METHODS: Choices<string> = {
  plain: ['GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'],
  odd: ['TRACE', 'QUERY', 'PURGE', 'M-SEARCH', 'CONNECT', 'PRI', 'get', 'GeT', 'FOO', 'DESCRIBE', ''],
};
const SEGMENTS: Choices<string> = {
  plain: ['a', 'b', 'admin', 'ADMIN', 'api', 'v1', 'items', '123', 'x=1', '~u', "it's", '', '.', '..', '%2e', '%61dmin'],
  odd: ['%2E%2e', '%2f', '%5c', '%00', '%0d%0a', '%25', '%252e', ';x', '%3b', 'x;y', 'a|b', '{x}', 'é', '\u00ff', ' ', '\t', '%zz', '%4', 'a b'],
};
const HOSTS: Choices<string> = {
  plain: ['web', 'web', 'WEB', 'web.', 'web:8080', 'web:80', '10.0.2.10', '[fe80::1]:80', 'web_1', 'xn--d1a.test'],
  odd: ['web:0', 'web:65536', '[::1]', 'we b', 'web/admin', 'web@evil', '', 'a'.repeat(254), '-web'],
};
const EXTRA: Choices<string> = {
  plain: [
    'X-A: 1', 'X-A: 2', 'Cookie: a=1', 'Accept: */*', 'User-Agent: gen/1', 'Authorization: Bearer t', 'Content-Type: text/plain',
    'X-Forwarded-Client-Cert: By=spiffe://evil', 'x-forwarded-client_cert: By=evil', 'X-Palisade-Source: evil', 'x_palisade_identity: evil',
    'Connection: keep-alive', 'Connection: close', 'Connection: x-custom', 'Connection: content-length', 'X-Custom: gone', 'Keep-Alive: timeout=5',
    'TE: trailers', 'Trailer: X-T', 'Proxy-Authorization: Basic eA==', 'Proxy-Connection: keep-alive', 'X-Empty:', 'X-Tab:\tv', 'X-Obs: caf\u00e9',
    'Expect: 100-continue', 'expect: foo, 100-continue', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  ],
  odd: [
    'Upgrade: websocket', 'Upgrade: h2c', 'Connection: Upgrade', 'Connection: Upgrade, HTTP2-Settings', 'HTTP2-Settings: AAMAAABkAAQAAP__',
    'Expect: 100-Continue', 'Expect: 200-ok', 'Expect: ', 'X-Ctl: a\u0001b', 'X-Del: a\u007fb', 'X Space: v', 'X-Colon : v', 'X-Tab\t: v', ': novalue', 'X-Fold: a\r\n b',
    'Host: other', 'host: web', 'Content-Length: 0', 'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip',
  ],
};

/** How often an odd choice is drawn. */
const ODD = 0.06;

function pick<T>(rng: Rng, c: Choices<T>): T {
  return rng.pick(rng.chance(ODD) ? c.odd : c.plain);
}

function target(rng: Rng): string {
  const r = rng.int(20);
  if (r === 0) return '*';
  if (r === 1) return `http://${pick(rng, HOSTS)}${path(rng)}`;
  if (r === 2 && rng.chance(0.3)) return `https://web${path(rng)}`;
  if (r === 3 && rng.chance(0.3)) return 'web:443';
  if (r === 4 && rng.chance(0.3)) return `\\${pick(rng, SEGMENTS)}`;
  if (r === 5 && rng.chance(0.3)) return `http://web@other${path(rng)}`;
  return path(rng);
}

function path(rng: Rng): string {
  let p = '';
  const n = 1 + rng.int(4);
  for (let i = 0; i < n; i++) p += (rng.chance(0.05) ? '//' : rng.chance(0.03) ? '\\' : '/') + pick(rng, SEGMENTS);
  if (rng.chance(0.2)) p += '?' + pick(rng, { plain: ['q=1', 'x=/../admin', 'a=%2e&b', ''], odd: ['e=é', 's= '] });
  if (rng.chance(0.05)) p += '#frag';
  return p;
}

function version(rng: Rng): string {
  const r = rng.int(100);
  if (r === 1) return 'HTTP/2.0';
  if (r === 2) return 'HTTP/1.2';
  if (r === 3) return 'http/1.1';
  if (r === 4) return 'HTTP/0.9';
  if (r < 12) return 'HTTP/1.0';
  return 'HTTP/1.1';
}

/** A chunked body: valid chunks, sometimes with extensions, trailers or one broken part. */
function chunked(rng: Rng): string {
  let body = '';
  const n = rng.int(4);
  for (let i = 0; i < n; i++) {
    const data = rng.text('abcxyz0123 \r\n', 1 + rng.int(40));
    const hex = data.length.toString(16);
    const size = rng.chance(0.05) ? rng.pick(['zz', '-3', 'fffffffffffffffff1', ' 3', '3 ', '0x3']) : rng.chance(0.5) ? hex.toUpperCase() : hex;
    body += `${size}${rng.chance(0.05) ? ';ext=1' : ''}\r\n${data}\r\n`;
  }
  body += '0\r\n';
  if (rng.chance(0.08)) body += rng.pick(['X-T: 1\r\n', 'Content-Length: 80\r\n', 'Bad Trailer\r\n']);
  body += rng.chance(0.03) ? '' : '\r\n';
  return body;
}

function request(rng: Rng): string {
  const method = pick(rng, METHODS);
  const sep = rng.chance(0.02) ? rng.pick(['  ', '\t', ' \t']) : ' ';
  let head = `${method}${sep}${target(rng)} ${version(rng)}`;
  if (rng.chance(0.01)) head = rng.pick(['GET /admin', 'PRI * HTTP/2.0\r\n\r\nSM', 'GET / HTTP/1.1 extra', '']);
  const eol = rng.chance(0.01) ? rng.pick(['\n', '\r']) : '\r\n';
  const lines: string[] = [];
  const hostMode = rng.int(30);
  if (hostMode > 1) lines.push(`${rng.pick(['Host', 'Host', 'host', 'HOST'])}: ${pick(rng, HOSTS)}`);
  if (hostMode === 1) lines.push('Host: web', 'Host: other');
  const extras = rng.int(5);
  for (let i = 0; i < extras; i++) lines.push(pick(rng, EXTRA));
  if (rng.chance(0.02)) for (let i = 0; i < 95 + rng.int(10); i++) lines.push(`X-M${i}: ${i}`);
  if (rng.chance(0.01)) lines.push(`X-Long: ${'v'.repeat(16300 + rng.int(200))}`);
  let body = '';
  const framing = rng.int(10);
  if (framing < 3) {
    const data = rng.text('abcdefgh ', rng.int(30));
    const declared = rng.chance(0.9) ? data.length : rng.pick([data.length + 5, Math.max(0, data.length - 3)]);
    const cl = rng.chance(0.95) ? String(declared) : rng.pick(['+3', '3, 3', '-1', '0x10', ' 4', '99999999999999999999', '00003']);
    lines.push(`${rng.pick(['Content-Length', 'content-length'])}: ${cl}`);
    if (rng.chance(0.03)) lines.push(`Content-Length: ${cl}`);
    body = data;
  } else if (framing < 5) {
    lines.push(`Transfer-Encoding: ${rng.chance(0.9) ? 'chunked' : rng.pick(['Chunked', 'gzip, chunked', 'chunked, identity', 'xchunked', ' chunked', 'chunked '])}`);
    if (rng.chance(0.04)) lines.push('Content-Length: 5');
    body = chunked(rng);
  }
  // shuffle a little: Host is not always first
  if (lines.length > 1 && rng.chance(0.3)) lines.push(lines.shift()!);
  return `${head}${eol}${lines.map((l) => l + eol).join('')}${eol}${body}`;
}

export function generate(rng: Rng): Case {
  const n = 1 + (rng.chance(0.25) ? rng.int(3) : 0);
  let text = '';
  for (let i = 0; i < n; i++) text += request(rng);
  const bytes = Buffer.from(text, 'latin1');
  const pieces: Buffer[] = [];
  if (rng.chance(0.3) && bytes.length > 2) {
    let at = 0;
    while (at < bytes.length) {
      const next = Math.min(bytes.length, at + 1 + rng.int(Math.max(1, bytes.length >> 1)));
      pieces.push(bytes.subarray(at, next));
      at = next;
    }
  } else pieces.push(bytes);
  return { pieces, requests: n };
}
