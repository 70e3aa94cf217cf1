/**
 * The routed front's shared upstream pool (real loopback sockets): an upstream connection paused
 * because its client could not take the answer as fast as it came (the client socket's buffer
 * was full when the last of the body was written) goes back to the pool reading again — else the
 * next client to get it from the pool sends its request and waits for an answer nobody reads.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpFront } from '../../../agent/proxy/http';
import type { Dispatch } from '../../../agent/proxy/http/types';
import { silentLogger } from '../../../common/log';
import { closeServer, listenLoopback, oneAttempt, oneShot, tcpConnect } from '../../harness/loopback';

const BODY = 'x'.repeat(1024);

describe('HttpFront: an upstream connection shared by clients', function () {
  let upstream: http.Server;
  let upstreamPort = 0;
  let upstreamConns = 0;
  let front: HttpFront;
  let tcp: net.Server;
  let port = 0;

  /** One attempt to the upstream, through the shared pool named 'web' (as a routed request's). */
  const dispatch = (): Dispatch => oneAttempt(() => ({ pool: 'web', connect: (): Promise<Duplex> => tcpConnect(upstreamPort) }));

  before(async function () {
    upstream = http.createServer((_req, res) => {
      res.setHeader('content-length', BODY.length);
      res.end(BODY);
    });
    upstream.on('connection', () => void upstreamConns++);
    upstream.keepAliveTimeout = 60_000;
    upstreamPort = await listenLoopback(upstream);
    front = new HttpFront({ log: silentLogger() });
    // A client socket whose buffer is "full" at once: every body write asks the upstream to wait.
    tcp = net.createServer({ highWaterMark: 1 }, (s) =>
      front.handle(s, undefined, {
        authorize: () => ({ allowed: true, dispatch: dispatch() }),
        connect: () => Promise.reject(new Error('a routed request always has a dispatch')),
        onRecord: () => undefined,
      }),
    );
    port = await listenLoopback(tcp);
  });

  after(async function () {
    front.closeAll();
    await closeServer(tcp);
    await closeServer(upstream);
  });

  it('a connection paused for a slow client is reused, and answers the next client', async function () {
    for (let i = 0; i < 5; i++) {
      const raw = await oneShot(port, 'GET /bench/1k HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n').catch((err: Error) => assert.fail(`request ${i + 1}: ${err.message}`));
      assert.match(raw, /^HTTP\/1\.1 200 /, `request ${i + 1}`);
      assert.ok(raw.endsWith(BODY), `request ${i + 1}: the whole body`);
    }
    assert.equal(upstreamConns, 1, 'one upstream connection served them all (it was pooled and reused)');
  });
});
