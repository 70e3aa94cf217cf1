import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { once } from 'node:events';
import { silentLogger } from '../../../../common/log';
import { Mirrors, statusOfHead, type MirrorCopy, type MirrorTarget } from '../../../../agent/traffic/mirror';
import type { MirrorSource } from '../../../../agent/proxy/http/types';

const H1: MirrorSource = { proto: 'h1', method: 'POST', target: '/orders?x=1', lines: ['Host', 'web', 'X-A', '1', 'Transfer-Encoding', 'chunked'] };

/** A raw TCP server that keeps what each connection sent and answers (or not) once the request is in. */
async function server(answer: boolean): Promise<{ target: MirrorTarget; got: string[]; close(): void }> {
  const got: string[] = [];
  const srv = net.createServer((s) => {
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      const len = Number(/content-length: (\d+)/i.exec(buf)?.[1] ?? 0);
      if (end < 0 || buf.length < end + 4 + len) return;
      got.push(buf);
      if (answer) s.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthere');
      else s.destroy();
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  return {
    got,
    target: { connect: async () => net.connect(port, '127.0.0.1'), session: () => Promise.reject(new Error('no h2 here')) },
    close: () => srv.close(),
  };
}

describe('RequestMirror copies (agent/traffic/mirror.ts): fire-and-forget, bounded, every one counted', () => {
  it('sends the copy once its body is whole, with the edit, its own framing and Connection: close; an answer counts as answered', async () => {
    const s = await server(true);
    const m = new Mirrors(silentLogger());
    const copies: MirrorCopy[] = [];
    const tap = m.tap(H1, { request: [{ op: 'set', name: 'x-a', value: '2' }], response: [], path: '/v2/orders', host: 'api' }, { ...s.target, done: (c) => copies.push(c) })!;
    tap.data(Buffer.from('hello '));
    tap.data(Buffer.from('world'));
    assert.equal(s.got.length, 0, 'nothing goes before the body is whole');
    tap.end();
    tap.abort(); // after its end: nothing changes
    await waitUntil(() => m.counts.answered === 1);
    const req = s.got[0]!;
    assert.ok(req.startsWith('POST /v2/orders?x=1 HTTP/1.1\r\n'), req);
    assert.match(req, /\r\nHost: api\r\n/);
    assert.match(req, /\r\nX-A: 2\r\n/);
    assert.match(req, /\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world$/);
    assert.doesNotMatch(req, /Transfer-Encoding/i, 'the copy frames its whole body itself');
    await waitUntil(() => copies.length === 1);
    const { durationMs, ...copy } = copies[0]!;
    assert.deepEqual(copy, { outcome: 'answered', method: 'POST', path: '/v2/orders', host: 'api', status: 200, bytesSent: 11, bytesReceived: 5 }, 'the copy as it went, for its flow record');
    assert.ok(durationMs >= 0 && durationMs < 5000);
    s.close();
  });

  it('counts what it drops, by reason: the in-flight limit, a body too large, no endpoint, a request that never ended; and a copy nobody answered as failed', async () => {
    const s = await server(false);
    const m = new Mirrors(silentLogger(), { inFlight: 2, bodyBytes: 10, timeoutMs: 1000 });
    const copies: MirrorCopy[] = [];
    const target = { ...s.target, done: (c: MirrorCopy) => copies.push(c) };
    const a = m.tap(H1, undefined, target)!;
    const b = m.tap(H1, undefined, target)!;
    assert.equal(m.tap(H1, undefined, target), undefined, 'a third at once is over the limit');
    assert.equal(m.tap(H1, undefined, undefined), undefined, 'no endpoint');
    a.data(Buffer.alloc(11));
    a.end();
    b.abort();
    const c = m.tap(H1, undefined, target)!;
    c.end();
    await waitUntil(() => m.counts.failed === 1);
    assert.deepEqual(m.counts, { answered: 0, failed: 1, 'dropped-in-flight-limit': 1, 'dropped-body-too-large': 1, 'dropped-no-endpoint': 1, 'dropped-incomplete': 1 });
    assert.deepEqual(copies.map((x) => [x.outcome, x.method, x.path, x.host, x.status]), [['failed', 'POST', '/orders', 'web', 0]], 'only the copy that went is told (the dropped ones are counted)');
    assert.notEqual(m.tap(H1, undefined, s.target), undefined, 'the places were given back');
    s.close();
  });
});

describe('statusOfHead: the status of an HTTP/1.x answer\'s status line', () => {
  const CASES: [string, number][] = [
    ['HTTP/1.1 200 OK\r\n', 200],
    ['HTTP/1.0 503 Service Unavailable\r\n\r\n', 503],
    ['HTTP/1.1 204\r\n', 204],
    ['HTTP/1.1 20', 0],
    ['HTTP/2 200 OK\r\n', 0],
    ['SSH-2.0-OpenSSH\r\n', 0],
    ['', 0],
  ];
  for (const [head, want] of CASES) it(`${JSON.stringify(head)} → ${want}`, () => assert.equal(statusOfHead(head), want));
});

async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'in time');
}
