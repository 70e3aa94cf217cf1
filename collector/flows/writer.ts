/**
 * The flow store's writing side: one batch = one transaction (flows, the edge rollup, the
 * session's seq and lost, per-node row counts), rollup pruning and retention. It runs where the
 * store's writes run: in the collector's writer thread (collector/flows/writer-worker.ts), or in
 * the caller's thread for a store opened without one (tests, benches, the CLI's readers).
 */
import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';
import { describeCause, errorCode, PalisadeError } from '../../common/errors';
import type { FlowRecord } from '../../common/flow';
import type { Logger } from '../../common/log';
import { DEFAULT_FLOW_RETENTION_MS, Retention, type RetentionMetrics, type RetentionOptions } from './retention';
import { EdgeRollup, LIVE_MINUTES, MAX_ROLLUP_RETENTION_MS, MINUTE_MS } from './rollup';
import { flowRow, GRPC_STATUS_COLUMN, type Cell, INSERT_FLOW, ROUTE_COLUMN, SCHEMA, SCHEMA_VERSION } from './schema';

/** Which batch: `node`'s agent session and its sequence number, with the agent's running lost total. */
export interface BatchMeta {
  node: string;
  session: string;
  seq: number;
  lost: number;
}

/** What one commit did: the new rows' ids (undefined: a batch already stored), and the rollup's state. */
export interface Committed {
  ids: number[] | undefined;
  /** The batch added to a settled minute of the rollup. */
  late: boolean;
  /** The first minute the rollup still holds. */
  rollupFloor: number;
}

export interface FlowWriterOptions extends RetentionOptions {
  log: Logger;
  now: () => number;
  /** Retention deleted a pass's rows (counted). */
  metrics?: RetentionMetrics;
  /** Retention deleted `count` rows (every chunk). */
  onDeleted?: (count: number) => void;
}

/** A batch to store: `jsons[i]` is `records[i]`'s stored JSON. */
export interface Pending {
  meta: BatchMeta;
  records: readonly FlowRecord[];
  jsons: readonly string[];
}

/** A batch its gate did not let in now (not a failure of the database). */
export class BatchWaits extends Error {}

/** Asked for each batch of a group in turn, inside its transaction: whether it may be stored now (session-gaps.ts), and how it went. */
export interface GroupGate {
  /** Why the batch may not be stored now, or undefined. */
  refusal(b: Pending): string | undefined;
  settled(b: Pending, stored: boolean): void;
}

interface SessionRow {
  last_seq: number;
  lost: number;
}

export class FlowWriter {
  private readonly insertGroup: (batches: readonly Pending[], times: number[][], gate?: GroupGate) => Array<number[] | undefined | Error>;
  private readonly rollup: EdgeRollup;
  private readonly rollupRetentionMs: number;
  readonly retention: Retention;
  private rollupPrunedAt = 0;
  private rollupFloor = 0;
  private rowCount: number;
  private closed = false;

  constructor(
    db: Database.Database,
    private readonly opts: FlowWriterOptions,
  ) {
    // a group's savepoints journal the pages each batch changes: in memory, not in a temporary
    // file (the writing connection's only temporary data, with retention's chunks of ids)
    db.pragma('temp_store = MEMORY');
    this.rollup = new EdgeRollup(db);
    this.rollupRetentionMs = Math.min(opts.retentionMs ?? DEFAULT_FLOW_RETENTION_MS, MAX_ROLLUP_RETENTION_MS);
    const insert = db.prepare(INSERT_FLOW);
    const getSession = db.prepare<[string, string], SessionRow>('SELECT last_seq, lost FROM lost WHERE node = ? AND session = ?');
    const putSession = db.prepare(
      `INSERT INTO lost (node, session, last_seq, lost, updated_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (node, session) DO UPDATE SET last_seq = excluded.last_seq, lost = max(lost, excluded.lost), updated_ms = excluded.updated_ms`,
    );
    const addRows = db.prepare('INSERT INTO node_rows (node, stored) VALUES (?, ?) ON CONFLICT (node) DO UPDATE SET stored = stored + excluded.stored');
    const row = new Array<Cell>();
    const insertBatch = db.transaction(({ meta, records, jsons }: Pending, times: number[]): number[] | undefined => {
      const prev = getSession.get(meta.node, meta.session);
      if (prev && meta.seq <= prev.last_seq) return undefined;
      const ids = new Array<number>(records.length);
      for (let i = 0; i < records.length; i++) ids[i] = Number(insert.run(flowRow(records[i]!, jsons[i]!, times[i]!, row)).lastInsertRowid);
      this.rollup.add(records, times);
      putSession.run(meta.node, meta.session, meta.seq, meta.lost, this.opts.now());
      if (records.length > 0) addRows.run(meta.node, records.length);
      return ids;
    });
    const each = (b: Pending, times: number[], gate?: GroupGate): number[] | undefined | Error => {
      const refused = gate?.refusal(b);
      if (refused !== undefined) return new BatchWaits(refused);
      try {
        const ids = insertBatch(b, times);
        gate?.settled(b, true);
        return ids;
      } catch (err) {
        gate?.settled(b, false);
        return err as Error;
      }
    };
    // inside this transaction each insertBatch runs as a savepoint (better-sqlite3 nests them)
    const group = db.transaction((batches: readonly Pending[], times: number[][], gate?: GroupGate) => batches.map((b, k) => each(b, times[k]!, gate)));
    // a batch alone is its own transaction: no savepoint, whose journal copies every page the batch changes
    this.insertGroup = (batches, times, gate) => (batches.length === 1 ? [each(batches[0]!, times[0]!, gate)] : group(batches, times, gate));
    this.rowCount = countRows(db);
    this.retention = new Retention(db, opts, {
      log: opts.log,
      now: opts.now,
      metrics: opts.metrics,
      rows: () => this.rowCount,
      onDeleted: (n) => {
        this.rowCount -= n;
        opts.onDeleted?.(n);
      },
      isClosed: () => this.closed,
    });
  }

  /** Store one batch in one transaction (`jsons[i]` is `records[i]`'s stored JSON). */
  commit(meta: BatchMeta, records: readonly FlowRecord[], jsons: readonly string[]): Committed {
    const r = this.commitGroup([{ meta, records, jsons }])[0]!;
    if (r instanceof Error) throw r;
    return r;
  }

  /**
   * Store several batches in one transaction — one commit, and the pages they share (indexes, the
   * rollup) written to the WAL once — each in its own savepoint: a batch that fails (its Error in
   * its place) leaves the others stored. When the commit itself fails, it throws: nothing stored.
   * A group of one batch is its transaction, without a savepoint (it fails alone anyway: its Error).
   */
  commitGroup(batches: readonly Pending[], gate?: GroupGate): Array<Committed | Error> {
    const times = batches.map((b) => b.records.map((f) => Date.parse(f.time)));
    const ids = this.insertGroup(batches, times, gate);
    return ids.map((id, k) => {
      if (id instanceof Error) return id;
      let late = false;
      if (id !== undefined) {
        this.rowCount += id.length;
        let oldest = Infinity;
        for (const t of times[k]!) if (t < oldest) oldest = t;
        late = Math.floor(oldest / MINUTE_MS) <= Math.floor(this.opts.now() / MINUTE_MS) - LIVE_MINUTES;
        this.pruneRollup();
        this.retention.noteIngested(id.length);
      }
      return { ids: id, late, rollupFloor: this.rollupFloor };
    });
  }

  rows(): number {
    return this.rowCount;
  }

  /** Stop retention (waiting for a running pass); the caller closes the database. */
  async stop(): Promise<void> {
    this.closed = true;
    await this.retention.stop();
  }

  /** Minutes of rollup older than the rollup retention go, at most once a minute (each commit asks). */
  private pruneRollup(): void {
    const now = this.opts.now();
    if (now - this.rollupPrunedAt < MINUTE_MS) return;
    this.rollupPrunedAt = now;
    const n = this.rollup.pruneBefore(now - this.rollupRetentionMs);
    this.rollupFloor = Math.floor((now - this.rollupRetentionMs) / MINUTE_MS);
    if (n > 0) this.opts.log.debug({ rows: n }, 'edge rollup pruned');
  }
}

/** Flow rows stored, from the per-node counts. */
export function countRows(db: Database.Database): number {
  return (db.prepare('SELECT coalesce(sum(stored), 0) AS n FROM node_rows').get() as { n: number }).n;
}

/** A database of schema 1 had no rollup: rebuild it from the flows newer than `since`. */
export function backfillRollup(db: Database.Database, since: number, log: Logger): void {
  const rollup = new EdgeRollup(db);
  const rows = db.prepare('SELECT time_ms, json FROM flows WHERE time_ms >= ? ORDER BY time_ms').iterate(since) as IterableIterator<{ time_ms: number; json: string }>;
  let n = 0;
  const chunk: { flows: FlowRecord[]; times: number[] } = { flows: [], times: [] };
  const flush = db.transaction(() => {
    rollup.add(chunk.flows, chunk.times);
  });
  for (const r of rows) {
    chunk.flows.push(JSON.parse(r.json) as FlowRecord);
    chunk.times.push(r.time_ms);
    if (chunk.flows.length === 5000) {
      flush();
      n += chunk.flows.length;
      chunk.flows = [];
      chunk.times = [];
    }
  }
  flush();
  n += chunk.flows.length;
  log.info({ flows: n }, 'edge rollup rebuilt from stored flows');
}

/**
 * Pages of a new flow store. A commit writes every page it changed to the WAL, two writes each
 * (frame header, page), and a checkpoint copies them again: a batch of 500 flows changes ~115
 * table pages of 4 KiB (~30 of 16 KiB) and a leaf of each index per workload it names; with the
 * bench's flows 16 KiB pages take ~2.7 times fewer writes (docs/architecture.md "Collector ingest").
 */
export const PAGE_BYTES = 16 * 1024;
/** The WAL is checkpointed into the database when it holds this much (SQLite's default is 1000 pages: 4 MiB of 4 KiB pages). */
const CHECKPOINT_BYTES = 16 * 1024 * 1024;
/** Page cache of each connection (SQLite's default is 2 MiB): the last leaf of every index for each workload flows name stays in memory. */
const CACHE_KIB = 32 * 1024;

/** The database with our pragmas and schema, and the schema version it had (0: new); one-line errors that name the file. */
export function openDatabase(file: string): { db: Database.Database; from: number } {
  let db: Database.Database;
  let from: number;
  try {
    db = new Database(file);
  } catch (err) {
    if (errorCode(err) === 'ERR_DLOPEN_FAILED' || /better_sqlite3\.node|bindings file/.test((err as Error).message ?? '')) {
      throw new PalisadeError('PALISADE_ERR_NATIVE_LOAD', `cannot load better-sqlite3's native module (reinstall with npm ci): ${describeCause(err)}`, { cause: err });
    }
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot open ${file}: ${describeCause(err)}`, { cause: err });
  }
  try {
    // flows say who talks to whom: owner only, like the CA key (the WAL and SHM files inherit it)
    chmodSync(file, 0o600);
    // only a new file takes it (before its first write); an existing one keeps the pages it has
    db.pragma(`page_size = ${PAGE_BYTES}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 2000');
    db.pragma('journal_size_limit = 67108864');
    db.pragma(`wal_autocheckpoint = ${Math.ceil(CHECKPOINT_BYTES / (db.pragma('page_size', { simple: true }) as number))}`);
    db.pragma(`cache_size = -${CACHE_KIB}`);
    from = db.pragma('user_version', { simple: true }) as number;
    // 1 → 2 only adds the edge rollup (rebuilt from the stored flows by the store); 2 → 3 the route column; 3 → 4 grpc_status
    if (from !== 0 && from !== 1 && from !== 2 && from !== 3 && from !== SCHEMA_VERSION) {
      throw new Error(`schema version ${from}, this collector knows ${SCHEMA_VERSION}`);
    }
    db.exec(SCHEMA);
    const columns = db.prepare('SELECT name FROM pragma_table_info(\'flows\')').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'route')) db.transaction(() => db.exec(ROUTE_COLUMN.add))();
    if (!columns.some((c) => c.name === 'grpc_status')) db.transaction(() => db.exec(GRPC_STATUS_COLUMN))();
    db.exec(ROUTE_COLUMN.index);
  } catch (err) {
    db.close();
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot use ${file}: ${describeCause(err)}`, { cause: err });
  }
  return { db, from };
}
