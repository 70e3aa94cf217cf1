import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { PassThrough } from 'node:stream';
import * as tls from 'node:tls';
import { SniffBudget } from '../../../../agent/proxy/limits/sniff-budget';
import { looksLikeHttp, MAX_SNIFF_BYTES, parseClientHello, sniff } from '../../../../agent/proxy/sniff';
import { nameIn } from '../../../../agent/proxy/egress';

/** The bytes a real Node TLS client sends first (its ClientHello), captured on loopback. */
async function realClientHello(servername: string | undefined): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const captured = new Promise<Buffer>((resolve) =>
      server.once('connection', (s) => {
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => {
          chunks.push(c);
          const all = Buffer.concat(chunks);
          const r = parseClientHello(all);
          if ('complete' in r && r.complete) {
            resolve(all);
            s.destroy();
          }
        });
      }),
    );
    const client = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
    client.on('error', () => undefined);
    const hello = await captured;
    client.destroy();
    return hello;
  } finally {
    server.close();
  }
}

/** Re-frame one handshake into records of at most `size` bytes each (legal TLS, rarely seen). */
function splitRecords(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) {
    const part = body.subarray(i, Math.min(body.length, i + size));
    const hdr = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    hdr.writeUInt16BE(part.length, 3);
    out.push(hdr, part);
  }
  return Buffer.concat(out);
}

/**
 * The start of a ClientHello announcing a `helloLength`-byte body, `bytes` long in all: what a client
 * that sends part of a large hello and stalls sends (records of at most 16 KiB).
 */
export function stalledHello(helloLength: number, bytes: number): Buffer {
  const out = Buffer.alloc(bytes, 0x41);
  let off = 0;
  let left = bytes;
  while (left > 0) {
    const rec = Math.min(16 * 1024, left - 5);
    out.writeUInt8(0x16, off);
    out.writeUInt16BE(0x0301, off + 1);
    out.writeUInt16BE(rec, off + 3);
    if (off === 0) {
      out.writeUInt8(0x01, 5);
      out.writeUIntBE(helloLength, 6, 3);
    }
    off += 5 + rec;
    left -= 5 + rec;
  }
  return out;
}

describe('sniff', () => {
  describe('parseClientHello', () => {
    it('reads the server name of a real TLS ClientHello, lowercased', async () => {
      const hello = await realClientHello('Allowed.Example.TEST');
      assert.deepEqual(parseClientHello(hello), { complete: true, sni: 'allowed.example.test' });
    });

    it('reports no name when the client sent none (an IP literal)', async () => {
      const hello = await realClientHello(undefined);
      assert.deepEqual(parseClientHello(hello), { complete: true, sni: undefined });
    });

    it('asks for more bytes while the hello is incomplete, at every cut', async () => {
      const hello = await realClientHello('allowed.example.test');
      for (const cut of [0, 1, 4, 5, 6, 40, hello.length - 1]) {
        const r = parseClientHello(hello.subarray(0, cut));
        assert.equal('complete' in r && r.complete, false, `cut at ${cut}`);
        assert.ok(!('invalid' in r), `cut at ${cut} must not be called invalid`);
      }
    });

    it('reassembles a hello split over several records', async () => {
      const hello = await realClientHello('allowed.example.test');
      for (const size of [1, 7, 100]) {
        assert.deepEqual(parseClientHello(splitRecords(hello, size)), { complete: true, sni: 'allowed.example.test' }, `records of ${size}`);
      }
    });

    it('refuses a hello past 16 KiB at its first four bytes, without waiting for the rest', () => {
      assert.deepEqual(parseClientHello(stalledHello(64_000, 16 * 1024)), { invalid: 'ClientHello too large' });
      assert.deepEqual(parseClientHello(stalledHello(16 * 1024 - 3, 100)), { invalid: 'ClientHello too large' });
      const biggest = parseClientHello(stalledHello(16 * 1024 - 4, 100));
      assert.ok('complete' in biggest && !biggest.complete, 'a 16 KiB hello is still read');
    });

    const invalid: Array<[string, Buffer]> = [
      ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\n')],
      ['an alert record', Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28])],
      ['a zero-length record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
      ['an oversized record', Buffer.from([0x16, 0x03, 0x01, 0x48, 0x01])],
      ['a ServerHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00])],
    ];
    for (const [name, bytes] of invalid) {
      it(`refuses ${name}`, () => {
        assert.ok('invalid' in parseClientHello(bytes));
      });
    }

    it('refuses a hello with two server_name extensions (two parsers could pick different names)', async () => {
      const hello = await realClientHello('allowed.example.test');
      // Find the SNI extension (type 0) and append a copy of it to the extension block.
      const hs = hello.subarray(5);
      const body = hs.subarray(4);
      let p = 2 + 32;
      p += 1 + body[p]!;
      p += 2 + body.readUInt16BE(p);
      p += 1 + body[p]!;
      const extLenAt = p;
      let q = p + 2;
      let sniExt: Buffer | undefined;
      while (q < body.length) {
        const len = body.readUInt16BE(q + 2);
        if (body.readUInt16BE(q) === 0) sniExt = body.subarray(q, q + 4 + len);
        q += 4 + len;
      }
      assert.ok(sniExt);
      const newBody = Buffer.concat([body, sniExt]);
      newBody.writeUInt16BE(body.readUInt16BE(extLenAt) + sniExt.length, extLenAt);
      const newHs = Buffer.concat([Buffer.from([0x01, 0, 0, 0]), newBody]);
      newHs.writeUIntBE(newBody.length, 1, 3);
      const rec = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0, 0]), newHs]);
      rec.writeUInt16BE(newHs.length, 3);
      assert.deepEqual(parseClientHello(rec), { invalid: 'duplicate server_name extension' });
    });
  });

  describe('looksLikeHttp', () => {
    const table: Array<[string, 'yes' | 'no' | 'more']> = [
      ['GET / HTTP/1.1\r\n', 'yes'],
      ['POST /x HTTP/1.1', 'yes'],
      ['OPTIONS * HTTP/1.1', 'yes'],
      ['PRI * HTTP/2.0', 'yes'],
      ['GE', 'more'],
      ['DELETE', 'more'],
      ['get / HTTP/1.1', 'no'],
      ['FOO / HTTP/1.1', 'no'],
      ['SSH-2.0-OpenSSH', 'no'],
      ['\x16\x03\x01', 'no'],
      ['AB /', 'no'],
      ['ABCDEFGHIJKLMNOP', 'no'],
    ];
    for (const [input, want] of table) {
      it(`${JSON.stringify(input)} → ${want}`, () => assert.equal(looksLikeHttp(Buffer.from(input, 'latin1')), want));
    }
  });

  describe('sniff', () => {
    it('classifies an HTTP request and hands back every byte read', async () => {
      const s = new PassThrough();
      const p = sniff(s, 1000);
      s.write('GE');
      s.write('T /a HTTP/1.1\r\nHost: x\r\n\r\n');
      const r = await p;
      assert.equal(r.kind, 'http');
      assert.equal(r.head.toString(), 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n'.slice(0, r.head.length));
      assert.ok(r.head.length >= 4);
    });

    it('waits for a ClientHello delivered a byte at a time', async () => {
      const hello = await realClientHello('allowed.example.test');
      const s = new PassThrough();
      const p = sniff(s, 2000);
      for (const b of hello) s.write(Buffer.from([b]));
      const r = await p;
      assert.equal(r.kind, 'tls');
      assert.equal(r.kind === 'tls' && r.sni, 'allowed.example.test');
      assert.deepEqual(r.head, hello);
    });

    it('gives up after the timeout when the client sends nothing (server-first protocols)', async () => {
      const s = new PassThrough();
      const started = Date.now();
      const r = await sniff(s, 100);
      assert.equal(r.kind, 'timeout');
      assert.ok(Date.now() - started >= 90);
    });

    it('reports a client that closes without a byte', async () => {
      const s = new PassThrough();
      const p = sniff(s, 1000);
      s.end();
      assert.equal((await p).kind, 'closed');
    });

    it('does not wait for a stalled 63 KB hello: other at once, every byte kept (regression: held until the timeout)', async () => {
      const s = new PassThrough();
      const started = Date.now();
      const p = sniff(s, 5000);
      const bytes = stalledHello(64_000, 63 * 1024);
      s.write(bytes);
      const r = await p;
      assert.equal(r.kind, 'other');
      assert.ok(Date.now() - started < 1000);
      assert.ok(r.head.length <= bytes.length);
    });

    it('reads no more than MAX_SNIFF_BYTES of a hello that never completes', async () => {
      const s = new PassThrough();
      const p = sniff(s, 5000);
      // a 16 KiB hello in records of 100 bytes: its record headers take it past the cap
      const hello = stalledHello(16 * 1024 - 4, 5 + 16 * 1024);
      const body = hello.subarray(5);
      for (let i = 0; i < body.length; i += 100) {
        const part = body.subarray(i, i + 100);
        const hdr = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
        hdr.writeUInt16BE(part.length, 3);
        s.write(Buffer.concat([hdr, part]));
      }
      const r = await p;
      assert.equal(r.kind, 'other');
      assert.ok(r.head.length <= MAX_SNIFF_BYTES + 105, `${r.head.length} bytes read`);
    });

    it('refuses a connection whose bytes do not fit in the sniff budget, and frees what it held', async () => {
      const budget = new SniffBudget(8000);
      const others = ['10.0.1.2', '10.0.1.3', '10.0.1.4', '10.0.1.5'].map((pod) => budget.hold(pod));
      for (const o of others) assert.ok(o.take(2000));
      const s = new PassThrough();
      const p = sniff(s, 1000, budget.hold('10.0.1.1'));
      s.write(stalledHello(4000, 500));
      const r = await p;
      assert.deepEqual([r.kind, r.kind === 'over-budget' && r.reason], ['over-budget', 'node-sniff-budget']);
      assert.equal(budget.usage().held, 8000, 'only the other connections\' bytes are held');
      for (const o of others) o.release();
      assert.equal(budget.usage().held, 0);
    });

    it('releases its bytes once decided', async () => {
      const budget = new SniffBudget(1024 * 1024);
      const s = new PassThrough();
      const p = sniff(s, 1000, budget.hold('10.0.1.1'));
      s.write('GET / HTTP/1.1\r\n');
      assert.equal((await p).kind, 'http');
      assert.deepEqual(budget.usage(), { held: 0, highWater: 16 });
    });

    it('calls other bytes other, keeping them', async () => {
      const s = new PassThrough();
      const p = sniff(s, 1000);
      s.write('SSH-2.0-x\r\n');
      const r = await p;
      assert.equal(r.kind, 'other');
      assert.equal(r.head.toString(), 'SSH-2.0-x\r\n');
    });
  });
});

describe('nameIn (the name an egress connection passed without sniffing asked for, for its flow record)', () => {
  it('reads the SNI of a real ClientHello, lowercased, as tls', async () => {
    assert.deepEqual(nameIn(await realClientHello('API.Example.com')), { host: 'api.example.com', protocol: 'tls' });
  });

  it('reads the Host of an HTTP request without its port, as http', () => {
    assert.deepEqual(nameIn(Buffer.from('GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: Allowed.Example.TEST:8080\r\n\r\n')), { host: 'allowed.example.test', protocol: 'http' });
  });

  it('says nothing for a ClientHello without SNI, raw bytes, a Host that is not a name, or a request without Host', async () => {
    assert.equal(nameIn(await realClientHello(undefined)), undefined);
    assert.equal(nameIn(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')), undefined);
    assert.equal(nameIn(Buffer.from('GET / HTTP/1.1\r\nHost: a b<c>\r\n\r\n')), undefined);
    assert.equal(nameIn(Buffer.from('GET / HTTP/1.0\r\n\r\n')), undefined);
  });
});
