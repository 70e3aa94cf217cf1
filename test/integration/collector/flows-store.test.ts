import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { isPalisadeError } from '../../../common/errors';
import type { FlowRecord } from '../../../common/flow';
import { FlowStore, type FlowStoreMetrics, type FlowStoreOptions, type StoredEntry } from '../../../collector/flows/store';
import { realisticFlow } from '../../bench/flow-ingest';
import { TempDirs, waitFor } from './helpers';

const DAY = 86_400_000;

class Counts implements FlowStoreMetrics {
  ingestedN = 0;
  refusedN = 0;
  duplicates = 0;
  deletedBy = { age: 0, size: 0 };
  ingested(n: number): void {
    this.ingestedN += n;
  }
  refused(n: number): void {
    this.refusedN += n;
  }
  duplicate(): void {
    this.duplicates += 1;
  }
  deleted(n: number, reason: 'age' | 'size'): void {
    this.deletedBy[reason] += n;
  }
}

/** `count` realistic flows of `node`, the i-th at `t(i)`. */
function flows(node: string, count: number, t: (i: number) => number, from = 0): FlowRecord[] {
  return Array.from({ length: count }, (_, k) => realisticFlow(from + k, node, t(from + k)));
}

describe('FlowStore', () => {
  const dirs = new TempDirs();
  const open: FlowStore[] = [];
  let metrics: Counts;
  let file: string;

  const store = (opts: Partial<FlowStoreOptions> = {}): FlowStore => {
    const s = FlowStore.open({ file, log: pino({ level: 'silent' }), metrics, retentionIntervalMs: 3_600_000, ...opts });
    open.push(s);
    return s;
  };

  beforeEach(() => {
    metrics = new Counts();
    file = path.join(dirs.make('palisade-flows-'), 'flows.db');
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    dirs.cleanup();
  });

  describe('ingest', () => {
    it('stores each batch once per (session, seq): a resent batch is acknowledged but not stored again', () => {
      const s = store();
      const now = Date.now();
      const batch = flows('node-a', 10, (i) => now - 1000 + i);
      s.ingest('node-a', { session: 'p1', seq: 1, lost: 0, flows: batch });
      s.ingest('node-a', { session: 'p1', seq: 1, lost: 0, flows: batch }); // resent after a reconnect
      s.ingest('node-a', { session: 'p1', seq: 2, lost: 0, flows: batch.slice(0, 3) });
      s.ingest('node-a', { session: 'p1', seq: 1, lost: 0, flows: batch }); // an older one, late
      assert.equal(s.rows(), 13);
      assert.equal(metrics.duplicates, 2);
      assert.equal(metrics.ingestedN, 13);
      // a restarted agent starts a new session at seq 1 again: not a duplicate
      s.ingest('node-a', { session: 'p2', seq: 1, lost: 0, flows: batch.slice(0, 2) });
      // another node's session with the same name and seq is not one either
      s.ingest('node-b', { session: 'p1', seq: 1, lost: 0, flows: flows('node-b', 4, () => now) });
      assert.deepEqual(s.stats(), { stored: 19, lost: { 'node-a': 0, 'node-b': 0 }, nodes: { 'node-a': { stored: 15, lost: 0 }, 'node-b': { stored: 4, lost: 0 } } });
    });

    it('refuses a whole batch when a record names another node, storing nothing of it', () => {
      const s = store();
      const batch = flows('node-a', 5, () => Date.now());
      batch[3] = { ...batch[3], node: 'node-b' };
      assert.throws(
        () => s.ingest('node-a', { session: 'p1', seq: 1, lost: 0, flows: batch }),
        (err: unknown) => isPalisadeError(err) && err.code === 'PALISADE_ERR_PROTOCOL' && /flows\[3\] names node "node-b"/.test(err.message),
      );
      assert.equal(s.rows(), 0);
      assert.equal(metrics.refusedN, 5);
      // the seq was not taken: the agent's corrected batch 1 is stored
      s.ingest('node-a', { session: 'p1', seq: 1, lost: 0, flows: batch.slice(0, 3) });
      assert.equal(s.rows(), 3);
    });

    it('keeps lost as the sum over sessions of each running total, never going down', () => {
      const s = store();
      s.ingest('node-a', { session: 'p1', seq: 1, lost: 3, flows: [] });
      s.ingest('node-a', { session: 'p1', seq: 2, lost: 5, flows: [] });
      s.ingest('node-a', { session: 'p1', seq: 3, lost: 4, flows: [] }); // out of order report: keep 5
      s.ingest('node-a', { session: 'p2', seq: 1, lost: 2, flows: [] });
      s.ingest('node-b', { session: 'p1', seq: 1, lost: 1, flows: flows('node-b', 1, () => Date.now()) });
      s.ingest('node-a', { session: 'p2', seq: 1, lost: 99, flows: [] }); // duplicate: ignored
      assert.equal(s.lost('node-a'), 7);
      assert.equal(s.lost('node-b'), 1);
      assert.equal(s.lost('node-c'), 0);
      assert.deepEqual(s.stats(), { stored: 1, lost: { 'node-a': 7, 'node-b': 1 }, nodes: { 'node-a': { stored: 0, lost: 7 }, 'node-b': { stored: 1, lost: 1 } } });
    });

    it('tells listeners about each stored batch, with ids and wire JSON, and not about duplicates', () => {
      const s = store();
      const seen: StoredEntry[][] = [];
      const off = s.onStored((b) => seen.push([...b.entries()]));
      const batch = flows('node-a', 3, () => Date.now());
      s.ingest('node-a', { session: 'p1', seq: 1, lost: 0, flows: batch });
      s.ingest('node-a', { session: 'p1', seq: 1, lost: 0, flows: batch });
      off();
      s.ingest('node-a', { session: 'p1', seq: 2, lost: 0, flows: batch });
      assert.equal(seen.length, 1);
      const stored = s.query({ limit: 10 });
      assert.deepEqual(seen[0].map((e) => JSON.parse(e.json)), stored.filter((f) => seen[0].some((e) => e.id === f.id)).sort((x, y) => x.id - y.id));
      assert.deepEqual(seen[0][0].record, batch[0]);
    });
  });

  describe('query', () => {
    it('answers the newest first, 100 by default and 10000 at most', () => {
      const s = store();
      const now = Date.now();
      for (let b = 0; b < 21; b++) s.ingest('node-a', { session: 'p', seq: b + 1, lost: 0, flows: flows('node-a', 500, (i) => now - 20_000 + i, b * 500) });
      const first = s.query({});
      assert.equal(first.length, 100);
      assert.equal(Date.parse(first[0].time), now - 20_000 + 10_499);
      assert.ok(first.every((f, i) => i === 0 || Date.parse(f.time) <= Date.parse(first[i - 1].time)));
      assert.equal(s.query({ limit: 50_000 }).length, 10_000);
    });
  });

  describe('reopen', () => {
    it('keeps flows, per-node counts, lost totals and duplicate detection across a restart, in owner-only files', async () => {
      const first = store();
      first.ingest('node-a', { session: 'p1', seq: 4, lost: 6, flows: flows('node-a', 7, () => Date.now()) });
      await first.close();
      const second = store();
      assert.equal(second.rows(), 7);
      second.ingest('node-a', { session: 'p1', seq: 4, lost: 6, flows: flows('node-a', 7, () => Date.now()) });
      assert.deepEqual(second.stats(), { stored: 7, lost: { 'node-a': 6 }, nodes: { 'node-a': { stored: 7, lost: 6 } } });
      for (const f of [file, `${file}-wal`]) assert.equal(fs.statSync(f).mode & 0o777, 0o600, `${f} is owner-only`);
    });

    it('a new store has 16 KiB pages; a store made with 4 KiB pages (before) keeps them, answers its flows and takes more', async () => {
      const pageSize = (): number => {
        const db = new Database(file, { readonly: true });
        try {
          return db.pragma('page_size', { simple: true }) as number;
        } finally {
          db.close();
        }
      };
      const fresh = store();
      await fresh.close();
      assert.equal(pageSize(), 16_384);
      fs.rmSync(file);
      const before = new Database(file);
      before.pragma('page_size = 4096');
      before.pragma('journal_mode = WAL');
      before.close();
      const t0 = Date.now() - 1_000;
      const old = store();
      old.ingest('node-a', { session: 'p1', seq: 1, lost: 0, flows: flows('node-a', 3, (i) => t0 + i) });
      await old.close();
      assert.equal(pageSize(), 4096);
      const again = store();
      again.ingest('node-a', { session: 'p1', seq: 2, lost: 0, flows: flows('node-a', 2, (i) => t0 + i, 3) });
      assert.deepEqual(again.query({}).map((f) => Date.parse(f.time) - t0), [4, 3, 2, 1, 0]);
    });

    it('refuses a file that is not a flow database with one line naming it', () => {
      fs.writeFileSync(file, 'not sqlite at all, just text that is long enough to have a header '.repeat(10));
      assert.throws(
        () => store(),
        (err: unknown) => isPalisadeError(err) && err.code === 'PALISADE_ERR_DATA_DIR' && err.message.includes(file) && !err.message.includes('\n'),
      );
    });
  });

  describe('retention', () => {
    it('deletes flows older than the retention, oldest first, and counts them as age', async () => {
      const now = Date.now();
      const s = store({ retentionMs: 7 * DAY, now: () => now });
      // 12 000 flows over the last 12 days, one node per parity
      for (let b = 0; b < 24; b++) {
        const node = b % 2 ? 'node-b' : 'node-a';
        s.ingest(node, { session: 'p', seq: b + 1, lost: 0, flows: flows(node, 500, (i) => now - 12 * DAY + i * DAY / 1000, b * 500) });
      }
      assert.equal(s.rows(), 12_000);
      const deleted = await s.enforceRetention();
      const left = s.query({ limit: 10_000 });
      assert.equal(deleted, 5_000);
      assert.equal(s.rows(), 7_000);
      assert.ok(left.every((f) => Date.parse(f.time) >= now - 7 * DAY));
      assert.equal(metrics.deletedBy.age, 5_000);
      assert.equal(metrics.deletedBy.size, 0);
      const stats = s.stats();
      assert.equal(stats.stored, 7_000);
      assert.equal(stats.nodes['node-a'].stored + stats.nodes['node-b'].stored, 7_000);
      assert.equal(await s.enforceRetention(), 0);
    });

    it('deletes the oldest rows beyond maxRows, in chunks, and counts them as size', async () => {
      const now = Date.now();
      const s = store({ maxRows: 3_000 });
      for (let b = 0; b < 18; b++) s.ingest('node-a', { session: 'p', seq: b + 1, lost: 0, flows: flows('node-a', 500, (i) => now - 60_000 + i, b * 500) });
      // ingests past maxRows start a pass by themselves; wait for it, then check the result
      await waitFor(() => s.rows() === 3_000, 10_000, 'rows down to maxRows');
      await s.enforceRetention();
      assert.equal(s.rows(), 3_000);
      assert.equal(metrics.deletedBy.size, 6_000);
      const oldestLeft = Math.min(...s.query({ limit: 10_000 }).map((f) => Date.parse(f.time)));
      assert.equal(oldestLeft, now - 60_000 + 6_000, 'the 3000 newest are kept');
      assert.deepEqual(s.stats().nodes['node-a'], { stored: 3_000, lost: 0 });
    });

    it('brings the database under maxBytes by deleting the oldest rows', async () => {
      const now = Date.now();
      const s = store();
      for (let b = 0; b < 20; b++) s.ingest('node-a', { session: 'p', seq: b + 1, lost: 0, flows: flows('node-a', 500, (i) => now - 60_000 + i, b * 500) });
      const full = s.bytes();
      await s.close();
      const limited = store({ maxBytes: Math.floor(full / 2) });
      await limited.enforceRetention();
      assert.ok(limited.rows() >= 4_000 && limited.rows() <= 5_500, `about half the rows left, got ${limited.rows()}`);
      assert.ok(metrics.deletedBy.size > 0);
      const newest = limited.query({ limit: 1 })[0];
      assert.equal(Date.parse(newest.time), now - 60_000 + 9_999, 'the newest flows are kept');
    });
  });
});
