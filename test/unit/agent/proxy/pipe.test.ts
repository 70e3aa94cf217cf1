import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { duplexPair } from 'node:stream';
import { splice, type PipeResult, type SpliceTimeouts } from '../../../../agent/proxy/pipe';

/** client socket <-> splice <-> upstream socket, on loopback; `script` drives the far ends. */
async function spliced(script: (far: { client: net.Socket; server: net.Socket }) => void, timeouts?: SpliceTimeouts): Promise<PipeResult> {
  const listen = (onConn: (s: net.Socket) => void): Promise<net.Server> =>
    new Promise((resolve) => {
      // allowHalfOpen as the proxy's listeners and upstream connections have it
      const srv = net.createServer({ allowHalfOpen: true }, onConn);
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    });
  let server!: net.Socket;
  const upstreamServer = await listen((s) => {
    server = s;
    s.on('error', () => undefined);
  });
  let done!: (r: PipeResult) => void;
  const result = new Promise<PipeResult>((r) => (done = r));
  const front = await listen((accepted) => {
    const upstream = net.connect({ port: (upstreamServer.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true }, () => {
      splice(accepted, upstream, done, timeouts);
      setImmediate(() => script({ client, server }));
    });
  });
  const client = net.connect((front.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  const r = await result;
  front.close();
  upstreamServer.close();
  return r;
}

describe('splice', () => {
  it('a reset after bytes went both ways ends the exchange without an error (reset: true)', async () => {
    const r = await spliced(({ client, server }) => {
      client.write('request');
      server.once('data', () => {
        server.write('response');
        client.once('data', () => client.resetAndDestroy());
      });
    });
    assert.deepEqual({ ...r, error: r.error?.message }, { bytesSent: 7, bytesReceived: 8, error: undefined, reset: true });
  });

  it('a reset before the other side answered is an error', async () => {
    const r = await spliced(({ client, server }) => {
      client.write('request');
      server.once('data', () => server.resetAndDestroy());
    });
    assert.equal(r.reset, false);
    assert.equal((r.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET');
    assert.equal(r.bytesReceived, 0);
  });

  describe('idle timeouts (regression: idle L4 connections were never closed)', () => {
    it('closes a connection without a byte either way after the idle timeout, and says so', async () => {
      const started = Date.now();
      const r = await spliced(({ client }) => client.write('hi'), { idleTimeoutMs: 200, halfClosedTimeoutMs: 0 });
      const took = Date.now() - started;
      assert.deepEqual([r.timeout, r.error, r.bytesSent], ['idle', undefined, 2]);
      assert.ok(took >= 180 && took < 2000, `closed after ${took} ms`);
    });

    it('keeps a connection that carries a byte either way more often than the timeout', async () => {
      const started = Date.now();
      const r = await spliced(({ client, server }) => {
        let n = 0;
        const tick = setInterval(() => {
          n++;
          // both directions take turns, so neither side alone keeps it alive
          if (n % 2) client.write('x');
          else server.write('y');
          if (n === 12) {
            clearInterval(tick);
            client.end();
            server.end();
          }
        }, 50);
        client.resume();
      }, { idleTimeoutMs: 150, halfClosedTimeoutMs: 0 });
      assert.equal(r.timeout, undefined);
      assert.ok(Date.now() - started >= 550);
      assert.deepEqual([r.bytesSent, r.bytesReceived], [6, 6]);
    });

    it('closes a half-closed connection after the shorter half-closed timeout', async () => {
      const started = Date.now();
      // the server reads the request and its end, and never answers nor closes
      const r = await spliced(({ client, server }) => {
        server.resume();
        client.end('request');
      }, { idleTimeoutMs: 60_000, halfClosedTimeoutMs: 200 });
      const took = Date.now() - started;
      assert.equal(r.timeout, 'half-closed');
      assert.ok(took >= 180 && took < 2000, `closed after ${took} ms`);
    });
  });

  it('a clean close is neither', async () => {
    const r = await spliced(({ client, server }) => {
      client.resume();
      client.write('bye');
      server.once('data', () => server.end('ok'));
    });
    assert.deepEqual({ ...r, error: r.error }, { bytesSent: 3, bytesReceived: 2, error: undefined, reset: false });
  });

  // Before: the side left was unpiped and stayed paused, so it never saw its peer's end: a stream
  // pair (a routed connection to a pod of this node) never closed, and the splice never told.
  it('once one side has closed, the other is read to its end (what it sends is dropped, not counted) and the splice tells', async () => {
    const [ours, theirs] = duplexPair();
    const [up, pod] = duplexPair();
    const result = new Promise<PipeResult>((resolve) => splice(theirs, up, resolve));
    pod.resume();
    ours.resume();
    ours.write('request');
    await new Promise((r) => setImmediate(r));
    pod.end('response');
    await new Promise((r) => pod.once('finish', r));
    up.destroy();
    await new Promise((r) => up.once('close', r));
    ours.write('late');
    ours.end();
    const r = await Promise.race([result, new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), 2000))]);
    assert.notEqual(r, 'stuck', 'the splice finished');
    assert.deepEqual({ ...(r as PipeResult) }, { bytesSent: 7, bytesReceived: 8, error: undefined, reset: false });
  });
});
