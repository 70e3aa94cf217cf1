import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { splice, type PipeResult } from '../../../../agent/proxy/pipe';

/** client socket <-> splice <-> upstream socket, on loopback; `script` drives the far ends. */
async function spliced(script: (far: { client: net.Socket; server: net.Socket }) => void): Promise<PipeResult> {
  const listen = (onConn: (s: net.Socket) => void): Promise<net.Server> =>
    new Promise((resolve) => {
      const srv = net.createServer(onConn);
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
    const upstream = net.connect((upstreamServer.address() as net.AddressInfo).port, '127.0.0.1', () => {
      splice(accepted, upstream, done);
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

  it('a clean close is neither', async () => {
    const r = await spliced(({ client, server }) => {
      client.resume();
      client.write('bye');
      server.once('data', () => server.end('ok'));
    });
    assert.deepEqual({ ...r, error: r.error }, { bytesSent: 3, bytesReceived: 2, error: undefined, reset: false });
  });
});
