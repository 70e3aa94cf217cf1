/**
 * A client's FIN at the HTTP/1.1 front (real loopback sockets, the listener half-open as the
 * agent's): the front answers what it was asked, then closes its side too — no socket is left in
 * CLOSE-WAIT holding a descriptor. Mid-request, after a request whose answer is still coming, and
 * on an idle kept-alive connection.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpFront } from '../../../agent/proxy/http';
import { silentLogger } from '../../../common/log';
import { tcpConnect } from '../../harness/loopback';
import { waitFor } from '../../harness/wait';

/** What the client saw: the bytes, and when the front's FIN came after its own. */
interface Seen {
  raw: string;
  endedAfterMs: number;
}

describe('HttpFront: the client half-closes', function () {
  let upstream: http.Server;
  let upstreamPort = 0;
  let front: HttpFront;
  let tcp: net.Server;
  let port = 0;
  const serverSide = new Set<net.Socket>();

  before(async function () {
    upstream = http.createServer((req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
      setTimeout(() => res.end(`ok ${req.url}`), ms);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamPort = (upstream.address() as net.AddressInfo).port;
    front = new HttpFront({
      authorize: () => ({ allowed: true }),
      connect: (): Promise<Duplex> => tcpConnect(upstreamPort),
      onRecord: () => undefined,
      log: silentLogger(),
    });
    tcp = net.createServer({ allowHalfOpen: true }, (s) => {
      serverSide.add(s);
      s.once('close', () => serverSide.delete(s));
      front.handle(s);
    });
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    port = (tcp.address() as net.AddressInfo).port;
  });

  after(async function () {
    front.closeAll();
    await new Promise<void>((r) => tcp.close(() => r()));
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  /** Send `bytes` (after `first`, a request answered first, when given), half-close, and read until the front's FIN. */
  function exchange(bytes: string, first?: string): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      let raw = '';
      let finAt = 0;
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`the front did not close within 5 s after the client's FIN (saw ${JSON.stringify(raw)})`));
      }, 5000);
      s.setEncoding('latin1');
      s.on('data', (d: string) => {
        raw += d;
        if (first !== undefined && finAt === 0 && raw.includes(`ok ${first}`)) {
          s.write(bytes);
          s.end();
          finAt = performance.now();
        }
      });
      s.on('end', () => {
        clearTimeout(timer);
        s.end();
        resolve({ raw, endedAfterMs: performance.now() - finAt });
      });
      s.on('error', reject);
      s.on('connect', () => {
        if (first !== undefined) return void s.write(`GET ${first} HTTP/1.1\r\nhost: x\r\n\r\n`);
        s.write(bytes);
        s.end();
        finAt = performance.now();
      });
    });
  }

  const noneLeft = (): Promise<unknown> => waitFor(() => (serverSide.size === 0 && front.active === 0) || undefined, 2000, { what: 'the front\'s side of every connection closed' });

  it('after a whole request whose answer is still coming: answers it, then closes', async function () {
    const seen = await exchange('GET /slow?ms=300 HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.match(seen.raw, /^HTTP\/1\.1 200 [^]*ok \/slow\?ms=300$/);
    assert.ok(seen.endedAfterMs >= 250, `the answer came first (${seen.endedAfterMs} ms)`);
    await noneLeft();
  });

  it('mid-request (headers cut short): closes without forwarding anything', async function () {
    const seen = await exchange('GET /cut HTTP/1.1\r\nhost: x\r\nx-partial: ');
    assert.doesNotMatch(seen.raw, /ok \/cut/);
    assert.ok(seen.endedAfterMs < 1000, `closed at once (${seen.endedAfterMs} ms)`);
    await noneLeft();
  });

  it('on an idle kept-alive connection, after an answered request: closes at once', async function () {
    const seen = await exchange('', '/first');
    assert.match(seen.raw, /ok \/first$/);
    assert.ok(seen.endedAfterMs < 1000, `closed at once (${seen.endedAfterMs} ms)`);
    await noneLeft();
  });
});
