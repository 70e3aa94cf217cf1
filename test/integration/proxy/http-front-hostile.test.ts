/**
 * Hostile HTTP/1.x against HttpFront over real loopback sockets. Every request is written
 * as exact bytes by a raw client; the upstream logs every request it receives. The policy
 * denies /admin and /admin/*; no case may get anything that normalizes to /admin to the
 * upstream.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as net from 'node:net';
import { HttpFront, type HttpRecord } from '../../../agent/proxy/http';
import { silentLogger } from '../../../common/log';
import { fixturePath } from '../../harness/fixtures';

type Part = string | { delayMs: number };
interface RawResult {
  responses: Array<{ status: number; headers: Record<string, string>; body: string }>;
  raw: string;
  closed: boolean;
  error?: string;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { rawExchange } = require(fixturePath('http-raw-client.js')) as {
  rawExchange(o: { port: number; parts: Part[]; expect?: number; quietMs?: number; timeoutMs?: number }): Promise<RawResult>;
};

interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
}

const HEADERS_TIMEOUT_MS = 400;

/** Does a path the upstream received reach /admin by any reading a backend might apply? */
function reachesAdmin(url: string): boolean {
  let p = url.split('?')[0]!;
  for (let i = 0; i < 3; i++) {
    try {
      p = decodeURIComponent(p);
    } catch {
      break;
    }
  }
  p = p.replace(/\\/g, '/').replace(/;[^/]*/g, '').replace(/\/+/g, '/');
  const resolved = new URL(p.startsWith('/') ? p : `/${p}`, 'http://x').pathname;
  return resolved === '/admin' || resolved.startsWith('/admin/');
}

/** [name, bytes (and pauses), statuses the client must get in order, URLs the upstream must get (undefined: not checked)] */
type Case = [string, Part[], number[], string[] | undefined];

const H = 'Host: web\r\n';
const get = (target: string, extra = ''): string => `GET ${target} HTTP/1.1\r\n${H}${extra}\r\n`;
const hidden = get('/admin');

const cases: Case[] = [
  // path tricks
  ['double slash', [get('//admin')], [403], []],
  ['dot-dot', [get('/a/../admin')], [403], []],
  ['encoded dot-dot', [get('/%2e%2e/admin')], [403], []],
  ['encoded dot-dot, upper-case hex', [get('/%2E%2E/admin')], [403], []],
  ['mixed encoded dot-dot', [get('/.%2e/admin')], [403], []],
  ['encoded slash', [get('/%2fadmin')], [403], []],
  ['encoded backslash', [get('/%5cadmin')], [403], []],
  ['backslashes', [get('\\\\admin')], [400], []],
  ['backslash after slash', [get('/\\admin')], [403], []],
  ['fragment', [get('/admin#x')], [403], []],
  ['path parameter', [get('/admin;x')], [400], []],
  ['path parameter before dot-dot', [get('/ok/..;/admin')], [400], []],
  ['encoded path parameter', [get('/admin%3bx')], [400], []],
  ['double encoding', [get('/%252e%252e/admin')], [400], []],
  ['encoded NUL', [get('/%00')], [400], []],
  ['encoded NUL after admin', [get('/admin%00.html')], [400], []],
  ['current-directory segment', [get('/./admin')], [403], []],
  ['dot segments both ways', [get('/a/./b/../../admin')], [403], []],
  ['dot-dot above root', [get('/..')], [200], ['/']],
  ['dot-dot above root then admin', [get('/../../admin/x')], [403], []],
  ['encoded unreserved letter', [get('/%61dmin')], [403], []],
  ['trailing encoded slash', [get('/admin%2f')], [403], []],
  ['encoded CRLF', [get('/ok%0d%0aX-A:%20b')], [400], []],
  ['upper-case path is a different resource', [get('/ADMIN')], [200], ['/ADMIN']],
  ['query does not count for the path', [get('/admin?x=/../ok')], [403], []],
  ['raw pipe and braces', [get('/admin|x')], [400], []],
  // methods
  ['lower-case method', ['get /admin HTTP/1.1\r\n' + H + '\r\n'], [400], []],
  ['mixed-case method', ['GeT /admin HTTP/1.1\r\n' + H + '\r\n'], [400], []],
  ['unknown method', ['FOO /admin HTTP/1.1\r\n' + H + '\r\n'], [400], []],
  ['HEAD', ['HEAD /admin HTTP/1.1\r\n' + H + '\r\n'], [403], []],
  ['asterisk-form with GET', ['GET * HTTP/1.1\r\n' + H + '\r\n'], [400], []],
  ['CONNECT', ['CONNECT web:443 HTTP/1.1\r\nHost: web:443\r\n\r\n'], [405], []],
  ['authority-form with GET', ['GET web:80 HTTP/1.1\r\n' + H + '\r\n'], [400], []],
  // smuggling shapes
  ['CL then TE', ['POST /ok HTTP/1.1\r\n' + H + 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + hidden], [400], []],
  ['TE then CL', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n' + hidden], [400], []],
  ['duplicate Content-Length, equal values', ['POST /ok HTTP/1.1\r\n' + H + 'Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc'], [400], []],
  ['duplicate Content-Length, different values', ['POST /ok HTTP/1.1\r\n' + H + 'Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc' + hidden], [400], []],
  ['Content-Length list', ['POST /ok HTTP/1.1\r\n' + H + 'Content-Length: 3, 3\r\n\r\nabc'], [400], []],
  ['Transfer-Encoding gzip, chunked', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n' + hidden], [400], []],
  ['Transfer-Encoding chunked, identity', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'], [400], []],
  ['Transfer-Encoding xchunked', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n' + hidden], [400], []],
  ['two Transfer-Encoding lines', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'], [400], []],
  ['Transfer-Encoding by obs-fold', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n' + hidden], [400], []],
  ['Transfer-Encoding on HTTP/1.0', ['POST /ok HTTP/1.0\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n'], [400], []],
  ['chunked, tab before the value (OWS, valid)', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n' + hidden], [200, 403], ['/ok']],
  ['chunked, invalid size', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n' + hidden], [400], undefined],
  ['chunked, negative size', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n' + hidden], [400], undefined],
  ['chunked, size overflow', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n' + hidden], [400], undefined],
  ['chunked, data longer than its size', ['POST /ok HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n' + hidden], [400], undefined],
  ['request after a body that disagrees', ['POST /ok HTTP/1.1\r\n' + H + 'Content-Length: 3\r\n\r\nabcdef' + hidden], [200, 400], ['/ok']],
  ['request hidden in a Content-Length body', [`POST /ok HTTP/1.1\r\n${H}Content-Length: ${hidden.length}\r\n\r\n${hidden}`], [200], ['/ok']],
  ['request hidden in a chunked body', [`POST /ok HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${hidden.length.toString(16)}\r\n${hidden}\r\n0\r\n\r\n`], [200], ['/ok']],
  ['pipelined after an allowed request', [get('/ok') + hidden], [200, 403], ['/ok']],
  ['Connection naming Content-Length', [`POST /ok HTTP/1.1\r\n${H}Connection: content-length\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`], [200], ['/ok']],
  ['trailer carrying a Content-Length', [`POST /ok HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 80\r\n\r\n${hidden}`], [400], undefined],
  // Host
  ['duplicate Host', ['GET /admin HTTP/1.1\r\nHost: web\r\nHost: other\r\n\r\n'], [400], []],
  ['missing Host', ['GET /ok HTTP/1.1\r\n\r\n'], [400], []],
  ['invalid Host', ['GET /ok HTTP/1.1\r\nHost: web/admin\r\n\r\n'], [400], []],
  ['Host with a trailing dot', ['GET /admin HTTP/1.1\r\nHost: WEB.\r\n\r\n'], [403], []],
  ['absolute-form naming another host', ['GET http://other/admin HTTP/1.1\r\n' + H + '\r\n'], [400], []],
  ['absolute-form with dot-dot', ['GET http://web/x/%2e%2e/admin HTTP/1.1\r\n' + H + '\r\n'], [403], []],
  ['absolute-form with userinfo', ['GET http://web@other/admin HTTP/1.1\r\n' + H + '\r\n'], [400], []],
  // header-name tricks
  ['space before colon', ['POST /ok HTTP/1.1\r\n' + H + 'Content-Length : 3\r\n\r\nabc'], [400], []],
  ['tab before colon', ['POST /ok HTTP/1.1\r\n' + H + 'Content-Length\t: 3\r\n\r\nabc'], [400], []],
  ['space inside a name', [get('/ok', 'X Forwarded: a\r\n')], [400], []],
  ['obs-fold continuation', [get('/ok', 'X-A: a\r\n b\r\n')], [400], []],
  ['leading whitespace before the first header', ['GET /admin HTTP/1.1\r\n Host: web\r\n\r\n'], [400], []],
  ['bare LF line ends', ['GET /admin HTTP/1.1\nHost: web\n\n'], [400], []],
  ['bare CR', ['GET /admin HTTP/1.1\rHost: web\r\n\r\n'], [400], []],
  ['control byte in a value', [get('/ok', 'X-A: a\u0001b\r\n')], [400], []],
  // limits and identity headers
  ['over-long header line', [get('/ok', `X-Long: ${'a'.repeat(20000)}\r\n`)], [431], []],
  ['more than maxHeaders headers', [get('/ok', 'X-A: 1\r\n'.repeat(101))], [431], []],
  ['more than 2000 headers (Node would truncate)', [get('/admin', 'a:1\r\n'.repeat(2100))], [431], []],
  ['multi-value headers', [get('/ok', 'X-A: 1\r\nX-A: 2\r\nCookie: a=1\r\nCookie: b=2\r\n')], [200], ['/ok']],
  ['client-supplied x-forwarded-client-cert', [get('/ok', 'X-Forwarded-Client-Cert: By=spiffe://evil\r\nx-forwarded-client_cert: By=evil\r\n')], [200], ['/ok']],
  ['Connection naming the mesh header', [get('/ok', 'Connection: x-forwarded-client-cert\r\n')], [200], ['/ok']],
  // time
  ['slowloris: headers dribbled past the headers timeout', ['GET /admin HTTP/1.1\r\n', { delayMs: 150 }, 'Host: web\r\n', { delayMs: 150 }, 'X-A: 1\r\n', { delayMs: 250 }, 'X-B: 2\r\n\r\n'], [408], []],
  ['slowloris on a kept-alive connection', [get('/ok'), { delayMs: 100 }, 'GET /admin HTTP/1.1\r\n', { delayMs: 300 }, 'Host: web\r\n', { delayMs: 300 }, '\r\n'], [200, 408], ['/ok']],
  // versions and other protocols
  ['HTTP/0.9', ['GET /admin\r\n\r\n'], [505], []],
  ['HTTP/1.2', ['GET /admin HTTP/1.2\r\n' + H + '\r\n'], [505], []],
  ['HTTP/2.0 request line', ['GET /admin HTTP/2.0\r\n' + H + '\r\n'], [505], []],
  ['HTTP/2 preface', ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'], [505], []],
  ['HTTP/1.0 to admin', ['GET /admin HTTP/1.0\r\n' + H + '\r\n'], [403], []],
  ['h2c upgrade', [get('/admin', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n')], [501], []],
  ['WebSocket upgrade to admin', [get('/admin', 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n')], [403], []],
  ['100-continue to admin gets no 100', ['POST /admin HTTP/1.1\r\n' + H + 'Content-Length: 3\r\nExpect: 100-continue\r\n\r\n'], [403], []],
  ['unknown expectation', [get('/ok', 'Expect: 200-ok\r\n')], [417], []],
];

describe('HttpFront: hostile requests (raw sockets)', function () {
  const seen: Seen[] = [];
  const records: HttpRecord[] = [];
  let upstream: http.Server;
  let tcp: net.Server;
  let front: HttpFront;
  let port: number;
  let bypasses = 0;
  let ran = 0;

  before(async function () {
    upstream = http.createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders });
      req.resume();
      req.on('end', () => res.end(`ok ${req.url}`));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upPort = (upstream.address() as net.AddressInfo).port;
    front = new HttpFront({
      limits: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: 5000, idleTimeoutMs: 5000 },
      authorize: (r) => ({ allowed: !(r.path === '/admin' || r.path.startsWith('/admin/')) }),
      connect: () =>
        new Promise((resolve, reject) => {
          const s = net.connect(upPort, '127.0.0.1');
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
      setHeaders: { 'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/default/sa/web' },
      onRecord: (r) => records.push(r),
      log: silentLogger(),
    });
    tcp = net.createServer((s) => front.handle(s));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    port = (tcp.address() as net.AddressInfo).port;
  });

  after(async function () {
    front.closeAll();
    await new Promise<void>((r) => tcp.close(() => r()));
    await new Promise<void>((r) => upstream.close(() => r()));
    const admin = seen.filter((s) => reachesAdmin(s.url));
    bypasses += admin.length;
    process.stdout.write(`      hostile cases: ${ran}, bypasses: ${bypasses}\n`);
  });

  for (const [name, parts, statuses, upstreamUrls] of cases) {
    it(`${name} → ${statuses.join(', ')}`, async function () {
      ran += 1;
      const before = seen.length;
      const r = await rawExchange({ port, parts, expect: statuses.length, timeoutMs: 5000 });
      const got = seen.slice(before);
      const leaked = got.filter((s) => reachesAdmin(s.url));
      bypasses += leaked.length;
      assert.deepEqual(leaked, [], 'the upstream received a request for /admin');
      assert.deepEqual(
        r.responses.map((x) => x.status),
        statuses,
        `responses: ${JSON.stringify(r.raw.slice(0, 300))}`,
      );
      for (const resp of r.responses) {
        if (resp.status === 403 && !name.startsWith('HEAD')) assert.equal(resp.body, 'RBAC: access denied');
        if (resp.status >= 400) assert.ok(!/palisade|node|llhttp|HPE_/i.test(resp.body), `response body names internals: ${resp.body}`);
      }
      if (upstreamUrls !== undefined) assert.deepEqual(got.map((s) => s.url), upstreamUrls);
      const refused = statuses.some((s) => s !== 200 && s !== 403);
      if (refused) assert.ok(r.closed, 'a refused request closes the connection');
    });
  }

  it('gave the upstream only the mesh x-forwarded-client-cert', function () {
    for (const s of seen) {
      const values = s.rawHeaders.filter((_, i) => i % 2 === 0 && /^x-forwarded-client[-_]cert$/i.test(s.rawHeaders[i]!)).length;
      assert.equal(values, 1, `${s.url}: ${JSON.stringify(s.rawHeaders)}`);
      const i = s.rawHeaders.findIndex((h) => h.toLowerCase() === 'x-forwarded-client-cert');
      assert.equal(s.rawHeaders[i + 1], 'By=spiffe://cluster.local/ns/default/sa/web');
    }
  });

  it('kept multi-value headers, in order', function () {
    const multi = seen.find((s) => s.rawHeaders.includes('X-A') && s.rawHeaders.includes('Cookie'))!;
    assert.deepEqual(multi.rawHeaders.filter((_, i) => i > 0 && /^(X-A|Cookie)$/.test(multi.rawHeaders[i - 1]!) && i % 2 === 1), ['1', '2', 'a=1', 'b=2']);
  });

  it('recorded every refusal with its reason, and ran at least 45 hostile cases', function () {
    assert.ok(ran >= 45, `${ran} cases`);
    const reasons = new Set(records.filter((r) => r.rejected).map((r) => r.rejected));
    for (const reason of [
      'content-length-with-transfer-encoding',
      'duplicate-content-length',
      'invalid-content-length',
      'invalid-transfer-encoding',
      'duplicate-host',
      'path-parameter',
      'double-encoding',
      'nul-byte',
      'too-many-headers',
      'headers-too-large',
      'headers-timeout',
      'unsupported-http-version',
      'http2-preface',
      'connect-method',
      'upgrade-not-supported',
      'absolute-form-host-mismatch',
      'invalid-chunked-body',
    ]) {
      assert.ok(reasons.has(reason), `no record rejected for ${reason}; got ${[...reasons].join(', ')}`);
    }
    assert.equal(bypasses, 0);
  });
});
