/**
 * The HTTP/2 upstream sessions under a destination's reuse limits (a DestinationRule's
 * connectionPool.http: maxRequestsPerConnection, idleTimeout), against a real HTTP/2 server on
 * loopback: the server counts the connections and the streams on each.
 */
import { strict as assert } from 'node:assert';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { H2Sessions, retire } from '../../../agent/proxy/h2/sessions';
import { waitFor } from '../../harness/wait';

describe('H2Sessions reuse limits (agent/proxy/h2/sessions.ts, real HTTP/2 on loopback)', function () {
  this.timeout(20_000);
  let server: http2.Http2Server;
  let port: number;
  const streamsOn = new Map<number, number>();
  const closedAfterIdle: number[] = [];
  let conns = 0;

  before(async () => {
    server = http2.createServer();
    server.on('connection', (s: net.Socket & { n?: number; last?: number }) => {
      s.n = ++conns;
      s.last = Date.now();
      streamsOn.set(s.n, 0);
      s.once('close', () => closedAfterIdle.push(Date.now() - s.last!));
    });
    server.on('stream', (stream) => {
      const sock = stream.session!.socket as net.Socket & { n?: number; last?: number };
      streamsOn.set(sock.n!, streamsOn.get(sock.n!)! + 1);
      stream.respond({ ':status': 200 });
      stream.end('ok', () => (sock.last = Date.now()));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  after(() => server.close());
  beforeEach(() => {
    streamsOn.clear();
    closedAfterIdle.length = 0;
  });

  const connect = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });

  async function request(sessions: H2Sessions, reuse?: { maxRequests: number; idleMs: number | undefined }): Promise<void> {
    const u = await sessions.get('up', connect, reuse);
    const req = u.session.request({ ':path': '/' });
    if (u.last) retire(u.session, req);
    req.resume();
    await new Promise<void>((resolve, reject) => {
      req.once('close', resolve);
      req.once('error', reject);
    });
  }

  it('maxRequests 2: 5 streams go over 3 connections, 2 + 2 + 1, and a retired session is closed once its stream ended', async () => {
    const sessions = new H2Sessions();
    for (let i = 0; i < 5; i++) await request(sessions, { maxRequests: 2, idleMs: undefined });
    assert.deepEqual([...streamsOn.values()], [2, 2, 1]);
    await waitFor(() => closedAfterIdle.length >= 2, 5_000, { what: 'the two retired connections closed' });
    assert.equal(sessions.size, 1);
    sessions.closeAll();
  });

  it('maxRequests 1 with 4 streams asked for at once, before any session is up: 4 connections, one stream each', async () => {
    const sessions = new H2Sessions();
    await Promise.all(Array.from({ length: 4 }, () => request(sessions, { maxRequests: 1, idleMs: undefined })));
    assert.deepEqual([...streamsOn.values()], [1, 1, 1, 1]);
    sessions.closeAll();
  });

  it('without limits: every stream on one connection', async () => {
    const sessions = new H2Sessions();
    for (let i = 0; i < 5; i++) await request(sessions);
    assert.deepEqual([...streamsOn.values()], [5]);
    sessions.closeAll();
  });

  it('idleMs 300: the session is closed about 300 ms after its last stream (the default is 60 s)', async () => {
    const sessions = new H2Sessions();
    await request(sessions, { maxRequests: 0, idleMs: 300 });
    await waitFor(() => closedAfterIdle.length === 1, 5_000, { what: 'the idle connection closed' });
    assert.ok(closedAfterIdle[0]! >= 250 && closedAfterIdle[0]! < 3_000, `closed after ${closedAfterIdle[0]} ms idle`);
  });
});
