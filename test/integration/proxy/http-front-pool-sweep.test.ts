/**
 * The routed front's shared pools and its sweep (real loopback sockets): a pool whose every
 * connection is out serving a request when the sweep runs is still that pool when they come back.
 * It was dropped from the front's map then (it held no idle connection), the next request made a
 * second pool of the same name, and the first one's connections came back to a pool nobody took
 * from or swept: each stayed open past its idle time, holding its client pod's idle place (a pool
 * whose only connection was still being opened was dropped alike). And a
 * session's pool (the destination side's, named by the pod) is looked up per request, not held by
 * the connection: one held past its drop was such a pool too.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpFront } from '../../../agent/proxy/http';
import type { Dispatch } from '../../../agent/proxy/http/types';
import { silentLogger } from '../../../common/log';
import { closeServer, listenLoopback, oneAttempt, oneShot, tcpConnect } from '../../harness/loopback';
import { waitFor } from '../../harness/wait';

const BODY = 'x'.repeat(1024);
/** how long an idle upstream connection is kept (a DestinationRule's idleTimeout) */
const IDLE_MS = 300;
/** how long the upstream takes to answer: many sweeps (every 20 ms here) run meanwhile */
const ANSWER_MS = 300;
/** how long a new upstream connection takes */
const CONNECT_MS = 100;

describe('HttpFront: shared pools whose connections are all busy when the sweep runs', function () {
  this.timeout(10_000);
  let upstream: http.Server;
  let upstreamPort = 0;
  /** upstream connections open now, and opened in all */
  const open = new Set<net.Socket>();
  let opened = 0;
  let front: HttpFront;
  let tcp: net.Server;
  let port = 0;
  /** connections served with a session naming its pool ('pod', as the destination side's) */
  let podTcp: net.Server;
  let podPort = 0;
  /** idle places held (admitIdle) */
  let places = 0;

  /** each connect takes a while (many sweeps): its pool has no connection meanwhile */
  const slowConnect = (): Promise<Duplex> => new Promise((r) => setTimeout(r, CONNECT_MS)).then(() => tcpConnect(upstreamPort));
  const dispatch = (): Dispatch => oneAttempt(() => ({ pool: 'web', connect: slowConnect, reuse: { maxRequests: 0, idleMs: IDLE_MS } }));

  before(async function () {
    upstream = http.createServer((_req, res) => {
      setTimeout(() => {
        res.setHeader('content-length', BODY.length);
        res.end(BODY);
      }, ANSWER_MS);
    });
    upstream.keepAliveTimeout = 60_000;
    upstream.on('connection', (s: net.Socket) => {
      open.add(s);
      opened++;
      s.once('close', () => open.delete(s));
    });
    upstreamPort = await listenLoopback(upstream);
    front = new HttpFront({
      log: silentLogger(),
      // a 200 ms headers timeout: the front sweeps every 20 ms
      limits: { headersTimeoutMs: 200 },
      admitIdle: () => {
        places++;
        let released = false;
        return () => {
          if (released) throw new Error('a place released twice');
          released = true;
          places--;
        };
      },
    });
    tcp = net.createServer((s) =>
      front.handle(s, undefined, {
        authorize: () => ({ allowed: true, dispatch: dispatch() }),
        connect: () => Promise.reject(new Error('a routed request always has a dispatch')),
        onRecord: () => undefined,
      }),
    );
    port = await listenLoopback(tcp);
    podTcp = net.createServer((s) =>
      front.handle(s, undefined, { authorize: () => ({ allowed: true }), connect: () => tcpConnect(upstreamPort), pool: 'pod', onRecord: () => undefined }),
    );
    podPort = await listenLoopback(podTcp);
  });

  after(async function () {
    front.closeAll();
    await closeServer(tcp);
    await closeServer(podTcp);
    await closeServer(upstream);
  });


  it('connections that were being opened or busy during sweeps are reused, then closed when idle too long, giving back their places', async function () {
    const first = oneShot(port);
    // sweeps run while the first one's connection is its pool's only one, being opened, then busy
    await new Promise((r) => setTimeout(r, CONNECT_MS + ANSWER_MS / 2));
    const second = oneShot(port);
    for (const raw of await Promise.all([first, second])) assert.match(raw, /^HTTP\/1\.1 200 /);
    assert.equal(open.size, 2, 'two upstream connections were opened');
    await waitFor(() => places === 2, 1000, { what: 'both kept idle', intervalMs: 5 });
    assert.equal(front.idleUpstreams, 2, 'both idle in the pool the front sweeps');
    // the next two requests take both (none opens a third connection)
    for (const raw of await Promise.all([oneShot(port), oneShot(port)])) assert.match(raw, /^HTTP\/1\.1 200 /);
    assert.equal(open.size, 2, 'reused: no third upstream connection');
    // idle past their time, both are closed by the sweep and their places given back
    await waitFor(() => open.size === 0, IDLE_MS * 5, { what: 'the idle upstream connections closed' }).catch((err: Error) =>
      assert.fail(`${err.message}: ${open.size} still open, ${places} idle place(s) held`),
    );
    assert.equal(places, 0, 'no idle place held');
    assert.equal(front.idleUpstreams, 0);
  });

  /** A kept-alive client: each request's answer, read whole (content-length). */
  function keptAlive(p: number): { get(): Promise<string>; close(): void } {
    const s = net.connect(p, '127.0.0.1');
    s.setEncoding('latin1');
    let raw = '';
    let waiting: (() => void) | undefined;
    s.on('data', (d: string) => {
      raw += d;
      waiting?.();
    });
    return {
      get: () =>
        new Promise((resolve, reject) => {
          raw = '';
          s.once('error', reject);
          s.once('close', () => reject(new Error(`closed by the front: ${JSON.stringify(raw.slice(0, 40))}`)));
          waiting = () => {
            const head = raw.indexOf('\r\n\r\n');
            if (head < 0 || raw.length < head + 4 + BODY.length) return;
            waiting = undefined;
            resolve(raw);
          };
          s.write('GET / HTTP/1.1\r\nHost: pod\r\n\r\n');
        }),
      close: () => s.destroy(),
    };
  }

  it("a session's pool dropped while its connection lived: its next request takes the pool's idle connection", async function () {
    opened = 0;
    const c1 = keptAlive(podPort);
    let c2: ReturnType<typeof keptAlive> | undefined;
    try {
      assert.match(await c1.get(), /^HTTP\/1\.1 200 /);
      // its upstream connection closes while idle: the pool has none left, and the sweep drops it
      upstream.closeIdleConnections();
      await waitFor(() => open.size === 0, 1000, { what: 'the idle upstream connection closed', intervalMs: 5 });
      await waitFor(() => front.idleUpstreams === 0, 1000, { what: 'the pool empty', intervalMs: 5 });
      await new Promise((r) => setTimeout(r, 100));
      // another client's request makes the pool again, and leaves its connection idle there
      c2 = keptAlive(podPort);
      assert.match(await c2.get(), /^HTTP\/1\.1 200 /);
      await waitFor(() => front.idleUpstreams === 1, 1000, { what: 'one idle connection', intervalMs: 5 });
      // the first client's next request takes it: no third upstream connection
      assert.match(await c1.get(), /^HTTP\/1\.1 200 /);
      assert.equal(opened, 2, 'upstream connections opened: the first, then one shared by both clients');
    } finally {
      c1.close();
      c2?.close();
    }
  });
});
