/**
 * The HBONE pool's CONNECT against a real HTTP/2 mTLS peer on loopback that closes the stream
 * without answering it: the open fails at once with a clear error (it waited for its 10 s timer
 * before — a routed request behind it waited as long; the peer's own `failed` path, inbound.ts,
 * destroys a stream that way), a stream refused unprocessed is tried again on a new session, and a
 * peer that never answers still times out. And a routed request whose tunnel is answered 200 and
 * closed at once (both in one read: the close comes before the front gets the stream) is answered
 * 503 with its record — before, it was written into the closed stream and waited for ever.
 */
import { strict as assert } from 'node:assert';
import * as http2 from 'node:http2';
import type { HttpRecord } from '../../../agent/proxy/http';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import { silentLogger } from '../../../common/log';
import { HbonePool, type TunnelTarget } from '../../../agent/proxy/hbone-pool';
import type { IdentityCert } from '../../../agent/identity/manager';
import { closeServer, listenLoopback, oneShot, routedFront, stallingRelay } from '../../harness/loopback';
import { workloadIdentity } from '../../harness/tls-identity';
import { tempDir } from '../../harness/agent';
import { waitFor } from '../../harness/wait';

const SRC = 'spiffe://cluster.local/ns/default/sa/client';
const DST = 'spiffe://cluster.local/ns/default/sa/server';
/** the pool's own timeout: an open that waits for it fails the "at once" bounds below */
const TIMEOUT_MS = 5000;

type Behaviour = (stream: http2.ServerHttp2Stream, session: http2.ServerHttp2Session, n: number) => void;

describe('HbonePool: a CONNECT stream closed before its answer', function () {
  this.timeout(20_000);
  let server: http2.Http2SecureServer;
  let port = 0;
  let behaviour: Behaviour = (s) => s.respond({ ':status': 200 });
  let streams = 0;
  let pool: HbonePool;
  let target: TunnelTarget;
  let identities: { get: (id: string) => IdentityCert | undefined };

  before(async function () {
    const ca = CertificateAuthority.loadOrCreate(tempDir('hbone-pool'), 'cluster.local');
    const [cert, srv] = await Promise.all([workloadIdentity(ca, SRC), workloadIdentity(ca, DST)]);
    server = http2.createSecureServer({ key: srv.keyPem, cert: srv.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    server.on('stream', (stream, _headers) => {
      stream.on('error', () => undefined);
      behaviour(stream, stream.session as http2.ServerHttp2Session, ++streams);
    });
    server.on('sessionError', () => undefined);
    port = await listenLoopback(server);
    target = { srcIdentity: SRC, srcIp: '10.0.1.10', nodeAddress: '127.0.0.1', dstIdentity: DST, dst: { ip: '10.0.2.10', port: 80 } };
    identities = { get: (id) => (id === SRC ? cert : undefined) };
    pool = new HbonePool(identities, silentLogger(), port, TIMEOUT_MS);
  });

  beforeEach(function () {
    streams = 0;
  });

  after(async function () {
    pool.close();
    await closeServer(server as unknown as import('node:net').Server);
  });

  /** How the open ended and how long it took. */
  async function open(): Promise<{ ok: boolean; ms: number; message: string }> {
    const t0 = performance.now();
    try {
      const s = await pool.connect(target);
      s.close();
      return { ok: true, ms: performance.now() - t0, message: '' };
    } catch (err) {
      return { ok: false, ms: performance.now() - t0, message: (err as Error).message };
    }
  }

  it('answered 200: the stream is the tunnel (the peer works)', async function () {
    behaviour = (s) => s.respond({ ':status': 200 });
    const r = await open();
    assert.ok(r.ok, r.message);
  });

  for (const [what, close] of [
    ['closed with NO_ERROR', (s: http2.ServerHttp2Stream) => s.close(http2.constants.NGHTTP2_NO_ERROR)],
    ['destroyed (RST_STREAM NO_ERROR)', (s: http2.ServerHttp2Stream) => s.destroy()],
  ] as const) {
    it(`${what} before answering: fails at once, saying so`, async function () {
      behaviour = (s) => close(s);
      const r = await open();
      assert.equal(r.ok, false, 'no tunnel');
      assert.ok(r.ms < 1000, `failed after ${r.ms.toFixed(0)} ms (the pool's timeout is ${TIMEOUT_MS} ms)`);
      assert.match(r.message, /closed before answering/);
      // the session is still good: the next CONNECT on it is answered
      behaviour = (s) => s.respond({ ':status': 200 });
      const again = await open();
      assert.ok(again.ok, again.message);
    });
  }

  it('refused unprocessed (REFUSED_STREAM, as a draining peer answers): tried again on a new session, answered there', async function () {
    behaviour = (s, session, n) => {
      if (n > 1) return s.respond({ ':status': 200 });
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, 0);
      s.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    };
    const before = pool.retried;
    const r = await open();
    assert.ok(r.ok, r.message);
    assert.equal(pool.retried, before + 1, 'tried once more');
    assert.ok(r.ms < 1000, `${r.ms.toFixed(0)} ms`);
  });

  it('a GOAWAY that covers the stream, then its close with NO_ERROR: fails at once', async function () {
    behaviour = (s, session) => {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, s.id!);
      setImmediate(() => s.close(http2.constants.NGHTTP2_NO_ERROR));
    };
    const r = await open();
    assert.equal(r.ok, false, 'no tunnel');
    assert.ok(r.ms < 1000, `failed after ${r.ms.toFixed(0)} ms`);
  });

  it('a peer that never answers: the open times out (and does not wait longer)', async function () {
    behaviour = () => undefined;
    const r = await open();
    assert.equal(r.ok, false);
    assert.match(r.message, /timed out/);
    assert.ok(r.ms >= TIMEOUT_MS - 50 && r.ms < TIMEOUT_MS + 1000, `${r.ms.toFixed(0)} ms`);
  });

  it('a peer that stops answering with a tunnel open (no FIN, no RST): a keepalive PING goes unanswered and the tunnel fails', async function () {
    // Through a relay on loopback that, once the tunnel is answered, stops carrying bytes either
    // way without closing anything — as a node powered off or cut off leaves the connection.
    behaviour = (s) => s.respond({ ':status': 200 });
    const relay = await stallingRelay(port);
    const quick = new HbonePool(identities, silentLogger(), relay.port, TIMEOUT_MS, { intervalMs: 200, timeoutMs: 400 });
    try {
      const stream = await quick.connect(target);
      const t0 = performance.now();
      relay.stall();
      const ended = await new Promise<string>((resolve) => {
        stream.once('error', (err) => resolve(err.message));
        stream.once('close', () => resolve(`closed (code ${stream.rstCode})`));
      });
      const ms = performance.now() - t0;
      assert.equal(quick.keepaliveFailures, 1, `the tunnel ended by itself: ${ended}`);
      assert.ok(ms < 3000, `ended after ${ms.toFixed(0)} ms (PING every 200 ms, answer within 400 ms)`);
      assert.equal(quick.size, 0, 'the session is gone from the pool');
    } finally {
      quick.close();
      await relay.close();
    }
  });

  it('a quiet tunnel to a peer that answers PINGs stays open', async function () {
    behaviour = (s) => s.respond({ ':status': 200 });
    const quick = new HbonePool(identities, silentLogger(), port, TIMEOUT_MS, { intervalMs: 100, timeoutMs: 400 });
    try {
      const stream = await quick.connect(target);
      let ended = false;
      stream.once('close', () => (ended = true));
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(ended, false, 'still open');
      assert.equal(quick.keepaliveFailures, 0);
      stream.close();
    } finally {
      quick.close();
    }
  });

  describe('a routed request over it', function () {
    let routed: Awaited<ReturnType<typeof routedFront>>;
    let port = 0;
    const records: HttpRecord[] = [];

    before(async function () {
      routed = await routedFront('tunnel', () => pool.connect(target), records);
      port = routed.port;
    });

    after(async function () {
      await routed.close();
    });


    for (const [what, end] of [
      ['closed (NO_ERROR)', (s: http2.ServerHttp2Stream) => s.close(http2.constants.NGHTTP2_NO_ERROR)],
      ['ended (END_STREAM)', (s: http2.ServerHttp2Stream) => s.end()],
    ] as const) {
      it(`tunnel answered 200 and ${what} at once: 503 with its record, not a request waiting for ever`, async function () {
        behaviour = (s) => {
          s.respond({ ':status': 200 });
          end(s);
        };
        records.length = 0;
        const raw = await oneShot(port);
        assert.match(raw, /^HTTP\/1\.1 503 /);
        await waitFor(() => records.length === 1, 1000, { what: 'its record' });
        assert.equal(records[0]!.status, 503);
        assert.match(records[0]!.error ?? '', /upstream/);
      });
    }
  });
});
