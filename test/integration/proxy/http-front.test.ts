/**
 * HttpFront doing its job over real loopback sockets: keep-alive, pipelining, bodies both
 * ways, 100-continue, the headers the upstream sees, records, upstream failures, async
 * authz, one upstream connection per downstream connection, timeouts, WebSocket, and an
 * HTTP/2 CONNECT stream as the downstream.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import pino from 'pino';
import { HttpFront, type HttpFrontOptions, type HttpRecord } from '../../../agent/proxy/http';
import { silentLogger } from '../../../common/log';
import { fixturePath } from '../../harness/fixtures';
import { waitFor } from '../../harness/wait';

type Part = string | Buffer | { delayMs: number };
interface RawResult {
  responses: Array<{ status: number; headers: Record<string, string>; body: string }>;
  raw: string;
  closed: boolean;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { rawExchange, parseResponses } = require(fixturePath('http-raw-client.js')) as {
  rawExchange(o: { port: number; parts: Part[]; expect?: number; quietMs?: number; timeoutMs?: number }): Promise<RawResult>;
  parseResponses(raw: string): RawResult['responses'];
};

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
}

/** An upstream that logs what it receives; a few paths behave specially. */
class Upstream {
  readonly seen: Seen[] = [];
  connections = 0;
  port = 0;
  private readonly server = http.createServer((req, res) => this.serve(req, res));

  async start(): Promise<void> {
    this.server.on('connection', () => (this.connections += 1));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n');
      if (head.length > 0) socket.write(head);
      socket.pipe(socket); // echo
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  connect = (): Promise<Duplex> =>
    new Promise((resolve, reject) => {
      const s = net.connect(this.port, '127.0.0.1');
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      switch (url.pathname) {
        case '/echo':
          res.setHeader('content-type', 'application/json');
          return res.end(JSON.stringify({ sha256: sha256(body), length: body.length, te: req.headers['transfer-encoding'] ?? null }));
        case '/delay':
          return void setTimeout(() => res.end(`ok ${req.url}`), Number(url.searchParams.get('ms')));
        case '/big': {
          const n = Number(url.searchParams.get('n'));
          const block = Buffer.alloc(64 * 1024, 'x');
          let left = n;
          const pump = (): void => {
            while (left > 0) {
              const c = block.subarray(0, Math.min(block.length, left));
              left -= c.length;
              if (!res.write(c)) return void res.once('drain', pump);
            }
            res.end();
          };
          return pump();
        }
        case '/reset':
          res.writeHead(200, { 'content-length': '1000000' });
          res.write(Buffer.alloc(1000, 'r'));
          return void setTimeout(() => req.socket.destroy(), 20);
        default:
          return res.end(`ok ${req.url}`);
      }
    });
  }
}

const denyAdmin = (r: { path: string }): { allowed: boolean } => ({ allowed: !(r.path === '/admin' || r.path.startsWith('/admin/')) });

describe('HttpFront (loopback)', function () {
  const upstream = new Upstream();
  const cleanups: Array<() => Promise<void> | void> = [];

  before(() => upstream.start());
  after(() => upstream.stop());
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A front behind a plain TCP listener. */
  async function serve(opts: Partial<HttpFrontOptions> = {}, onSocket?: (s: net.Socket, front: HttpFront) => void) {
    const records: HttpRecord[] = [];
    const front = new HttpFront({
      authorize: denyAdmin,
      connect: upstream.connect,
      onRecord: (r) => records.push(r),
      log: silentLogger(),
      ...opts,
    });
    const tcp = net.createServer((s) => (onSocket ? onSocket(s, front) : front.handle(s)));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      front.closeAll();
      await new Promise<void>((r) => tcp.close(() => r()));
    });
    return { front, records, port: (tcp.address() as net.AddressInfo).port };
  }

  /** Requests through a keep-alive client that uses one connection. */
  function client(port: number) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    return (path: string, o: { method?: string; body?: Buffer; chunks?: Buffer[]; headers?: http.OutgoingHttpHeaders } = {}) =>
      new Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders; reused: boolean }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path, agent, method: o.method ?? 'GET', headers: o.headers });
        req.on('error', reject);
        req.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers, reused: req.reusedSocket }));
        });
        for (const c of o.chunks ?? []) req.write(c);
        req.end(o.body);
      });
  }

  it('keeps a connection alive across requests, through one upstream connection', async function () {
    const { port, records, front } = await serve();
    const get = client(port);
    const before = upstream.connections;
    const results = [];
    for (const p of ['/a', '/admin', '/b', '/c/../d', '/admin/x', '/e']) results.push(await get(p));
    assert.deepEqual(results.map((r) => r.status), [200, 403, 200, 200, 403, 200]);
    assert.deepEqual(results.map((r) => r.reused), [false, true, true, true, true, true]);
    assert.equal(results[1]!.body.toString(), 'RBAC: access denied');
    assert.equal(results[1]!.headers['content-type'], 'text/plain');
    assert.equal(results[3]!.body.toString(), 'ok /d');
    assert.equal(upstream.connections - before, 1);
    assert.equal(front.active, 1);
    assert.equal(records.length, 6);
  });

  it('serves many connections from one front, each with its own session (authorize, mesh headers, records)', async function () {
    const recordsA: HttpRecord[] = [];
    const recordsB: HttpRecord[] = [];
    let n = 0;
    const { port, front } = await serve({ authorize: undefined, connect: undefined, onRecord: undefined }, (s, f) => {
      n += 1;
      const mine = n === 1;
      f.handle(s, undefined, {
        authorize: mine ? denyAdmin : () => ({ allowed: false, who: 'b' }),
        connect: upstream.connect,
        setHeaders: { 'x-forwarded-client-cert': mine ? 'URI=spiffe://td/ns/a/sa/a' : 'URI=spiffe://td/ns/b/sa/b' },
        onRecord: (r) => (mine ? recordsA : recordsB).push(r),
      });
    });
    const a = client(port);
    const b = client(port);
    const seenBefore = upstream.seen.length;
    assert.equal((await a('/echo')).status, 200);
    assert.equal((await b('/echo')).status, 403);
    assert.equal(front.active, 2);
    assert.equal(upstream.seen.length - seenBefore, 1, 'only the allowed request went upstream');
    assert.equal(upstream.seen.at(-1)!.headers['x-forwarded-client-cert'], 'URI=spiffe://td/ns/a/sa/a');
    assert.equal(recordsA.length, 1);
    assert.equal(recordsB.length, 1);
    assert.equal(recordsB[0]!.decision?.who, 'b');
  });

  it('opens one upstream connection per downstream connection, lazily', async function () {
    const { port } = await serve();
    const before = upstream.connections;
    const denied = await rawExchange({ port, parts: ['GET /admin HTTP/1.1\r\nHost: web\r\n\r\n'], expect: 1 });
    assert.equal(denied.responses[0]!.status, 403);
    assert.equal(upstream.connections - before, 0, 'a denied request opens no upstream connection');
    const a = client(port);
    const b = client(port);
    await Promise.all([a('/1'), b('/1')]);
    await Promise.all([a('/2'), b('/2')]);
    await Promise.all([a('/3'), b('/3')]);
    assert.equal(upstream.connections - before, 2);
  });

  it('answers pipelined requests in order, forwarding them in order', async function () {
    const { port } = await serve();
    const before = upstream.seen.length;
    const paths = ['/delay?ms=150', '/delay?ms=10', '/admin', '/delay?ms=60', '/x'];
    const r = await rawExchange({ port, parts: [paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: web\r\n\r\n`).join('')], expect: 5 });
    assert.deepEqual(r.responses.map((x) => x.status), [200, 200, 403, 200, 200]);
    assert.deepEqual(r.responses.map((x) => x.body), ['ok /delay?ms=150', 'ok /delay?ms=10', 'RBAC: access denied', 'ok /delay?ms=60', 'ok /x']);
    assert.deepEqual(upstream.seen.slice(before).map((s) => s.url), ['/delay?ms=150', '/delay?ms=10', '/delay?ms=60', '/x']);
    assert.equal(r.closed, false);
  });

  it('forwards a Content-Length body intact and counts it', async function () {
    const { port, records } = await serve();
    const body = randomBytes(1 << 20);
    const r = await client(port)('/echo', { method: 'POST', body });
    assert.deepEqual(JSON.parse(r.body.toString()), { sha256: sha256(body), length: body.length, te: null });
    assert.equal(records[0]!.bytesSent, body.length);
    assert.equal(records[0]!.bytesReceived, r.body.length);
    assert.equal(records[0]!.status, 200);
  });

  it('forwards a chunked body intact, re-framed as chunked', async function () {
    const { port, records } = await serve();
    const chunks = [randomBytes(1000), randomBytes(70000), randomBytes(3)];
    const r = await client(port)('/echo', { method: 'PUT', chunks, headers: { 'transfer-encoding': 'chunked' } });
    assert.deepEqual(JSON.parse(r.body.toString()), { sha256: sha256(Buffer.concat(chunks)), length: 71003, te: 'chunked' });
    assert.equal(records[0]!.bytesSent, 71003);
  });

  it('streams a large response and counts it', async function () {
    const { port, records } = await serve();
    const n = 32 * 1024 * 1024 + 17;
    const r = await client(port)(`/big?n=${n}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, n);
    assert.equal(records[0]!.bytesReceived, n);
  });

  it('answers Expect: 100-continue once authz allows, and the body follows', async function () {
    const { port } = await serve();
    const r = await rawExchange({
      port,
      parts: ['POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n', { delayMs: 100 }, 'hello'],
      expect: 2,
    });
    assert.deepEqual(r.responses.map((x) => x.status), [100, 200]);
    assert.equal(JSON.parse(r.responses[1]!.body).length, 5);
    assert.equal(upstream.seen.at(-1)!.headers.expect, undefined, 'Expect is not forwarded; the front answered it');
  });

  it('sets the mesh headers and strips client identity, stripHeaders and hop-by-hop headers', async function () {
    const { port } = await serve({
      setHeaders: { 'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/default/sa/web', 'x-palisade-source': 'web' },
      stripHeaders: ['x-palisade-*', 'x-internal'],
    });
    const r = await rawExchange({
      port,
      parts: [
        'GET /h HTTP/1.1\r\nHost: WEB.default.:8080\r\n' +
          'X-Forwarded-Client-Cert: By=spiffe://evil\r\nx-forwarded-client_cert: By=evil\r\n' +
          'X-Palisade-Source: evil\r\nX_Palisade_Identity: evil\r\nX-Internal: 1\r\n' +
          'Connection: keep-alive, X-Custom\r\nX-Custom: gone\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n' +
          'Authorization: Bearer kept\r\nX-Kept: 1\r\n\r\n',
      ],
      expect: 1,
    });
    assert.equal(r.responses[0]!.status, 200);
    const s = upstream.seen.at(-1)!;
    assert.equal(s.headers.host, 'web.default:8080');
    assert.equal(s.headers['x-forwarded-client-cert'], 'By=spiffe://cluster.local/ns/default/sa/web');
    assert.equal(s.headers['x-palisade-source'], 'web');
    for (const gone of ['x-palisade-identity', 'x_palisade_identity', 'x-forwarded-client_cert', 'x-internal', 'x-custom', 'te', 'proxy-authorization']) {
      assert.equal(s.headers[gone], undefined, gone);
    }
    assert.equal(s.headers['keep-alive'], undefined);
    assert.equal(s.headers.authorization, 'Bearer kept');
    assert.equal(s.headers['x-kept'], '1');
    assert.equal(s.rawHeaders.filter((h) => /^x-forwarded-client.cert$/i.test(h)).length, 1);
  });

  it('hands authz the normalized request and echoes its decision into the record', async function () {
    const asked: unknown[] = [];
    const { port, records } = await serve({
      authorize: (r) => {
        asked.push(r);
        return { allowed: r.path !== '/admin', policy: r.path === '/admin' ? 'deny-admin' : 'allow-rest' };
      },
    });
    const r = await rawExchange({
      port,
      parts: ['GET /x/../%61dmin?q=%2e HTTP/1.1\r\nHost: Web.\r\nX-A: 1\r\nx-a: 2\r\n\r\nPOST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabc'],
      expect: 2,
    });
    assert.deepEqual(r.responses.map((x) => x.status), [403, 200]);
    assert.deepEqual(JSON.parse(JSON.stringify(asked[0])), {
      method: 'GET',
      path: '/admin',
      query: '?q=%2e',
      host: 'web',
      headers: { host: ['web'], 'x-a': ['1', '2'] },
      httpVersion: '1.1',
    });
    assert.equal(records.length, 2);
    assert.deepEqual(
      { ...records[0], durationMs: 0 },
      { method: 'GET', path: '/admin', host: 'web', status: 403, decision: { allowed: false, policy: 'deny-admin' }, bytesSent: 0, bytesReceived: 0, durationMs: 0 },
    );
    assert.deepEqual(
      { ...records[1], durationMs: 0 },
      { method: 'POST', path: '/p', host: 'web', status: 200, decision: { allowed: true, policy: 'allow-rest' }, bytesSent: 3, bytesReceived: 5, durationMs: 0 },
    );
  });

  it('waits for an async authorize and keeps pipelined order', async function () {
    const delays: Record<string, number> = { '/a': 120, '/b': 5, '/admin': 40, '/c': 1 };
    const { port } = await serve({
      authorize: async (r) => {
        await sleep(delays[r.path] ?? 0);
        return denyAdmin(r);
      },
    });
    const before = upstream.seen.length;
    const r = await rawExchange({ port, parts: [['/a', '/b', '/admin', '/c'].map((p) => `GET ${p} HTTP/1.1\r\nHost: web\r\n\r\n`).join('')], expect: 4 });
    assert.deepEqual(r.responses.map((x) => `${x.status} ${x.body}`), ['200 ok /a', '200 ok /b', '403 RBAC: access denied', '200 ok /c']);
    assert.deepEqual(upstream.seen.slice(before).map((s) => s.url), ['/a', '/b', '/c']);
  });

  it('a decision that comes after the client left still finishes its dispatch (a bulkhead place is given back)', async function () {
    let finished = 0;
    const dispatch = { timeoutMs: 0, attemptTimeoutMs: 0, replayBytes: 0, next: () => undefined, settle: () => undefined, finish: () => void finished++ };
    const { port } = await serve({
      authorize: async () => {
        await sleep(150);
        return { allowed: true, dispatch };
      },
    });
    const s = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => s.once('connect', resolve));
    s.end('GET /a HTTP/1.1\r\nHost: web\r\n\r\n');
    s.destroy();
    await waitFor(() => finished === 1, 2000, { what: 'the late dispatch finished' });
    await sleep(100);
    assert.equal(finished, 1, 'once');
  });

  it('denies when authorize throws or rejects', async function () {
    let n = 0;
    const { port, records } = await serve({
      authorize: () => {
        n += 1;
        if (n === 1) throw new Error('policy engine down');
        return Promise.reject(new Error('dns failed'));
      },
    });
    const r = await rawExchange({ port, parts: ['GET /a HTTP/1.1\r\nHost: web\r\n\r\nGET /b HTTP/1.1\r\nHost: web\r\n\r\n'], expect: 2 });
    assert.deepEqual(r.responses.map((x) => x.status), [403, 403]);
    assert.match(records[0]!.error!, /policy engine down/);
  });

  it('answers 503 when connect() fails, and the connection stays usable', async function () {
    const { port, records } = await serve({ connect: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) });
    const r = await rawExchange({ port, parts: ['GET /a HTTP/1.1\r\nHost: web\r\n\r\nGET /b HTTP/1.1\r\nHost: web\r\n\r\n'], expect: 2 });
    assert.deepEqual(r.responses.map((x) => x.status), [503, 503]);
    assert.equal(r.responses[0]!.body, 'Service Unavailable');
    assert.equal(records[0]!.error, 'upstream: ECONNREFUSED');
    assert.equal(r.closed, false);
  });

  it('opens a new upstream connection when the upstream closed the kept-alive one', async function () {
    let connections = 0;
    const brief = http.createServer((req, res) => res.end(`brief ${req.url}`));
    brief.keepAliveTimeout = 50;
    brief.on('connection', () => (connections += 1));
    await new Promise<void>((r) => brief.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => brief.close(() => r())));
    const briefPort = (brief.address() as net.AddressInfo).port;
    const { port } = await serve({
      connect: () =>
        new Promise((resolve, reject) => {
          const s = net.connect(briefPort, '127.0.0.1');
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
    });
    const r = await rawExchange({ port, parts: ['GET /1 HTTP/1.1\r\nHost: web\r\n\r\n', { delayMs: 250 }, 'GET /2 HTTP/1.1\r\nHost: web\r\n\r\n'], expect: 2 });
    assert.deepEqual(r.responses.map((x) => `${x.status} ${x.body}`), ['200 brief /1', '200 brief /2']);
    assert.equal(connections, 2);
  });

  it('closes the downstream connection when the upstream resets mid-response', async function () {
    const { port, records } = await serve();
    const r = await rawExchange({ port, parts: ['GET /reset HTTP/1.1\r\nHost: web\r\n\r\n'], timeoutMs: 3000 });
    assert.ok(r.closed);
    assert.ok(r.raw.startsWith('HTTP/1.1 200 OK'));
    assert.ok(r.raw.length < 1_000_000);
    await sleep(20);
    assert.match(records[0]!.error ?? '', /upstream reset/);
  });

  it('denies with 403 and closes when the request body is still unread', async function () {
    const { port } = await serve();
    const r = await rawExchange({ port, parts: ['POST /admin HTTP/1.1\r\nHost: web\r\nContent-Length: 10000000\r\n\r\n' + 'x'.repeat(100)], timeoutMs: 3000 });
    assert.deepEqual(r.responses.map((x) => x.status), [403]);
    assert.equal(r.responses[0]!.headers.connection, 'close');
    assert.ok(r.closed);
  });

  it('denies with 403 and keeps the connection when the body was fully read', async function () {
    const { port } = await serve();
    const r = await rawExchange({ port, parts: ['POST /admin HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabcGET /ok HTTP/1.1\r\nHost: web\r\n\r\n'], expect: 2 });
    assert.deepEqual(r.responses.map((x) => x.status), [403, 200]);
    assert.equal(r.closed, false);
  });

  it('tunnels a WebSocket upgrade after authz', async function () {
    const { port, records } = await serve();
    const r = await rawExchange({
      port,
      parts: ['GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nping', { delayMs: 50 }, 'pong'],
      quietMs: 200,
    });
    assert.ok(r.raw.startsWith('HTTP/1.1 101 Switching Protocols\r\n'), r.raw);
    assert.ok(r.raw.endsWith('\r\n\r\npingpong'), r.raw);
    const s = upstream.seen.at(-1)!;
    assert.equal(s.url, '/ws');
    assert.equal(s.headers.upgrade, 'websocket');
    await sleep(50);
    assert.equal(records.at(-1)!.status, 101);
    assert.equal(records.at(-1)!.bytesSent, 8);
  });

  it('serves HTTP/1.1 carried in an HTTP/2 CONNECT stream (regression: Node 20 Http2Stream writev garbled the status line)', async function () {
    const { front, records } = await serve();
    const h2 = http2.createServer();
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      front.handle(stream);
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    const session = http2.connect(`http://127.0.0.1:${(h2.address() as net.AddressInfo).port}`);
    cleanups.push(async () => {
      session.destroy();
      await new Promise<void>((r) => h2.close(() => r()));
    });
    const stream = session.request({ ':method': 'CONNECT', ':authority': '10.0.1.11:8080' });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((r) => stream.on('end', () => r()));
    const body = randomBytes(100000);
    stream.write('GET /a/%2e%2e/b HTTP/1.1\r\nHost: web\r\n\r\nGET /admin HTTP/1.1\r\nHost: web\r\n\r\n');
    stream.write(`POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: ${body.length}\r\n\r\n`);
    stream.write(body);
    stream.end('GET /last HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
    await ended;
    const responses = parseResponses(Buffer.concat(chunks).toString('latin1'));
    assert.deepEqual(responses.map((x) => x.status), [200, 403, 200, 200]);
    assert.equal(responses[0]!.body, 'ok /b');
    assert.equal(responses[1]!.body, 'RBAC: access denied');
    assert.equal(JSON.parse(responses[2]!.body).sha256, sha256(body));
    assert.equal(responses[3]!.body, 'ok /last');
    assert.equal(records.length, 4);
  });

  it('forwards through an HTTP/2 CONNECT stream as the upstream connection, kept alive', async function () {
    const tunnel = http2.createServer();
    let streams = 0;
    tunnel.on('stream', (stream) => {
      streams += 1;
      const up = net.connect(upstream.port, '127.0.0.1', () => {
        stream.respond({ ':status': 200 });
        stream.pipe(up).pipe(stream);
      });
      up.on('error', () => stream.destroy());
      stream.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => tunnel.listen(0, '127.0.0.1', r));
    const session = http2.connect(`http://127.0.0.1:${(tunnel.address() as net.AddressInfo).port}`);
    cleanups.push(async () => {
      session.destroy();
      await new Promise<void>((r) => tunnel.close(() => r()));
    });
    const connect = (): Promise<Duplex> =>
      new Promise((resolve, reject) => {
        const s = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${upstream.port}` });
        s.once('response', (h) => (h[':status'] === 200 ? resolve(s) : reject(new Error(`tunnel ${h[':status']}`))));
        s.once('error', reject);
      });
    const { port } = await serve({ connect });
    const get = client(port);
    const body = randomBytes(200000);
    const results = [await get('/a'), await get('/admin'), await get('/echo', { method: 'POST', body }), await get('/b')];
    assert.deepEqual(results.map((r) => r.status), [200, 403, 200, 200]);
    assert.equal(results[0]!.body.toString(), 'ok /a');
    assert.equal(JSON.parse(results[2]!.body.toString()).sha256, sha256(body));
    assert.equal(streams, 1, 'one upstream stream for the downstream connection');
  });

  it('closes a kept-alive connection after idleTimeoutMs', async function () {
    const { port, front } = await serve({ limits: { idleTimeoutMs: 300 } });
    const started = Date.now();
    const r = await rawExchange({ port, parts: ['GET /a HTTP/1.1\r\nHost: web\r\n\r\n'], quietMs: 2000 });
    const took = Date.now() - started;
    assert.deepEqual(r.responses.map((x) => x.status), [200]);
    assert.ok(r.closed);
    assert.ok(took >= 290 && took < 1500, `closed after ${took} ms`);
    await sleep(20);
    assert.equal(front.active, 0);
  });

  it('answers 408 and closes when a body arrives slower than requestTimeoutMs', async function () {
    const { port, records } = await serve({ limits: { requestTimeoutMs: 400, headersTimeoutMs: 400 } });
    const r = await rawExchange({ port, parts: ['POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 10\r\n\r\nab', { delayMs: 700 }, 'cdefghij'], timeoutMs: 3000 });
    assert.deepEqual(r.responses.map((x) => x.status), [408]);
    assert.ok(r.closed);
    assert.equal(records[0]!.rejected, 'request-timeout');
  });

  it('parses the bytes a protocol sniffer already read first', async function () {
    const { port } = await serve({}, (s, front) => {
      s.once('data', (head: Buffer) => {
        s.pause();
        setTimeout(() => front.handle(s, head), 20);
      });
    });
    const r = await rawExchange({ port, parts: ['GET /sn', { delayMs: 80 }, 'iffed HTTP/1.1\r\nHost: web\r\n\r\nGET /admin HTTP/1.1\r\nHost: web\r\n\r\n'], expect: 2 });
    assert.deepEqual(r.responses.map((x) => `${x.status} ${x.body}`), ['200 ok /sniffed', '403 RBAC: access denied']);
  });

  it('answers HTTP/1.0 and closes unless keep-alive was asked for', async function () {
    const { port } = await serve();
    const plain = await rawExchange({ port, parts: ['GET /a HTTP/1.0\r\nHost: web\r\n\r\n'], timeoutMs: 2000 });
    assert.deepEqual(plain.responses.map((x) => `${x.status} ${x.body}`), ['200 ok /a']);
    assert.ok(plain.closed);
    const kept = await rawExchange({ port, parts: ['GET /a HTTP/1.0\r\nHost: web\r\nConnection: keep-alive\r\n\r\n'], expect: 1 });
    assert.equal(kept.responses[0]!.status, 200);
    assert.equal(kept.closed, false);
  });

  it('logs refusals at warn with structured fields, never header values', async function () {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    });
    const { port } = await serve({ log: pino({ level: 'info' }, sink) });
    const secrets = 'Authorization: Bearer s3cret-token\r\nCookie: session=s3cret-cookie\r\n';
    await rawExchange({ port, parts: [`GET /admin;x HTTP/1.1\r\nHost: web\r\n${secrets}\r\n`], timeoutMs: 2000 });
    await rawExchange({ port, parts: [`GET /admin HTTP/1.1\r\nHost: web\r\n${secrets}\r\n`], expect: 1 });
    await rawExchange({ port, parts: [`GET /ok HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\nContent-Length: 1\r\n${secrets}\r\n`], timeoutMs: 2000 });
    const refused = lines.filter((l) => l.event === 'refused');
    assert.deepEqual(refused.map((l) => [l.level, l.reason, l.status]), [
      [40, 'path-parameter', 400],
      [40, 'duplicate-content-length', 400],
    ]);
    assert.equal(refused[0]!.path, '/admin;x');
    assert.equal(refused[0]!.method, 'GET');
    assert.ok(lines.some((l) => l.event === 'denied' && l.path === '/admin'));
    assert.ok(!JSON.stringify(lines).includes('s3cret'), 'a header value reached the log');
  });

  it('counts live connections and closeAll() ends them', async function () {
    const { port, front } = await serve();
    const sockets = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(port, '127.0.0.1', () => resolve(s));
            s.on('error', () => undefined);
          }),
      ),
    );
    await sleep(50);
    assert.equal(front.active, 3);
    const closed = Promise.all(sockets.map((s) => new Promise((r) => s.on('close', r))));
    front.closeAll();
    await closed;
    assert.equal(front.active, 0);
  });
});
