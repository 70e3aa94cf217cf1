/**
 * What the lean engine owns now that Node's http.Server and ClientRequest are gone, over real
 * loopback sockets: 100-continue, HEAD/204/304 framing, an upgrade the upstream declines,
 * upstream connections kept in a shared pool and what happens when one was closed under us,
 * a slow upstream, and a malicious upstream trying to smuggle responses. The upstreams here are
 * raw TCP servers that write exact bytes.
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { HttpFront, type HttpFrontOptions, type HttpRecord } from '../../../agent/proxy/http';
import { silentLogger } from '../../../common/log';
import { rawExchange } from '../../harness/raw-http';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const GET = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: web\r\n${extra}\r\n`;

/** One request the raw upstream read: its head, and the connection it came on. */
interface Seen {
  head: string;
  conn: number;
}

/**
 * A TCP upstream that reads request heads (no bodies unless Content-Length) and answers each
 * with what `answer` returns: bytes to write, and whether to close after.
 */
class RawUpstream {
  readonly seen: Seen[] = [];
  connections = 0;
  port = 0;
  readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;

  constructor(answer: (head: string, n: number, socket: net.Socket) => string | Buffer | undefined) {
    this.server = net.createServer((s) => {
      const conn = ++this.connections;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.slice(0, end + 4);
          const cl = /\r\ncontent-length: (\d+)/i.exec(head);
          const bodyLength = cl ? Number(cl[1]) : 0;
          if (buf.length < end + 4 + bodyLength) return;
          buf = buf.slice(end + 4 + bodyLength);
          this.seen.push({ head, conn });
          const out = answer(head, this.seen.length, s);
          if (out !== undefined && !s.destroyed) s.write(out);
        }
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  connect = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const s = net.connect(this.port, '127.0.0.1');
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

describe('HTTP engine (loopback)', function () {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function upstream(answer: ConstructorParameters<typeof RawUpstream>[0]): Promise<RawUpstream> {
    const u = new RawUpstream(answer);
    await u.start();
    cleanups.push(() => u.stop());
    return u;
  }

  async function serve(up: RawUpstream, opts: Partial<HttpFrontOptions> = {}) {
    const records: HttpRecord[] = [];
    const front = new HttpFront({
      authorize: (r) => ({ allowed: !r.path.startsWith('/admin') }),
      connect: up.connect,
      onRecord: (r) => records.push(r),
      log: silentLogger(),
      ...opts,
    });
    const tcp = net.createServer((s) => front.handle(s));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      front.closeAll();
      await new Promise<void>((r) => tcp.close(() => r()));
    });
    return { front, records, port: (tcp.address() as net.AddressInfo).port };
  }

  describe('100-continue', function () {
    it('sends 100 only once authz allows, then forwards the body', async function () {
      const up = await upstream((head) => ok(`got ${/^POST (\S+)/.exec(head)![1]}`));
      const { port } = await serve(up);
      const r = await rawExchange({ port, parts: ['POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n', { delayMs: 80 }, 'abc'], expect: 2 });
      assert.deepEqual(r.responses.map((x) => x.status), [100, 200]);
      assert.equal(r.responses[1]!.body, 'got /x');
      assert.doesNotMatch(up.seen[0]!.head, /expect/i);
    });

    it('answers a denied one with 403 and no 100, and closes: the client may still send the body', async function () {
      const up = await upstream(() => ok('never'));
      const { port } = await serve(up);
      const r = await rawExchange({ port, parts: ['POST /admin HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n', { delayMs: 50 }, 'abc' + GET('/ok')], timeoutMs: 3000 });
      assert.deepEqual(r.responses.map((x) => x.status), [403]);
      assert.equal(r.responses[0]!.headers.connection, 'close');
      assert.ok(r.closed);
      assert.equal(up.seen.length, 0, 'the body was never taken for a request');
    });
  });

  describe('responses without a body', function () {
    it('relays HEAD, 204 and 304 heads with no body, keeping the connection and Content-Length as sent', async function () {
      const up = await upstream((head) => {
        if (head.startsWith('HEAD')) return 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n';
        if (head.startsWith('GET /204')) return 'HTTP/1.1 204 No Content\r\n\r\n';
        if (head.startsWith('GET /304')) return 'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: "x"\r\n\r\n';
        return ok('after');
      });
      const { port, records } = await serve(up);
      // (The raw client would read a body after a Content-Length, so the bytes are checked whole.)
      const r = await rawExchange({ port, parts: [`${GET('/204')}${GET('/304')}HEAD /h HTTP/1.1\r\nHost: web\r\n\r\n${GET('/after')}`], quietMs: 300 });
      const heads = r.raw.split(/(?=HTTP\/1\.1 )/);
      assert.deepEqual(heads.map((h) => h.split('\r\n')[0]), ['HTTP/1.1 204 No Content', 'HTTP/1.1 304 Not Modified', 'HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
      for (const h of heads.slice(0, 3)) assert.ok(h.endsWith('\r\n\r\n'), `no body after ${JSON.stringify(h)}`);
      assert.match(heads[1]!, /\r\ncontent-length: 99\r\n/i);
      assert.match(heads[2]!, /\r\ncontent-length: 1234\r\n/i);
      assert.ok(heads[3]!.endsWith('\r\n\r\nafter'));
      assert.equal(r.closed, false);
      assert.equal(up.connections, 1);
      assert.deepEqual(records.map((x) => x.bytesReceived), [0, 0, 0, 5]);
    });

    it('re-frames a response read to the close as chunks for HTTP/1.1, and keeps the client connection', async function () {
      const up = await upstream((_head, n, s) => {
        s.end(`HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody ${n} to the close`);
        return undefined;
      });
      const { port } = await serve(up);
      const r = await rawExchange({ port, parts: [GET('/a') + GET('/b')], expect: 2 });
      assert.deepEqual(r.responses.map((x) => `${x.status} ${x.headers['transfer-encoding']} ${x.body}`), ['200 chunked body 1 to the close', '200 chunked body 2 to the close']);
      assert.equal(up.connections, 2, 'a response read to the close ends its upstream connection');
      assert.equal(r.closed, false);
    });
  });

  describe('identity headers', function () {
    it('strips every spelling of x-forwarded-client-cert and x-palisade-* from every request, also on a front told to strip nothing', async function () {
      const up = await upstream(() => ok('ok'));
      const { port } = await serve(up); // no stripHeaders, no setHeaders: an egress-like front
      const evil = 'X-Forwarded-Client-Cert: By=evil\r\nx-forwarded-client_cert: By=evil\r\nX-Palisade-Source: evil\r\nx_palisade_identity: evil\r\nX-PALISADE-X: evil\r\n';
      const r = await rawExchange({ port, parts: [GET('/a', evil) + `POST /b HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n${evil}\r\nhi`], expect: 2 });
      assert.deepEqual(r.responses.map((x) => x.status), [200, 200]);
      assert.equal(up.seen.length, 2);
      for (const s of up.seen) assert.doesNotMatch(s.head, /evil|palisade|client.cert/i);
    });
  });

  describe('upgrades', function () {
    it('relays the upstream declining a WebSocket upgrade, then closes', async function () {
      const up = await upstream(() => 'HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope');
      const { port, records } = await serve(up);
      const r = await rawExchange({ port, parts: [GET('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n')], timeoutMs: 3000 });
      assert.deepEqual(r.responses.map((x) => `${x.status} ${x.body}`), ['426 nope']);
      assert.ok(r.closed);
      await sleep(20);
      assert.equal(records[0]!.status, 426);
    });
  });

  describe('upstream connections', function () {
    it('shares kept-alive upstream connections between client connections of one pool', async function () {
      const up = await upstream((head) => ok(head.split(' ')[1]!));
      const { port, front } = await serve(up, { pool: '10.0.2.10:8080' });
      for (const p of ['/1', '/2', '/3']) {
        const r = await rawExchange({ port, parts: [GET(p)], expect: 1 });
        assert.equal(r.responses[0]!.body, p);
      }
      assert.equal(up.connections, 1, 'three client connections, one upstream connection');
      assert.deepEqual([...new Set(up.seen.map((s) => s.conn))], [1]);
      assert.equal(front.idleUpstreams, 1);
    });

    it('keeps a connection no longer than the upstream said (Keep-Alive: timeout=1: not at all)', async function () {
      const up = await upstream((head) => ok(head.split(' ')[1]!, 'Keep-Alive: timeout=1\r\n'));
      const { port } = await serve(up, { pool: 'p' });
      await rawExchange({ port, parts: [GET('/1')], expect: 1 });
      await rawExchange({ port, parts: [GET('/2')], expect: 1 });
      assert.equal(up.connections, 2);
    });

    it('sends a safe request again when its reused connection was closed under it; a POST gets 503', async function () {
      // The upstream closes (without answering) whatever comes second on a connection.
      const up = await upstream((head, _n, s) => {
        const onConn = up.seen.filter((x) => x.conn === up.seen.at(-1)!.conn).length;
        if (onConn === 2) {
          s.destroy();
          return undefined;
        }
        return ok(head.split(' ')[1]!);
      });
      const { port, records } = await serve(up, { pool: 'p' });
      assert.equal((await rawExchange({ port, parts: [GET('/first')], expect: 1 })).responses[0]!.body, '/first');
      const retried = await rawExchange({ port, parts: [GET('/again')], expect: 1 });
      assert.deepEqual(retried.responses.map((x) => `${x.status} ${x.body}`), ['200 /again']);
      assert.equal(up.connections, 2);
      await rawExchange({ port, parts: [GET('/third')], expect: 1 }); // the second connection's first request
      const post = await rawExchange({ port, parts: ['POST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n\r\nhi'], expect: 1 });
      assert.deepEqual(post.responses.map((x) => x.status), [503]);
      assert.equal(records.at(-1)!.error, 'upstream: ECONNRESET');
      assert.equal(post.closed, false, 'the client connection stays usable');
    });

    it('relays a slow upstream as it comes, while another client of the same pool is served', async function () {
      let slow: net.Socket | undefined;
      const up = await upstream((head, _n, s) => {
        if (!head.startsWith('GET /slow')) return ok('fast');
        slow = s;
        return 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n';
      });
      const { port } = await serve(up, { pool: 'p' });
      const slowClient = net.connect(port, '127.0.0.1');
      cleanups.push(() => void slowClient.destroy());
      let got = '';
      slowClient.on('data', (d: Buffer) => (got += d.toString('latin1')));
      slowClient.write(GET('/slow'));
      const deadline = Date.now() + 3000;
      while (!got.includes('first') && Date.now() < deadline) await sleep(10);
      assert.ok(got.includes('first'), 'the first piece arrived before the upstream finished');
      const fast = await rawExchange({ port, parts: [GET('/fast')], expect: 1 });
      assert.equal(fast.responses[0]!.body, 'fast', 'another client is not held behind the slow response');
      slow!.write('4\r\nlast\r\n0\r\n\r\n');
      while (!got.endsWith('0\r\n\r\n') && Date.now() < deadline) await sleep(10);
      assert.match(got, /first[\s\S]*last/);
    });
  });

  describe('a malicious upstream', function () {
    /** Each case: what the upstream answers the first request with, what the client must get. */
    const cases: Array<[string, string, number, string | undefined]> = [
      ['a second response smuggled after the first', ok('one') + ok('SMUGGLED'), 200, 'one'],
      ['a body longer than its Content-Length', ok('two') + 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED', 200, 'two'],
      ['Content-Length and Transfer-Encoding both', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n', 503, undefined],
      ['two Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 8\r\n\r\nSMUGGLED', 503, undefined],
      ['a header value with a bare LF (header injection)', 'HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: evil=1\r\nContent-Length: 1\r\n\r\nx', 503, undefined],
      ['a status line with a bare CR', 'HTTP/1.1 200 OK\rX-A: 1\r\nContent-Length: 1\r\n\r\nx', 503, undefined],
      ['a protocol switch nobody asked for', 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nSMUGGLED', 503, undefined],
      ['a flood of 1xx heads', 'HTTP/1.1 103 Early Hints\r\n\r\n'.repeat(40) + ok('late'), 503, undefined],
      ['a status under 100', 'HTTP/1.1 099 Odd\r\nContent-Length: 1\r\n\r\nx', 502, undefined],
    ];
    for (const [name, answer, status, body] of cases) {
      it(`${name}: the client gets ${status}${body ? ` "${body}"` : ''} and never the smuggled bytes; the connection is not reused`, async function () {
        const up = await upstream((head) => (head.startsWith('GET /first') ? answer : ok('clean')));
        const { port, front } = await serve(up, { pool: 'p' });
        const r = await rawExchange({ port, parts: [GET('/first')], expect: 1, timeoutMs: 3000 });
        assert.deepEqual(r.responses.map((x) => x.status), [status], r.raw);
        if (body !== undefined) assert.equal(r.responses[0]!.body, body);
        assert.doesNotMatch(r.raw, /SMUGGLED|evil/);
        await sleep(30);
        assert.equal(front.idleUpstreams, 0, 'the upstream connection went nowhere but closed');
        const next = await rawExchange({ port, parts: [GET('/next')], expect: 1 });
        assert.deepEqual(next.responses.map((x) => `${x.status} ${x.body}`), ['200 clean'], 'the next client gets its own response');
        assert.equal(up.connections, 2);
      });
    }

    it('closes a pooled connection that speaks while idle, and serves the next client on a new one', async function () {
      const up = await upstream((head, _n, s) => {
        if (head.startsWith('GET /first')) setTimeout(() => s.write(ok('SMUGGLED')), 30);
        return ok('mine');
      });
      const { port, front } = await serve(up, { pool: 'p' });
      await rawExchange({ port, parts: [GET('/first')], expect: 1 });
      await sleep(80);
      assert.equal(front.idleUpstreams, 0);
      const next = await rawExchange({ port, parts: [GET('/next')], expect: 1 });
      assert.equal(next.responses[0]!.body, 'mine');
      assert.doesNotMatch(next.raw, /SMUGGLED/);
      assert.equal(up.connections, 2);
    });
  });
});
