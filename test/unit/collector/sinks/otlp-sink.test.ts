import { strict as assert } from 'node:assert';
import pino from 'pino';
import { encodeAndPost, OtlpSink, type FlowEncoder, type PostResult } from '../../../../collector/sinks/otlp-sink';
import type { FlowRecord } from '../../../../common/flow';

const rec = (n: number): FlowRecord => ({ bytesSent: n }) as unknown as FlowRecord;
const recs = (from: number, count: number): FlowRecord[] => Array.from({ length: count }, (_, i) => rec(from + i));
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

describe('OtlpSink', () => {
  it('sends a batch again after retryable answers (0, 429, 503), in order, then the rest', async () => {
    const { s, posted } = sink([{ status: 0 }, { status: 429 }, { status: 503 }], { batchSize: 3 });
    s.write(recs(1, 5));
    await until(() => s.counts().buffered === 0);
    assert.deepEqual(posted, [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [4, 5]]);
    assert.deepEqual(s.counts(), { accepted: 5, delivered: 5, lost: 0, buffered: 0 });
  });

  it('counts a batch the receiver refuses (400) lost and goes on', async () => {
    const { s, lost } = sink([{ status: 400 }], { batchSize: 2 });
    s.write(recs(1, 3));
    await until(() => s.counts().buffered === 0);
    assert.deepEqual(s.counts(), { accepted: 3, delivered: 1, lost: 2, buffered: 0 });
    assert.deepEqual(lost, [[2, 'refused']]);
  });

  it('drops the oldest waiting flows when full, never the batch in flight, and counts each', async () => {
    const { s, lost, posted } = sink(Array.from({ length: 1000 }, () => ({ status: 503 })), { batchSize: 2, maxBuffered: 4, retryMinMs: 1000, retryMaxMs: 1000 });
    s.write(recs(1, 2));
    await until(() => posted.length > 0); // [1, 2] in flight
    s.write(recs(3, 5)); // 3..7: room for two
    assert.deepEqual(s.counts(), { accepted: 7, delivered: 0, lost: 3, buffered: 4 });
    assert.deepEqual(lost, [[3, 'buffer-full']]);
    await s.close();
    assert.deepEqual(s.counts(), { accepted: 7, delivered: 0, lost: 7, buffered: 0 });
    assert.deepEqual(lost.at(-1), [4, 'shutdown']);
  });

  it('drops the oldest waiting flows across earlier writes first, keeping the order of the rest', async () => {
    const { s, posted, lost } = sink([{ status: 503 }], { batchSize: 2, maxBuffered: 5, retryMinMs: 200, retryMaxMs: 200 });
    s.write(recs(1, 2));
    await until(() => posted.length > 0); // [1, 2] in flight, to be sent again
    s.write(recs(3, 2));
    s.write(recs(5, 2)); // one over: 3 goes
    s.write(recs(7, 1)); // one over: 4 goes
    assert.deepEqual(lost, [[1, 'buffer-full'], [1, 'buffer-full']]);
    await until(() => s.counts().buffered === 0);
    assert.deepEqual(posted, [[1, 2], [1, 2], [5, 6], [7]]);
    assert.deepEqual(s.counts(), { accepted: 7, delivered: 5, lost: 2, buffered: 0 });
  });

  it('counts flows it cannot encode lost, and goes on', async () => {
    const { s, posted, lost } = sink([], { encoder: { ...encoder, piece: (p) => (p.count === 2 ? (() => { throw new Error('bad flow'); })() : encoder.piece(p)) } });
    s.write(recs(1, 1));
    s.write(recs(2, 2));
    s.write(recs(4, 1));
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

  it('close() delivers what waits within its grace period', async () => {
    const { s, posted } = sink([], { flushIntervalMs: 60_000 });
    s.write(recs(1, 3));
    await s.close();
    assert.deepEqual(posted, [[1, 2, 3]]);
    assert.deepEqual(s.counts(), { accepted: 3, delivered: 3, lost: 0, buffered: 0 });
    s.write(recs(4, 1));
    assert.deepEqual(s.counts(), { accepted: 4, delivered: 3, lost: 1, buffered: 0 });
  });
});
