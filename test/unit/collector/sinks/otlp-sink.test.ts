import { strict as assert } from 'node:assert';
import pino from 'pino';
import { encodeAndPost, OtlpSink, type FlowEncoder, type PostResult } from '../../../../collector/sinks/otlp-sink';
import { batchOf, type StoredBatch } from '../../../../collector/flows/stored-batch';
import { parseSinkSpec } from '../../../../collector/sinks/sink-spec';
import { FlowSinks } from '../../../../collector/sinks/sinks';
import type { FlowRecord } from '../../../../common/flow';

const rec = (n: number): FlowRecord => ({ bytesSent: n }) as unknown as FlowRecord;
const recs = (from: number, count: number): FlowRecord[] => Array.from({ length: count }, (_, i) => rec(from + i));
/** Flows `from`… as a batch the store stored (records, no agent's frame). */
const stored = (from: number, count: number): StoredBatch => {
  const r = recs(from, count);
  return batchOf(r.map((_, i) => from + i), r, r.map((f) => JSON.stringify(f)));
};
const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait (on a loaded machine, up to 10 s) until `done` holds. */
async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await tick(2);
  }
}

/** Each flow of a piece (read from its frame) as its bytesSent in 4 bytes; a request is the pieces in order (what the sink sends is read back from the body). */
const encoder: FlowEncoder = ((): FlowEncoder => {
  let parts: Buffer[] = [];
  return {
    begin: () => {
      parts = [];
    },
    piece: (p) => {
      const r = (JSON.parse(Buffer.from(p.frame).toString()) as { flows: FlowRecord[] }).flows.slice(p.skip, p.skip + p.count);
      const bytes = Buffer.alloc(4 * r.length);
      r.forEach((f, i) => bytes.writeUInt32LE(f.bytesSent, 4 * i));
      parts.push(bytes);
    },
    request: () => parts,
    release: () => {},
  };
})();

/** A sink whose POSTs answer what the test says, recording what each carried. */
function sink(answers: PostResult[], opts: Partial<ConstructorParameters<typeof OtlpSink>[0]> & { encoder?: FlowEncoder } = {}) {
  const posted: number[][] = [];
  const lost: Array<[number, string]> = [];
  const s = new OtlpSink({
    name: 'otlp:test',
    url: new URL('http://unused.invalid/v1/logs'),
    log: pino({ level: 'silent' }),
    send: (pieces) =>
      encodeAndPost(opts.encoder ?? encoder, pieces, async (body) => {
        const b = Buffer.concat(body);
        posted.push(Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32LE(4 * i)));
        return answers.shift() ?? { status: 200 };
      }),
    metrics: { delivered: () => {}, lost: (_s, n, reason) => lost.push([n, reason]) },
    flushIntervalMs: 1,
    retryMinMs: 1,
    retryMaxMs: 2,
    ...opts,
  });
  return { s, posted, lost };
}


/** A request the test answers when it likes: the flows it carried (their tags). */
interface Held {
  tags: number[];
  answer(r: PostResult): void;
}

/** A sink whose requests wait for the test to answer them (`out`, in the order sent). */
function heldSink(opts: Partial<ConstructorParameters<typeof OtlpSink>[0]> = {}) {
  const out: Held[] = [];
  const s = new OtlpSink({
    name: 'otlp:test',
    url: new URL('http://unused.invalid/v1/logs'),
    log: pino({ level: 'silent' }),
    send: (pieces) =>
      encodeAndPost(encoder, pieces, (body) => {
        const b = Buffer.concat(body);
        const tags = Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32LE(4 * i));
        return new Promise<PostResult>((answer) => out.push({ tags, answer }));
      }),
    flushIntervalMs: 1,
    retryMinMs: 1,
    retryMaxMs: 2,
    ...opts,
  });
  return { s, out };
}

/** accepted = delivered + lost + buffered, and the counts the test expects. */
function counts(s: OtlpSink, want: { accepted: number; delivered: number; lost: number; buffered: number }): void {
  const c = s.counts();
  assert.deepEqual(c, want);
  assert.equal(c.accepted, c.delivered + c.lost + c.buffered);
}

const sortedTags = (held: readonly Held[]): number[] => held.flatMap((h) => h.tags).sort((a, b) => a - b);

describe('OtlpSink', () => {
  it('sends a batch again after retryable answers (0, 429, 503), in order, then the rest', async () => {
    const { s, posted } = sink([{ status: 0 }, { status: 429 }, { status: 503 }], { batchSize: 3 });
    s.write(stored(1, 5));
    await until(() => s.counts().buffered === 0);
    assert.deepEqual(posted, [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [4, 5]]);
    assert.deepEqual(s.counts(), { accepted: 5, delivered: 5, lost: 0, buffered: 0 });
  });

  it('counts a batch the receiver refuses (400) lost and goes on', async () => {
    const { s, lost } = sink([{ status: 400 }], { batchSize: 2 });
    s.write(stored(1, 3));
    await until(() => s.counts().buffered === 0);
    assert.deepEqual(s.counts(), { accepted: 3, delivered: 1, lost: 2, buffered: 0 });
    assert.deepEqual(lost, [[2, 'refused']]);
  });

  it('drops the oldest waiting flows when full, never the batch in flight, and counts each', async () => {
    const { s, lost, posted } = sink(Array.from({ length: 1000 }, () => ({ status: 503 })), { batchSize: 2, maxBuffered: 4, retryMinMs: 1000, retryMaxMs: 1000 });
    s.write(stored(1, 2));
    await until(() => posted.length > 0); // [1, 2] in flight
    s.write(stored(3, 5)); // 3..7: room for two
    assert.deepEqual(s.counts(), { accepted: 7, delivered: 0, lost: 3, buffered: 4 });
    assert.deepEqual(lost, [[3, 'buffer-full']]);
    await s.close();
    assert.deepEqual(s.counts(), { accepted: 7, delivered: 0, lost: 7, buffered: 0 });
    assert.deepEqual(lost.at(-1), [4, 'shutdown']);
  });

  it('drops the oldest waiting flows across earlier writes first, keeping the order of the rest', async () => {
    const { s, posted, lost } = sink([{ status: 503 }], { batchSize: 2, maxBuffered: 5, retryMinMs: 200, retryMaxMs: 200 });
    s.write(stored(1, 2));
    await until(() => posted.length > 0); // [1, 2] in flight, to be sent again
    s.write(stored(3, 2));
    s.write(stored(5, 2)); // one over: 3 goes
    s.write(stored(7, 1)); // one over: 4 goes
    assert.deepEqual(lost, [[1, 'buffer-full'], [1, 'buffer-full']]);
    await until(() => s.counts().buffered === 0);
    assert.deepEqual(posted, [[1, 2], [1, 2], [5, 6], [7]]);
    assert.deepEqual(s.counts(), { accepted: 7, delivered: 5, lost: 2, buffered: 0 });
  });

  it('counts flows it cannot encode lost, and goes on', async () => {
    const { s, posted, lost } = sink([], { encoder: { ...encoder, piece: (p) => (p.count === 2 ? (() => { throw new Error('bad flow'); })() : encoder.piece(p)) } });
    s.write(stored(1, 1));
    s.write(stored(2, 2));
    s.write(stored(4, 1));
    await until(() => s.counts().buffered === 0);
    assert.deepEqual(posted.flat(), [1, 4]);
    assert.deepEqual(lost, [[2, 'refused']]);
    assert.deepEqual(s.counts(), { accepted: 4, delivered: 2, lost: 2, buffered: 0 });
  });

  it('encodes the next batch elsewhere when the last body is still held by its socket (an early answer)', async () => {
    let released = 0;
    const counting: FlowEncoder = { ...encoder, release: () => released++ };
    const frame = Buffer.from(JSON.stringify({ flows: recs(1, 2) }));
    const pieces = [{ frame, skip: 0, count: 2, storedMs: 0 }];
    const answers: PostResult[] = [{ status: 200, bodyHeld: true }, { status: 200 }];
    const first = await encodeAndPost(counting, pieces, async () => answers.shift()!);
    assert.deepEqual(first, { status: 200, unencoded: 0 });
    assert.equal(released, 1);
    await encodeAndPost(counting, pieces, async () => answers.shift()!);
    assert.equal(released, 1);
  });

  it('keeps up to maxInFlight requests in flight, the window opening by one per delivered batch', async () => {
    const { s, out } = heldSink({ batchSize: 2, maxInFlight: 3 });
    s.write(stored(1, 20)); // ten full batches
    assert.equal(out.length, 1, 'one request at first, sent at once (no timer)');
    const inFlight: number[] = [];
    for (let answered = 0; answered < 10; answered++) {
      inFlight.push(s.requestsInFlight);
      out[answered]!.answer({ status: 200 });
      await tick(1);
    }
    assert.deepEqual(inFlight, [1, 2, 3, 3, 3, 3, 3, 3, 2, 1]);
    assert.equal(out.length, 10);
    assert.deepEqual(sortedTags(out), Array.from({ length: 20 }, (_, i) => i + 1));
    counts(s, { accepted: 20, delivered: 20, lost: 0, buffered: 0 });
  });

  it('two batches in flight: one fails and is sent again while the other is delivered, counts exact at every step', async () => {
    const { s, out } = heldSink({ batchSize: 2, maxInFlight: 2, retryMinMs: 50, retryMaxMs: 50 });
    s.write(stored(1, 2));
    out[0]!.answer({ status: 200 });
    await until(() => s.counts().delivered === 2); // the window is two now
    s.write(stored(3, 4));
    assert.deepEqual(out.slice(1).map((h) => h.tags), [[3, 4], [5, 6]]);
    counts(s, { accepted: 6, delivered: 2, lost: 0, buffered: 4 });
    out[1]!.answer({ status: 503 });
    await tick(1);
    assert.equal(s.retrying, true);
    counts(s, { accepted: 6, delivered: 2, lost: 0, buffered: 4 });
    s.write(stored(7, 2)); // waits: nothing new goes while the receiver fails
    assert.equal(out.length, 3);
    out[2]!.answer({ status: 200 });
    await tick(1);
    counts(s, { accepted: 8, delivered: 4, lost: 0, buffered: 4 });
    assert.equal(out.length, 3, 'the backoff holds');
    // after the backoff: the failed batch first, then the newer one (a batch was delivered since the failure: the window is two again)
    await until(() => out.length === 5);
    assert.deepEqual([out[3]!.tags, out[4]!.tags], [[3, 4], [7, 8]]);
    counts(s, { accepted: 8, delivered: 4, lost: 0, buffered: 4 });
    out[4]!.answer({ status: 200 });
    await tick(1);
    counts(s, { accepted: 8, delivered: 6, lost: 0, buffered: 2 });
    out[3]!.answer({ status: 200 });
    await tick(1);
    counts(s, { accepted: 8, delivered: 8, lost: 0, buffered: 0 });
    assert.equal(s.retrying, false);
    assert.deepEqual(sortedTags(out.filter((_, i) => i !== 1)), [1, 2, 3, 4, 5, 6, 7, 8], 'every flow delivered once');
  });

  it('a receiver down with several requests in flight, then back: every flow once, one probe at a time meanwhile, counts exact', async () => {
    const { s, out } = heldSink({ batchSize: 5, maxInFlight: 4 });
    const delivered: number[] = [];
    s.write(stored(1, 100)); // twenty batches
    // the receiver answers the first three: the window opens to four
    for (let i = 0; i < 3; i++) {
      delivered.push(...out[i]!.tags);
      out[i]!.answer({ status: 200 });
      await tick(1);
    }
    assert.equal(s.requestsInFlight, 4);
    // down: every request out now, and every one after, finds no receiver
    let down = true;
    let answered = 3;
    let probes = 0;
    const answering = setInterval(() => {
      if (down && s.retrying) probes = Math.max(probes, s.requestsInFlight);
      for (; answered < out.length; answered++) {
        const h = out[answered]!;
        if (!down) delivered.push(...h.tags);
        h.answer(down ? { status: 0, error: 'ECONNREFUSED' } : { status: 200 });
      }
    }, 2);
    try {
      for (let tag = 101; tag <= 400; tag += 10) {
        s.write(stored(tag, 10));
        const c = s.counts();
        assert.equal(c.accepted, c.delivered + c.lost + c.buffered);
        await tick(3);
      }
      assert.equal(s.retrying, true);
      assert.ok(out.length > 8, `requests: ${out.length}`); // the four out, then probes
      counts(s, { accepted: 400, delivered: 15, lost: 0, buffered: 385 });
      assert.equal(probes, 1, 'one request at a time while the receiver fails');
      down = false;
      await until(() => s.counts().buffered === 0);
      assert.deepEqual([...delivered].sort((x, y) => x - y), Array.from({ length: 400 }, (_, i) => i + 1));
      counts(s, { accepted: 400, delivered: 400, lost: 0, buffered: 0 });
    } finally {
      clearInterval(answering);
    }
  });

  it('close() waits for the requests in flight within its grace, then counts what is still out lost, once', async () => {
    const { s, out } = heldSink({ batchSize: 2, maxInFlight: 2, closeGraceMs: 100 });
    s.write(stored(1, 2));
    out[0]!.answer({ status: 200 });
    await until(() => s.counts().delivered === 2);
    s.write(stored(3, 5)); // [3, 4] and [5, 6] out, [7] waiting
    assert.equal(out.length, 3);
    const closing = s.close();
    out[1]!.answer({ status: 200 });
    await closing; // [5, 6] never answered; [7] went when a slot was free, never answered
    counts(s, { accepted: 7, delivered: 4, lost: 3, buffered: 0 });
    for (const h of out.slice(2)) h.answer({ status: 200 }); // too late: not counted again
    await tick(1);
    counts(s, { accepted: 7, delivered: 4, lost: 3, buffered: 0 });
  });

  it('close(): a retryable failure of one batch does not end the grace while another is still out', async () => {
    const { s, out } = heldSink({ batchSize: 2, maxInFlight: 2, closeGraceMs: 2000 });
    s.write(stored(1, 2));
    out[0]!.answer({ status: 200 });
    await until(() => s.counts().delivered === 2);
    s.write(stored(3, 4)); // [3, 4] and [5, 6] out
    assert.equal(out.length, 3);
    const closing = s.close();
    out[1]!.answer({ status: 503 }); // not retried while closing: lost at the end
    await tick(20);
    out[2]!.answer({ status: 200 }); // still within the grace: delivered
    await closing;
    counts(s, { accepted: 6, delivered: 4, lost: 2, buffered: 0 });
  });

  it('reads a batch stored from an agent\'s frame from the frame, never asking the store for its records (FlowSinks.onStored)', async () => {
    const posted: number[][] = [];
    const sinks = new FlowSinks([parseSinkSpec('otlp=http://unused.invalid')], {
      log: pino({ level: 'silent' }),
      trustDomain: 'cluster.local',
      otlp: {
        flushIntervalMs: 1,
        send: (pieces) =>
          encodeAndPost(encoder, pieces, async (body) => {
            const b = Buffer.concat(body);
            posted.push(Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32LE(4 * i)));
            return { status: 200 };
          }),
      },
    });
    const frame = Buffer.from(JSON.stringify({ type: 'flows', session: 's', seq: 1, lost: 0, flows: recs(1, 3) }));
    sinks.onStored({ count: 3, frame, denied: [], entries: () => assert.fail('the records were asked for: the collector\'s thread would parse the frame again') });
    await until(() => Object.values(sinks.counts())[0]!.buffered === 0);
    assert.deepEqual(posted, [[1, 2, 3]]);
    assert.deepEqual(Object.values(sinks.counts()), [{ accepted: 3, delivered: 3, lost: 0, buffered: 0 }]);
    await sinks.close();
  });

  it('counts the flush interval from the last batch cut: flows left after a full batch are not sent alone early', async () => {
    const { s, posted } = sink([], { batchSize: 4, flushIntervalMs: 1000 });
    s.write(stored(1, 2)); // waits for a full batch, or 1 s
    await tick(600);
    s.write(stored(3, 4)); // a full batch [1..4] goes; [5, 6] waits 1 s from now
    assert.deepEqual(posted, [[1, 2, 3, 4]]);
    await tick(700); // 1.3 s after the first write: a timer from then would have sent [5, 6] alone
    assert.deepEqual(posted, [[1, 2, 3, 4]]);
    s.write(stored(7, 2)); // a full batch again
    assert.deepEqual(posted, [[1, 2, 3, 4], [5, 6, 7, 8]]);
    await until(() => s.counts().buffered === 0);
    assert.deepEqual(s.counts(), { accepted: 8, delivered: 8, lost: 0, buffered: 0 });
  });

  it('close() delivers what waits within its grace period', async () => {
    const { s, posted } = sink([], { flushIntervalMs: 60_000 });
    s.write(stored(1, 3));
    await s.close();
    assert.deepEqual(posted, [[1, 2, 3]]);
    assert.deepEqual(s.counts(), { accepted: 3, delivered: 3, lost: 0, buffered: 0 });
    s.write(stored(4, 1));
    assert.deepEqual(s.counts(), { accepted: 4, delivered: 3, lost: 1, buffered: 0 });
  });
});
