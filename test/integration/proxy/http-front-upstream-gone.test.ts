/**
 * An upstream connection that is over before the exchange gets it (real loopback sockets): closed,
 * or its far end done sending, between its connect and the moment the request is handed to it. Its
 * 'close' or 'end' came before anybody listened, so the request written into it was never answered
 * and the client waited for ever (no deadline runs once a request is sent whole). Now the attempt
 * fails at once: 503 with its record (a routed request tries another endpoint first).
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HttpRecord } from '../../../agent/proxy/http';
import { closeServer, listenLoopback, oneShot, routedFront } from '../../harness/loopback';
import { waitFor } from '../../harness/wait';

describe('HttpFront: an upstream connection over before the request is handed to it', function () {
  let upstream: net.Server;
  const held = new Set<net.Socket>();
  let upstreamPort = 0;
  let routed: Awaited<ReturnType<typeof routedFront>>;
  let port = 0;
  const records: HttpRecord[] = [];
  /** how the next connection to the upstream is handed over */
  let connect: () => Promise<Duplex>;

  before(async function () {
    // the upstream closes each connection at once (FIN), and never answers
    upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      held.add(s);
      s.once('close', () => held.delete(s));
      s.on('error', () => undefined);
      s.end();
    });
    upstreamPort = await listenLoopback(upstream);
    routed = await routedFront('web', () => connect(), records);
    port = routed.port;
  });

  after(async function () {
    await routed.close();
    for (const s of held) s.destroy();
    await closeServer(upstream);
  });

  /** A connection to the upstream, handed over once `event` has been emitted on it. */
  const handedAfter = (event: 'close' | 'end', allowHalfOpen: boolean) => (): Promise<Duplex> =>
    new Promise((resolve) => {
      const s = net.connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen });
      s.on('error', () => undefined);
      s.resume();
      s.once(event, () => resolve(s));
    });


  for (const [what, make] of [
    ['closed', handedAfter('close', false)],
    ['ended by its far end (still open our way)', handedAfter('end', true)],
  ] as const) {
    it(`${what}: 503 at once, with its record`, async function () {
      connect = make;
      records.length = 0;
      const raw = await oneShot(port);
      assert.match(raw, /^HTTP\/1\.1 503 /);
      await waitFor(() => records.length === 1, 1000, { what: 'its record' });
      assert.equal(records[0]!.status, 503);
      assert.equal(records[0]!.error, 'upstream: upstream-closed');
    });
  }
});
