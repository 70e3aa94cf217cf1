/**
 * The OTLP sink's worker thread on its own: a batch of agents' frames goes in, the receiver (the
 * OTLP double, decoding with the official definitions) gets the flows; a thread that dies answers
 * its batch as "no answer" (the sink retries it) and the next batch gets a new thread.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as net from 'node:net';
import { postProtobuf } from '../../../../collector/sinks/otlp-sink-worker';
import { SinkWorker } from '../../../../collector/sinks/sink-worker';
import type { FlowRecord } from '../../../../common/flow';
import { realisticFlow } from '../../../bench/flow-ingest';
import { threadCpu } from '../../../bench/loop/thread-cpu';
import { decodeLogs, OtlpReceiver } from '../../../harness/otlp-receiver';

const frame = (flows: FlowRecord[]): Buffer => Buffer.from(JSON.stringify({ type: 'flows', session: 's', seq: 1, lost: 0, flows }));

describe('SinkWorker', function () {
  this.timeout(30_000);

  it('encodes and POSTs the pieces of a batch off the collector\'s thread, the frames\' bytes transferred', async () => {
    const rx = await OtlpReceiver.start();
    const w = new SinkWorker({ url: new URL('/v1/logs', rx.url).href, timeoutMs: 5000, resource: { 'service.name': 'palisade-collector' } });
    try {
      const t = Date.now();
      const a = frame(Array.from({ length: 10 }, (_, i) => realisticFlow(i, 'node-a', t)));
      const b = frame(Array.from({ length: 5 }, (_, i) => realisticFlow(100 + i, 'node-a', t)));
      const r = await w.send([
        { frame: a, skip: 4, count: 6, storedMs: t },
        { frame: b, skip: 0, count: 5, storedMs: t },
        { frame: Buffer.from('not json'), skip: 0, count: 2, storedMs: t },
      ]);
      assert.equal(r.status, 200);
      assert.equal(r.unencoded, 2);
      assert.match(r.encodeError ?? '', /JSON/);
      assert.deepEqual(
        rx.logs.map((l) => Number(l.attributes['palisade.bytes_sent'])),
        [...[4, 5, 6, 7, 8, 9], ...[100, 101, 102, 103, 104]].map((i) => realisticFlow(i, 'node-a', t).bytesSent),
      );
      assert.equal(a.byteLength > 0 && b.byteLength > 0, true, 'the sink\'s own frames are untouched (copied once, the copy transferred)');
    } finally {
      await w.close();
      await rx.down();
    }
  });

  it('copies the next batch into the buffer the thread gave back when it fits (one allocation, not one per batch), each batch read right', async () => {
    const rx = await OtlpReceiver.start();
    const w = new SinkWorker({ url: new URL('/v1/logs', rx.url).href, timeoutMs: 5000, resource: {} });
    try {
      const t = Date.now();
      const batch = (from: number, n: number): Buffer => frame(Array.from({ length: n }, (_, i) => realisticFlow(from + i, 'node-a', t)));
      const sent: number[] = [];
      // a big batch, then smaller ones: their bytes go over the start of the big one's, the rest is left unread
      for (const [from, n] of [[0, 40], [100, 10], [200, 25], [300, 40]] as const) {
        assert.equal((await w.send([{ frame: batch(from, n), skip: 0, count: n, storedMs: t }])).status, 200);
        for (let i = from; i < from + n; i++) sent.push(i);
      }
      assert.equal(w.buffersAllocated, 1);
      assert.deepEqual(
        rx.logs.map((l) => Number(l.attributes['palisade.bytes_sent'])),
        sent.map((i) => realisticFlow(i, 'node-a', t).bytesSent),
      );
      // a batch bigger than the buffer gets a new one
      assert.equal((await w.send([{ frame: batch(400, 200), skip: 0, count: 200, storedMs: t }])).status, 200);
      assert.equal(w.buffersAllocated, 2);
      assert.equal(rx.logs.length, sent.length + 200);
    } finally {
      await w.close();
      await rx.down();
    }
  });

  it('has several batches out at once, each encoded while the others are still being read, each body intact', async () => {
    // a receiver that starts reading each request 300 ms after it came: bodies bigger than the
    // socket's buffers are then still being written when the next batches arrive and are encoded
    const bodies: Buffer[] = [];
    let open = 0;
    let most = 0;
    const slow = http.createServer((req, res) => {
      most = Math.max(most, ++open);
      req.pause();
      setTimeout(() => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          bodies.push(Buffer.concat(chunks));
          open--;
          res.end();
        });
        req.resume();
      }, 300);
    });
    slow.listen(0, '127.0.0.1');
    await new Promise((r) => slow.once('listening', r));
    const w = new SinkWorker({ url: `http://127.0.0.1:${(slow.address() as net.AddressInfo).port}/v1/logs`, timeoutMs: 20_000, resource: {}, maxInFlight: 3 });
    try {
      const t = Date.now();
      const n = 3000; // ~2.8 MB of protobuf a batch
      // each flow's time says which it is: t + its number
      const batch = (from: number): Buffer => frame(Array.from({ length: n }, (_, i) => realisticFlow(from + i, 'node-a', t + from + i)));
      const answers = await Promise.all([0, 100_000, 200_000].map((from) => w.send([{ frame: batch(from), skip: 0, count: n, storedMs: t }])));
      assert.deepEqual(answers.map((r) => r.status), [200, 200, 200]);
      assert.equal(most, 3, 'the three requests were out at once');
      const got = bodies.flatMap((b) => decodeLogs(b).map((l) => Number(BigInt(l.timeUnixNano) / 1_000_000n) - t)).sort((a, b) => a - b);
      const want = [0, 100_000, 200_000].flatMap((from) => Array.from({ length: n }, (_, i) => from + i));
      assert.deepEqual(got, want);
      assert.ok(w.buffersAllocated <= 3);
    } finally {
      await w.close();
      slow.close();
    }
  });

  it('names its thread otlp-sink (top -H, /proc: the sink bench counts its CPU by it), gone once closed', async () => {
    const rx = await OtlpReceiver.start();
    const w = new SinkWorker({ url: new URL('/v1/logs', rx.url).href, timeoutMs: 5000, resource: {} });
    try {
      assert.equal((await w.send([{ frame: frame([realisticFlow(1, 'node-a', Date.now())]), skip: 0, count: 1, storedMs: Date.now() }])).status, 200);
      assert.ok(threadCpu().has('otlp-sink'), `threads: ${[...threadCpu().keys()].join(', ')}`);
    } finally {
      await w.close();
      await rx.down();
    }
    assert.ok(!threadCpu().has('otlp-sink'), `threads after close: ${[...threadCpu().keys()].join(', ')}`);
  });

  it('answers a batch its thread died with as "no answer", and starts a new thread for the next', async () => {
    // a receiver that takes the request and never answers
    const held: net.Socket[] = [];
    const silent = net.createServer((s) => held.push(s)).listen(0, '127.0.0.1');
    await new Promise((r) => silent.once('listening', r));
    const port = (silent.address() as net.AddressInfo).port;
    const w = new SinkWorker({ url: `http://127.0.0.1:${port}/v1/logs`, timeoutMs: 20_000, resource: {} });
    try {
      const pending = w.send([{ frame: frame([realisticFlow(1, 'node-a', Date.now())]), skip: 0, count: 1, storedMs: Date.now() }]);
      while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
      await (w as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      const r = await pending;
      assert.equal(r.status, 0);
      assert.match(r.error ?? '', /thread exited/);
      const rx = await OtlpReceiver.start();
      try {
        const w2 = new SinkWorker({ url: new URL('/v1/logs', rx.url).href, timeoutMs: 5000, resource: {} });
        assert.equal((await w2.send([{ frame: frame([realisticFlow(2, 'node-a', Date.now())]), skip: 0, count: 1, storedMs: Date.now() }])).status, 200);
        await w2.close();
      } finally {
        await rx.down();
      }
      // the first one's next batch goes through a new thread (it answers: the receiver holds it)
      const again = w.send([{ frame: frame([realisticFlow(3, 'node-a', Date.now())]), skip: 0, count: 1, storedMs: Date.now() }]);
      while (held.length < 2) await new Promise((r) => setTimeout(r, 10));
      await w.close();
      assert.equal((await again).status, 0);
    } finally {
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  it('says a body is still held when the receiver answered before reading it all (its bytes are then not written over)', async () => {
    // answers 200 at once and never reads the request
    const held: net.Socket[] = [];
    const early = net.createServer((sock) => {
      held.push(sock);
      sock.pause();
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
    });
    early.listen(0, '127.0.0.1');
    await new Promise((r) => early.once('listening', r));
    const rx = await OtlpReceiver.start();
    try {
      const big = Array.from({ length: 64 }, () => Buffer.alloc(256 * 1024, 1)); // 16 MB: more than the socket buffers hold
      const r = await postProtobuf(new URL(`http://127.0.0.1:${(early.address() as net.AddressInfo).port}/v1/logs`), big, 5000);
      assert.equal(r.status, 200);
      assert.equal(r.bodyHeld, true);
      const ok = await postProtobuf(new URL('/v1/logs', rx.url), [Buffer.alloc(0)], 5000);
      assert.equal(ok.status, 200);
      assert.equal(ok.bodyHeld, undefined);
    } finally {
      for (const sock of held) sock.destroy();
      early.close();
      await rx.down();
    }
  });
});
