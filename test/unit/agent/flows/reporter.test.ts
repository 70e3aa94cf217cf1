import { strict as assert } from 'node:assert';
import { FlowReporter, type FlowReporterOptions } from '../../../../agent/flows/reporter';
import { encodeFlow } from '../../../../agent/flows/wire';
import type { FlowRecord } from '../../../../common/flow';
import { silentLogger } from '../../../../common/log';
import { FakeCollector, httpFlow, sleep, tcpFlow, until } from './fixtures';

describe('FlowReporter', function () {
  this.timeout(20_000);
  const reporters: FlowReporter[] = [];
  afterEach(() => {
    for (const r of reporters.splice(0)) r.close();
  });

  function reporter(opts: Partial<FlowReporterOptions> = {}): FlowReporter {
    const r = new FlowReporter({ log: silentLogger(), flushIntervalMs: 10, ...opts });
    reporters.push(r);
    return r;
  }

  /** Characters of a record's JSON as the reporter holds it. */
  function wireSize(f: FlowRecord): number {
    const e = encodeFlow(f);
    assert.equal(e.problem, undefined);
    return e.json!.length;
  }

  function invariant(r: FlowReporter): void {
    const s = r.stats();
    assert.equal(s.produced, s.acknowledged + s.lost + s.buffered, `produced = acknowledged + lost + buffered: ${JSON.stringify(s)}`);
  }

  describe('record', function () {
    it('keeps at most bufferSize records, dropping the oldest and counting them as lost', async function () {
      const r = reporter({ bufferSize: 10 });
      for (let i = 0; i < 25; i++) r.record(httpFlow(i));
      assert.deepEqual(
        { produced: r.stats().produced, buffered: r.stats().buffered, lost: r.stats().lost },
        { produced: 25, buffered: 10, lost: 15 },
      );
      const c = new FakeCollector();
      c.autoAck = true;
      r.start(c);
      c.connect();
      await until(() => r.stats().buffered === 0, 2000, 'the buffer to drain');
      assert.deepEqual(c.ids(), [15, 16, 17, 18, 19, 20, 21, 22, 23, 24], 'the newest ten, in order');
      assert.equal(c.frames[0]!.lost, 15, 'the loss travels with the batch');
      invariant(r);
    });

    it('keeps at most bufferBytes of JSON too, dropping the oldest and counting them as lost', async function () {
      const big = (i: number) => httpFlow(i, { http: { method: 'GET', path: `/${'p'.repeat(8000)}`, status: 200 } });
      const size = wireSize(big(0));
      const r = reporter({ bufferSize: 1000, bufferBytes: 10 * size + 100 });
      for (let i = 0; i < 30; i++) r.record(big(i));
      const s = r.stats();
      assert.deepEqual({ produced: s.produced, buffered: s.buffered, lost: s.lost }, { produced: 30, buffered: 10, lost: 20 }, 'ten records fit the bytes, not a thousand');
      assert.ok(s.bufferedBytes <= 10 * size + 100 && s.bufferedBytes > 9 * size, `bytes held: ${s.bufferedBytes}`);
      const c = new FakeCollector();
      c.autoAck = true;
      r.start(c);
      c.connect();
      await until(() => r.stats().buffered === 0, 2000, 'the buffer to drain');
      assert.deepEqual(c.ids(), [20, 21, 22, 23, 24, 25, 26, 27, 28, 29], 'the newest ten, in order');
      assert.equal(r.stats().bufferedBytes, 0, 'acknowledged records no longer count');
      invariant(r);
    });

    it('counts the bytes of batches in flight, and drops them (oldest first) by bytes as well', async function () {
      const rec = (i: number) => tcpFlow(i);
      const size = wireSize(rec(0));
      const r = reporter({ bufferSize: 1000, bufferBytes: 4 * size + 10, batchSize: 2, maxInFlight: 2 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      for (let i = 0; i < 4; i++) r.record(rec(i));
      await until(() => c.frames.length === 2);
      assert.deepEqual({ buffered: r.stats().buffered, inFlight: r.stats().inFlight }, { buffered: 4, inFlight: 2 });
      r.record(rec(4));
      assert.deepEqual({ lost: r.stats().lost, buffered: r.stats().buffered, inFlight: r.stats().inFlight }, { lost: 2, buffered: 3, inFlight: 1 });
      c.autoAck = true;
      c.ack(2);
      await until(() => r.stats().buffered === 0);
      assert.deepEqual(c.ids(), [0, 1, 2, 3, 4], 'batch 1 was sent before it was dropped; the rest arrived');
      assert.equal(r.stats().bufferedBytes, 0);
      invariant(r);
    });

    it('never throws, also for something that is not a flow record (dropped and counted lost)', async function () {
      const r = reporter({ bufferSize: 3 });
      assert.doesNotThrow(() => {
        r.record(undefined as never);
        r.record(null as never);
        r.record({} as never);
      });
      const c = new FakeCollector();
      c.autoAck = true;
      r.start(c);
      c.connect();
      r.record(httpFlow(1));
      await until(() => r.stats().buffered === 0);
      assert.deepEqual(c.ids(), [1]);
      assert.equal(r.stats().lost, 3);
      invariant(r);
    });

    it('drops records the collector would refuse when they are recorded, counted as lost', async function () {
      const r = reporter();
      const c = new FakeCollector();
      c.autoAck = true;
      r.start(c);
      c.connect();
      r.record(httpFlow(1));
      r.record(httpFlow(2, { reason: 'x'.repeat(500) }));
      r.record({ nonsense: true } as never);
      r.record(httpFlow(3, { durationMs: 2.6 }));
      await until(() => r.stats().buffered === 0);
      assert.deepEqual(c.ids(), [1, 3]);
      assert.equal(c.frames.flatMap((f) => f.flows)[1]!.durationMs, 3, 'whole milliseconds on the wire');
      assert.equal(r.stats().lost, 2);
      invariant(r);
    });
  });

  describe('batches', function () {
    it('sends batches of at most batchSize, numbered from 1 in one session, records in order', async function () {
      const r = reporter({ batchSize: 4 });
      const c = new FakeCollector();
      c.autoAck = true;
      for (let i = 0; i < 10; i++) r.record(tcpFlow(i));
      r.start(c);
      c.connect();
      await until(() => r.stats().acknowledged === 10);
      assert.deepEqual(
        c.frames.map((f) => [f.seq, f.flows.length]),
        [
          [1, 4],
          [2, 4],
          [3, 2],
        ],
      );
      assert.ok(c.frames.every((f) => f.session === r.session));
      assert.match(r.session, /^[A-Za-z0-9._-]{1,64}$/);
      assert.deepEqual(c.ids(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    });

    it('cuts at 500 records by default', async function () {
      const r = reporter();
      const c = new FakeCollector();
      c.autoAck = true;
      for (let i = 0; i < 1200; i++) r.record(tcpFlow(i));
      r.start(c);
      c.connect();
      await until(() => r.stats().acknowledged === 1200);
      assert.deepEqual(
        c.frames.map((f) => f.flows.length),
        [500, 500, 200],
      );
    });

    it('gives every session a different id', function () {
      assert.notEqual(reporter().session, reporter().session);
    });

    it('delivers a flow recorded while connected within 200 ms with the default flush interval', async function () {
      const r = new FlowReporter({ log: silentLogger() });
      reporters.push(r);
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      await sleep(30);
      const t0 = Date.now();
      r.record(httpFlow(7));
      await until(() => c.frames.length === 1, 1000);
      assert.ok(Date.now() - t0 <= 250, `took ${Date.now() - t0} ms`);
    });

    it('sends a full batch without waiting for the timer', async function () {
      const r = reporter({ batchSize: 50, flushIntervalMs: 60_000 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      for (let i = 0; i < 50; i++) r.record(tcpFlow(i));
      await until(() => c.frames.length === 1, 500, 'an immediate batch');
      assert.equal(c.frames[0]!.flows.length, 50);
    });
  });

  describe('acknowledgement', function () {
    it('keeps at most maxInFlight batches unacknowledged; an ack drops every batch up to its seq', async function () {
      const r = reporter({ batchSize: 2, maxInFlight: 3 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      for (let i = 0; i < 20; i++) r.record(tcpFlow(i));
      await sleep(50);
      assert.deepEqual(
        c.frames.map((f) => f.seq),
        [1, 2, 3],
      );
      assert.equal(r.stats().inFlight, 3);
      c.ack(2);
      await sleep(50);
      assert.deepEqual(
        c.frames.map((f) => f.seq),
        [1, 2, 3, 4, 5],
      );
      assert.deepEqual(
        { acknowledged: r.stats().acknowledged, inFlight: r.stats().inFlight, buffered: r.stats().buffered },
        { acknowledged: 4, inFlight: 3, buffered: 16 },
      );
      invariant(r);
    });

    it('ignores an acknowledgement for another session', async function () {
      const r = reporter();
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      r.record(tcpFlow(1));
      await until(() => c.frames.length === 1);
      c.ack(1, 'another-session');
      await sleep(30);
      assert.equal(r.stats().acknowledged, 0);
      assert.equal(r.stats().inFlight, 1);
      c.ack(1, r.session);
      assert.equal(r.stats().acknowledged, 1);
    });

    it('sends unacknowledged batches again when no acknowledgement comes for ackTimeoutMs', async function () {
      const r = reporter({ ackTimeoutMs: 100 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      r.record(tcpFlow(1));
      await until(() => c.frames.length === 2, 2000, 'a resend');
      assert.deepEqual(
        c.frames.map((f) => f.seq),
        [1, 1],
      );
      assert.deepEqual({ sent: r.stats().sent, resent: r.stats().resent }, { sent: 1, resent: 1 });
    });
  });

  describe('a batch the collector refuses', function () {
    it('is counted lost after five acknowledgement timeouts, and the stream moves on', async function () {
      const r = reporter({ ackTimeoutMs: 20, maxInFlight: 1 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      r.record(tcpFlow(1));
      await until(() => c.frames.length === 1);
      r.record(tcpFlow(2));
      // The collector never answers seq 1 (it refuses it); then it acknowledges again.
      await until(() => r.stats().lost === 1, 3000, 'seq 1 to be given up');
      assert.equal(c.frames.filter((f) => f.seq === 1).length, 5, 'sent once and resent four times');
      c.autoAck = true;
      await until(() => r.stats().acknowledged === 1, 3000, 'seq 2 to be acknowledged');
      assert.deepEqual(c.frames.at(-1)!.flows.map((f) => f.bytesSent), [2]);
      assert.equal(c.frames.at(-1)!.lost, 1);
      invariant(r);
    });
  });

  describe('reconnect', function () {
    it('resends the unacknowledged batches, in order, before anything new', async function () {
      const r = reporter({ batchSize: 2 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      for (let i = 0; i < 6; i++) r.record(tcpFlow(i));
      await until(() => c.frames.length === 3);
      c.ack(1);
      c.disconnect();
      for (let i = 6; i < 9; i++) r.record(tcpFlow(i));
      await sleep(50);
      assert.equal(c.frames.length, 3, 'nothing sent while disconnected');
      c.frames = [];
      c.connect();
      await until(() => c.frames.length === 4);
      assert.deepEqual(
        c.frames.map((f) => [f.seq, f.flows.map((x) => x.bytesSent)]),
        [
          [2, [2, 3]],
          [3, [4, 5]],
          [4, [6, 7]],
          [5, [8]],
        ],
      );
    });

    it('keeps buffering while disconnected and sends everything after the reconnect', async function () {
      const r = reporter({ batchSize: 100 });
      const c = new FakeCollector();
      c.autoAck = true;
      r.start(c);
      for (let i = 0; i < 250; i++) r.record(tcpFlow(i));
      await sleep(30);
      assert.equal(c.frames.length, 0);
      c.connect();
      await until(() => r.stats().acknowledged === 250);
      assert.deepEqual(
        c.ids(),
        Array.from({ length: 250 }, (_, i) => i),
      );
    });
  });

  describe('backpressure', function () {
    it('stops sending while the socket holds maxBufferedBytes, keeps buffering, resumes when it drains', async function () {
      const r = reporter({ maxBufferedBytes: 1000 });
      const c = new FakeCollector();
      c.autoAck = true;
      r.start(c);
      c.connect();
      c.bufferedAmount = 5000;
      for (let i = 0; i < 30; i++) r.record(tcpFlow(i));
      await sleep(60);
      assert.equal(c.frames.length, 0);
      assert.equal(r.stats().buffered, 30);
      c.bufferedAmount = 0;
      await until(() => r.stats().acknowledged === 30, 1000, 'sending to resume');
    });

    it('keeps a batch the client refused (its own buffer full) and sends it later, same seq', async function () {
      const r = reporter();
      const c = new FakeCollector();
      c.autoAck = true;
      r.start(c);
      c.connect();
      c.full = true;
      r.record(tcpFlow(1));
      await sleep(50);
      assert.equal(r.stats().inFlight, 1, 'cut, not sent');
      c.full = false;
      await until(() => r.stats().acknowledged === 1);
      assert.deepEqual(
        c.frames.map((f) => f.seq),
        [1],
      );
    });
  });

  describe('bound with batches in flight', function () {
    it('keeps a sent, unacknowledged batch (the collector may have stored it) and drops waiting records first', async function () {
      const r = reporter({ bufferSize: 6, batchSize: 2, maxInFlight: 1 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      r.record(tcpFlow(0));
      r.record(tcpFlow(1));
      await until(() => c.frames.length === 1);
      c.disconnect();
      for (let i = 2; i < 9; i++) r.record(tcpFlow(i));
      assert.deepEqual({ lost: r.stats().lost, buffered: r.stats().buffered }, { lost: 3, buffered: 6 });
      c.autoAck = true;
      c.frames = [];
      c.connect();
      await until(() => r.stats().buffered === 0);
      assert.deepEqual(c.ids(), [0, 1, 5, 6, 7, 8], 'batch 1 again, then the newest waiting records');
      assert.deepEqual(
        c.frames.map((f) => [f.seq, f.lost]),
        [
          [1, 3],
          [2, 3],
          [3, 3],
        ],
      );
      invariant(r);
    });

    it('drops a batch cut but never sent (certainly not stored) before anything else', async function () {
      const r = reporter({ bufferSize: 4, batchSize: 2, maxInFlight: 1 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      c.full = true;
      r.record(tcpFlow(0));
      r.record(tcpFlow(1));
      await until(() => r.stats().inFlight === 1);
      r.record(tcpFlow(2));
      r.record(tcpFlow(3));
      r.record(tcpFlow(4));
      assert.deepEqual({ lost: r.stats().lost, buffered: r.stats().buffered, inFlight: r.stats().inFlight }, { lost: 2, buffered: 3, inFlight: 0 });
      c.full = false;
      c.autoAck = true;
      await until(() => r.stats().buffered === 0);
      assert.deepEqual(c.ids(), [2, 3, 4]);
    });

    it('tells the collector about loss with an empty batch when no records follow', async function () {
      const r = reporter();
      const c = new FakeCollector();
      c.autoAck = true;
      r.start(c);
      c.connect();
      r.record(tcpFlow(1));
      await until(() => r.stats().acknowledged === 1);
      r.record({ not: 'a flow' } as never);
      await until(() => c.frames.length === 2);
      assert.deepEqual(
        c.frames.map((f) => [f.seq, f.lost, f.flows.length]),
        [
          [1, 0, 1],
          [2, 1, 0],
        ],
      );
      await sleep(50);
      assert.equal(c.frames.length, 2, 'once');
      invariant(r);
    });

    it('drops the oldest unacknowledged batch whole when the buffer is full, counting its records as lost', async function () {
      const r = reporter({ bufferSize: 6, batchSize: 3, maxInFlight: 2 });
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      for (let i = 0; i < 6; i++) r.record(tcpFlow(i));
      await until(() => c.frames.length === 2);
      assert.deepEqual({ buffered: r.stats().buffered, inFlight: r.stats().inFlight }, { buffered: 6, inFlight: 2 });
      r.record(tcpFlow(6));
      assert.deepEqual(
        { lost: r.stats().lost, buffered: r.stats().buffered, inFlight: r.stats().inFlight },
        { lost: 3, buffered: 4, inFlight: 1 },
      );
      c.ack(1);
      assert.equal(r.stats().acknowledged, 0, 'the dropped batch is not counted twice');
      c.ack(2);
      assert.equal(r.stats().acknowledged, 3);
      await until(() => c.frames.length === 3);
      assert.equal(c.frames[2]!.lost, 3);
      invariant(r);
    });
  });

  describe('produced = acknowledged + lost + buffered', function () {
    it('holds at every step of a randomized run, and every acknowledged record arrived, in order', async function () {
      let seed = 0x2545f491;
      const rand = (n: number): number => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return (seed >>> 0) % n;
      };
      const r = reporter({ bufferSize: 300, batchSize: 40, maxInFlight: 4, maxBufferedBytes: 1000, ackTimeoutMs: 200 });
      const c = new FakeCollector();
      r.start(c);
      let next = 0;
      for (let step = 0; step < 400; step++) {
        const op = rand(10);
        if (op < 5) for (let k = rand(60); k > 0; k--) r.record(tcpFlow(next++));
        else if (op === 5) (c.connected ? c.disconnect() : c.connect());
        else if (op === 6) c.bufferedAmount = c.bufferedAmount ? 0 : 5000;
        else if (op === 7 && c.frames.length) c.ack(c.frames[rand(c.frames.length)]!.seq, r.session);
        else if (op === 8) c.full = !c.full;
        else await sleep(rand(15));
        invariant(r);
      }
      c.bufferedAmount = 0;
      c.full = false;
      c.autoAck = true;
      if (!c.connected) c.connect();
      await until(() => r.stats().buffered === 0, 5000, 'the buffer to drain');
      invariant(r);
      const s = r.stats();
      assert.equal(s.produced, next);
      assert.equal(s.acknowledged + s.lost, next);
      assert.ok(s.lost > 0, 'the run exercised the bound');
      // What arrived, deduplicated by seq as the collector does, is in production order.
      const seen = new Set<number>();
      const delivered: number[] = [];
      for (const f of c.frames) {
        if (seen.has(f.seq)) continue;
        seen.add(f.seq);
        delivered.push(...f.flows.map((x) => x.bytesSent));
      }
      for (let i = 1; i < delivered.length; i++) assert.ok(delivered[i]! > delivered[i - 1]!, 'in order');
      assert.ok(delivered.length >= s.acknowledged);
    });
  });

  describe('close', function () {
    it('stops sending; later records are only counted', async function () {
      const r = reporter();
      const c = new FakeCollector();
      r.start(c);
      c.connect();
      r.close();
      r.record(tcpFlow(1));
      await sleep(50);
      assert.equal(c.frames.length, 0);
      assert.equal(r.stats().produced, 1);
      assert.equal(c.listenerCount('flows-ack'), 0);
    });
  });
});
