/**
 * An agent's flows frame is parsed, checked and stored in the flow store's writer thread
 * (collector/flows/flows-frame.ts): the collector's event loop reads only its envelope, the
 * session is acknowledged once the batch committed, a frame refused there is refused as any bad
 * frame (error, close 4400, audited, nothing stored), and the listeners still get what they need.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import pino from 'pino';
import type { RunningCollector } from '../../../collector/collector';
import { openDatabase, FlowWriter } from '../../../collector/flows/writer';
import { realisticFlow } from '../../bench/flow-ingest';
import { FlowSession, follow } from './flows-fixtures';
import { closed, collector, joinedNodeDir, LogCapture, opened, TempDirs, useCollectorSuite, waitFor } from './helpers';

describe('collector: flows frames parsed in the writer thread', function () {
  this.timeout(60_000);
  const { dirs, stack, dataDir } = useCollectorSuite();

  async function start(): Promise<{ col: RunningCollector; logs: LogCapture; session: (node: string) => Promise<FlowSession> }> {
    const data = dataDir();
    const logs = new LogCapture();
    const col = await collector(stack, { dataDir: data, log: logs.logger, auditSummaryIntervalMs: 200 });
    return { col, logs, session: async (node) => FlowSession.open(stack, col, await joinedNodeDir(dirs, col, data, node), node) };
  }

  it("the collector's thread never parses a flows frame, yet every batch is acknowledged once stored", async () => {
    const { col, session } = await start();
    const s = await session('node-p');
    const parse = JSON.parse;
    let parsedFrames = 0;
    JSON.parse = ((text: string, reviver?: Parameters<typeof parse>[1]) => {
      if (typeof text === 'string' && text.startsWith('{"type":"flows"')) parsedFrames++;
      return parse(text, reviver);
    }) as typeof JSON.parse;
    try {
      for (let seq = 1; seq <= 5; seq++) {
        const reply = await s.send({ session: 'p', seq, lost: 0, flows: Array.from({ length: 100 }, (_, i) => realisticFlow(seq * 100 + i, 'node-p', Date.now())) });
        assert.equal(reply.type, 'flows-ack');
      }
    } finally {
      JSON.parse = parse;
    }
    assert.equal(parsedFrames, 0, 'flows frames parsed on the event loop');
    assert.equal(col.flows.rows(), 500);
  });

  it('stores each frame exactly when frames of other sizes went through the same buffers before (a big one, then small ones, then big)', async () => {
    const { col, session } = await start();
    const s = await session('node-b');
    const sizes = [500, 3, 1, 200, 500, 7];
    const sent: string[] = [];
    let i = 0;
    for (const [k, n] of sizes.entries()) {
      const flows = Array.from({ length: n }, () => realisticFlow(i++, 'node-b', Date.now() - 60_000 + i));
      sent.push(...flows.map((f) => JSON.stringify(f)));
      assert.equal((await s.send({ session: 'b', seq: k + 1, lost: 0, flows })).type, 'flows-ack');
    }
    const stored = col.flows.query({ node: 'node-b', limit: 10_000 }).reverse();
    assert.equal(stored.length, sent.length);
    assert.deepEqual(
      stored.map(({ id: _id, origin: _origin, ...f }) => JSON.stringify(f)),
      sent,
    );
  });

  it('feeds the listeners: follow gets every matching flow, the audit log a summary of the denied ones', async () => {
    const { col, session } = await start();
    const admin = { token: col.adminToken };
    const { ws, frames } = follow(col, { node: 'node-q', verdict: 'denied' }, admin, stack);
    await opened(ws);
    const s = await session('node-q');
    const batch = Array.from({ length: 230 }, (_, i) => realisticFlow(i, 'node-q', Date.now())); // every 23rd denied: 10
    assert.equal((await s.send({ session: 'q', seq: 1, lost: 0, flows: batch })).type, 'flows-ack');
    await waitFor(() => frames.length >= 10, 5_000, 'ten followed flows');
    assert.equal(frames.length, 10);
    assert.ok(frames.every((f) => (JSON.parse(f.text) as { verdict: string }).verdict === 'denied'));
    const summary = await waitFor(() => col.audit.list({ kind: 'denied-flows' })[0], 5_000, 'a denied-flow summary');
    assert.equal((summary.data as { total: number }).total, 10);
  });

  const refusals: Array<[string, string, RegExp]> = [
    ['names its seq twice (the envelope says 1, the parse 2)', '{"type":"flows","session":"r","seq":1,"lost":0,"flows":[],"seq":2}', /names its session, seq or lost twice/],
    ['holds a record that is not a flow', '{"type":"flows","session":"r","seq":1,"lost":0,"flows":[{"time":"yesterday"}]}', /^flows\.flows\[0\]: /],
  ];
  for (const [what, text, message] of refusals) {
    it(`refuses a frame that ${what}: error, close 4400, audited, nothing stored`, async () => {
      const { col, logs, session } = await start();
      const s = await session('node-r');
      const end = closed(s.ws);
      s.ws.send(text);
      const { code } = await end;
      assert.equal(code, 4400);
      const reply = s.replies.find((r) => r.type === 'error');
      assert.match(String(reply?.message), message);
      assert.equal(col.flows.rows(), 0);
      assert.ok(logs.lines.some((l) => l.node === 'node-r' && message.test(String(l.reason))), 'one warn line with the reason');
      const audited = col.audit.list({ kind: 'trust-refusal' }).some((r) => r.data.event === 'protocol' && r.actor === 'node:node-r' && message.test(String(r.data.reason)));
      assert.ok(audited, 'and a trust-refusal audit record');
    });
  }
});

describe('FlowWriter.commitGroup', () => {
  const dirs = new TempDirs();
  afterEach(() => dirs.cleanup());

  it('stores batches in one transaction; one that fails (its own savepoint) leaves the others stored', async () => {
    const { db } = openDatabase(path.join(dirs.make('palisade-group-'), 'flows.db'));
    const w = new FlowWriter(db, { log: pino({ level: 'silent' }), now: Date.now, retentionIntervalMs: 3_600_000 });
    try {
      const batch = (seq: number, n: number) => {
        const records = Array.from({ length: n }, (_, i) => realisticFlow(seq * 10 + i, 'node-a', Date.now()));
        return { meta: { node: 'node-a', session: 's', seq, lost: 0 }, records, jsons: records.map((r) => JSON.stringify(r)) };
      };
      const bad = batch(2, 2);
      bad.records[1] = { ...bad.records[1]!, time: 'not a time' }; // time_ms NOT NULL: the insert fails
      const out = w.commitGroup([batch(1, 3), bad, batch(3, 4), batch(1, 3)]);
      assert.deepEqual(out.map((r) => (r instanceof Error ? 'error' : r.ids === undefined ? 'duplicate' : r.ids.length)), [3, 'error', 4, 'duplicate']);
      assert.equal((db.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n, 7);
      assert.equal(w.rows(), 7);
      assert.equal((db.prepare('SELECT last_seq FROM lost WHERE node = ? AND session = ?').get('node-a', 's') as { last_seq: number }).last_seq, 3);
    } finally {
      await w.stop();
      db.close();
    }
  });

  it('a batch alone (its own transaction, no savepoint) that fails is its Error, with nothing of it stored', async () => {
    const { db } = openDatabase(path.join(dirs.make('palisade-group-'), 'flows.db'));
    const w = new FlowWriter(db, { log: pino({ level: 'silent' }), now: Date.now, retentionIntervalMs: 3_600_000 });
    try {
      const records = Array.from({ length: 3 }, (_, i) => realisticFlow(i, 'node-a', Date.now()));
      const bad = [...records];
      bad[2] = { ...bad[2]!, time: 'not a time' }; // time_ms NOT NULL: the third insert fails
      const stored = (): number => (db.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n;
      const out = w.commitGroup([{ meta: { node: 'node-a', session: 's', seq: 1, lost: 0 }, records: bad, jsons: bad.map((r) => JSON.stringify(r)) }]);
      assert.ok(out[0] instanceof Error);
      assert.equal(stored(), 0);
      assert.equal(db.prepare('SELECT last_seq FROM lost').get(), undefined, 'its seq is not taken');
      assert.equal(db.inTransaction, false);
      const again = w.commitGroup([{ meta: { node: 'node-a', session: 's', seq: 1, lost: 0 }, records, jsons: records.map((r) => JSON.stringify(r)) }]);
      assert.deepEqual(again.map((r) => (r instanceof Error ? 'error' : r.ids?.length)), [3]);
      assert.equal(stored(), 3);
      assert.equal(w.rows(), 3);
    } finally {
      await w.stop();
      db.close();
    }
  });
});
