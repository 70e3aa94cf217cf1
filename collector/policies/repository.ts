/**
 * The collector's policies, versioned, in `<data dir>/policies.db` (SQLite, WAL, mode 0600).
 *
 * `objects` holds the policies in force, one row per kind/namespace/name, each with a stable id
 * (AUTOINCREMENT: never reused, so `egress remove 7` cannot hit a later policy). `versions` holds
 * every change: its number, time, author, action and the per-object YAML diffs, so the history
 * of any policy can be told without keeping every full snapshot. A version is written in one
 * transaction with the object rows it changes: a crash leaves the previous version or the next.
 */
import { chmodSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import type { ChangeOp, PolicyChange, PolicyKind, PolicyOrigin, PolicySummary, PolicyVersionRecord } from '../../common/control-api';
import { describeCause, PalisadeError } from '../../common/errors';
import { Slice } from '../../common/slice';
import type { CompiledPolicy } from '../../common/policy';
import { jsonArraySliced } from '../api/respond';
import { WalSync } from '../wal-sync';
import { lineDiff } from './diff';
import { manifestText } from './manifest-text';

export const POLICIES_DB_FILE = 'policies.db';
/** The connection's page cache (KiB): what a transaction may hold before it spills pages to the WAL. */
const CACHE_KIB = 256;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS versions (
  version INTEGER PRIMARY KEY,
  time    TEXT NOT NULL,
  author  TEXT NOT NULL,
  action  TEXT NOT NULL,
  changes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  kind      TEXT NOT NULL,
  namespace TEXT NOT NULL,
  name      TEXT NOT NULL,
  origin    TEXT NOT NULL,
  file      TEXT,
  manifest  TEXT NOT NULL,
  version   INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_key ON objects (kind, namespace, name);
`;

/** A policy as the store wants it to be (what an apply, a delete or the policy directory asks for). */
export interface DesiredPolicy {
  kind: PolicyKind;
  namespace: string;
  name: string;
  origin: PolicyOrigin;
  file?: string;
  manifest: Record<string, unknown>;
}

export interface StoredPolicy extends DesiredPolicy {
  id: number;
  version: number;
}

export interface Plan {
  changes: PolicyChange[];
  /** The set in force after the change. */
  next: DesiredPolicy[];
  /** Something other than `unchanged`. */
  changed: boolean;
  /** `JSON.stringify` of the changes other than `unchanged` (the version row's), when the plan was made where that costs nothing. */
  changedText?: string;
}

export const policyKey = (p: { kind: string; namespace: string; name: string }): string => `${p.kind}/${p.namespace}/${p.name}`;

/** A compiled policy as the store wants it, from the API or (with its file) the policy directory. */
export function desiredPolicy(p: Pick<CompiledPolicy, 'kind' | 'namespace' | 'name' | 'manifest'>, origin: PolicyOrigin, file?: string): DesiredPolicy {
  return {
    kind: p.kind,
    namespace: p.namespace,
    name: p.name,
    origin,
    ...(file === undefined ? {} : { file }),
    manifest: p.manifest as Record<string, unknown>,
  };
}

/** A manifest as the YAML `policy get` prints and diffs are made of. */
export const manifestYaml = (manifest: Record<string, unknown>): string => stringify(manifest, { lineWidth: 0 });

/**
 * What changes from `current` to `next`, object by object, in a stable order (kind, namespace,
 * name). Origin or file changes alone count as updates (the policy moved between the CLI and the
 * policy directory).
 */
export function planChanges(current: readonly StoredPolicy[], next: readonly DesiredPolicy[]): Plan {
  const changes: PolicyChange[] = [];
  for (const _ of planSteps(current, next, changes));
  return { changes, next: [...next], changed: changes.some((c) => c.op !== 'unchanged') };
}

/**
 * `planChanges`, in slices of about `sliceMs` between which the event loop runs: the YAML of a
 * changed policy and its diff cost about a millisecond each, a change of hundreds of policies
 * would otherwise hold the collector that long.
 */
export async function planChangesSliced(current: readonly StoredPolicy[], next: readonly DesiredPolicy[], sliceMs: number): Promise<Plan> {
  const changes: PolicyChange[] = [];
  const slice = new Slice(sliceMs);
  for (const _ of planSteps(current, next, changes)) await slice.pass();
  return { changes, next: [...next], changed: changes.some((c) => c.op !== 'unchanged') };
}

/** One step per object, in a stable order (kind, namespace, name): its change goes into `changes`. */
function* planSteps(current: readonly StoredPolicy[], next: readonly DesiredPolicy[], changes: PolicyChange[]): Generator<void> {
  const before = new Map(current.map((p) => [policyKey(p), p]));
  const after = new Map(next.map((p) => [policyKey(p), p]));
  const keys = [...new Set([...before.keys(), ...after.keys()])].sort();
  for (const key of keys) {
    const b = before.get(key);
    const a = after.get(key);
    const id = (a ?? b)!;
    // Same JSON is the same YAML (both keep key order): an unchanged policy costs no YAML at all.
    const same = b !== undefined && a !== undefined && b.origin === a.origin && (b.file ?? '') === (a.file ?? '') && manifestText(b.manifest) === manifestText(a.manifest);
    if (same) {
      changes.push({ op: 'unchanged', kind: id.kind, namespace: id.namespace, name: id.name, diff: '' });
      yield;
      continue;
    }
    const oldText = b ? manifestYaml(b.manifest) : '';
    const newText = a ? manifestYaml(a.manifest) : '';
    let op: ChangeOp;
    if (!b) op = 'create';
    else if (!a) op = 'delete';
    else op = oldText === newText && b.origin === a.origin && (b.file ?? '') === (a.file ?? '') ? 'unchanged' : 'update';
    changes.push({ op, kind: id.kind, namespace: id.namespace, name: id.name, diff: op === 'unchanged' ? '' : lineDiff(oldText, newText) });
    yield;
  }
}

/** The changes a version records (its row's `changes`: with their diffs). */
export const changedOf = (plan: Pick<Plan, 'changes'>): PolicyChange[] => plan.changes.filter((c) => c.op !== 'unchanged');

/** What a change does, as its audit record lists it. */
export function changesOf(plan: Plan): Array<Pick<PolicyChange, 'op' | 'kind' | 'namespace' | 'name'>> {
  return plan.changes.filter((c) => c.op !== 'unchanged').map((c) => ({ op: c.op, kind: c.kind, namespace: c.namespace, name: c.name }));
}

interface ObjectRow {
  id: number;
  kind: PolicyKind;
  namespace: string;
  name: string;
  origin: PolicyOrigin;
  file: string | null;
  manifest: string;
  version: number;
}

interface VersionRow {
  version: number;
  time: string;
  author: string;
  action: string;
  changes: string;
}

export class PolicyRepository {
  private readonly db: Database.Database;
  private objects = new Map<string, StoredPolicy>();
  /** `objects` in order, made on first use after each commit. */
  private ordered: StoredPolicy[] | undefined;
  private readonly versionInfo = new Map<number, { time: string; author: string }>();
  private latest = 0;
  /** Makes each commit durable (the connection does not sync its commits itself). */
  readonly walSync: WalSync;

  private constructor(readonly file: string) {
    this.db = new Database(file);
    chmodSync(file, 0o600);
    this.db.pragma('journal_mode = WAL');
    // NORMAL: COMMIT does not sync; each commit syncs the WAL after it (wal-sync.ts), a sliced one off the event loop.
    this.db.pragma('synchronous = NORMAL');
    // A small page cache spills a version's pages to the WAL as its rows are written (between
    // event-loop turns, commitSliced) instead of all at its COMMIT: a version of thousands of
    // policies is hundreds of pages, written at once they held the event loop for milliseconds.
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
    this.walSync = new WalSync(file);
    this.db.exec(SCHEMA);
    for (const row of this.db.prepare('SELECT version, time, author FROM versions').all() as VersionRow[]) {
      this.versionInfo.set(row.version, { time: row.time, author: row.author });
      this.latest = Math.max(this.latest, row.version);
    }
    for (const row of this.db.prepare('SELECT * FROM objects').all() as ObjectRow[]) {
      const p: StoredPolicy = {
        id: row.id,
        kind: row.kind,
        namespace: row.namespace,
        name: row.name,
        origin: row.origin,
        ...(row.file === null ? {} : { file: row.file }),
        manifest: JSON.parse(row.manifest) as Record<string, unknown>,
        version: row.version,
      };
      this.objects.set(policyKey(p), p);
    }
    this.walSync.prime();
  }

  static open(dataDir: string): PolicyRepository {
    const file = path.join(dataDir, POLICIES_DB_FILE);
    try {
      return new PolicyRepository(file);
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot open the policy store ${file}: ${describeCause(err)}`, { cause: err });
    }
  }

  get version(): number {
    return this.latest;
  }

  /** The policies in force, ordered by kind, namespace, name. */
  current(): StoredPolicy[] {
    this.ordered ??= [...this.objects.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, p]) => p);
    return [...this.ordered];
  }

  byId(id: number): StoredPolicy | undefined {
    for (const p of this.objects.values()) if (p.id === id) return p;
    return undefined;
  }

  /** The id the next created object will get (AUTOINCREMENT: above every id ever used). */
  nextId(): number {
    const row = this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'objects'").get() as { seq: number } | undefined;
    return (row?.seq ?? 0) + 1;
  }

  summary(p: StoredPolicy): PolicySummary {
    const info = this.versionInfo.get(p.version);
    return {
      id: p.id,
      kind: p.kind,
      namespace: p.namespace,
      name: p.name,
      origin: p.origin,
      ...(p.file === undefined ? {} : { file: p.file }),
      version: p.version,
      updated: info?.time ?? '',
      author: info?.author ?? '',
    };
  }

  /**
   * Make `plan` the new version (when it changes anything): one transaction. Returns the version
   * and the ids of the objects now in force by key.
   */
  commit(plan: Plan, author: string, action: string): { version: number; ids: Map<string, number> } {
    if (!plan.changed) return this.unchanged();
    const write = this.writer(plan, author, action, JSON.stringify(changedOf(plan)));
    this.db.transaction(() => {
      for (const _ of write.steps());
    })();
    const result = this.committed(write);
    this.walSync.now();
    return result;
  }

  /**
   * `commit`, its writes made in slices of about `sliceMs` between which the event loop runs (a
   * version of thousands of policies is thousands of rows): one transaction all the same, begun
   * and committed on this connection; until it is committed nothing of it is seen (the objects
   * in memory, `version`, `history`). The caller makes sure no other commit runs meanwhile.
   * Resolves once the commit is synced to disk (off the event loop).
   */
  async commitSliced(plan: Plan, author: string, action: string, sliceMs: number): Promise<{ version: number; ids: Map<string, number> }> {
    if (!plan.changed) return this.unchanged();
    const slice = new Slice(sliceMs);
    // the version's row holds every diff (megabytes for thousands of policies): its text made by the
    // policy worker with the plan, else in slices here
    const write = this.writer(plan, author, action, plan.changedText ?? (await jsonArraySliced(changedOf(plan), slice)));
    await slice.pass();
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for (const _ of write.steps()) await slice.pass();
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
    const result = this.committed(write);
    await this.walSync.later(); // durable before it is acknowledged, its fdatasync in the thread pool
    return result;
  }

  private unchanged(): { version: number; ids: Map<string, number> } {
    return { version: this.latest, ids: new Map([...this.objects].map(([k, p]) => [k, p.id])) };
  }

  /** The rows `plan` writes, one step each, and the objects in force once they are written. */
  private writer(plan: Plan, author: string, action: string, changesText: string): { version: number; time: string; author: string; objects: Map<string, StoredPolicy>; steps: () => Generator<void> } {
    const version = this.latest + 1;
    const time = new Date().toISOString();
    const insertVersion = this.db.prepare('INSERT INTO versions (version, time, author, action, changes) VALUES (?, ?, ?, ?, ?)');
    const insertObject = this.db.prepare(
      'INSERT INTO objects (kind, namespace, name, origin, file, manifest, version) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const updateObject = this.db.prepare('UPDATE objects SET origin = ?, file = ?, manifest = ?, version = ? WHERE id = ?');
    const deleteObject = this.db.prepare('DELETE FROM objects WHERE id = ?');
    const changed = changedOf(plan);
    const next = new Map(plan.next.map((p) => [policyKey(p), p]));
    const objects = new Map(this.objects);
    function* steps(): Generator<void> {
      insertVersion.run(version, time, author, action, changesText);
      yield;
      for (const c of changed) {
        const key = policyKey(c);
        const old = objects.get(key);
        const want = next.get(key);
        if (c.op === 'delete' && old) {
          deleteObject.run(old.id);
          objects.delete(key);
        } else if (want && old) {
          updateObject.run(want.origin, want.file ?? null, manifestText(want.manifest), version, old.id);
          objects.set(key, { ...want, id: old.id, version });
        } else if (want) {
          const r = insertObject.run(want.kind, want.namespace, want.name, want.origin, want.file ?? null, manifestText(want.manifest), version);
          objects.set(key, { ...want, id: Number(r.lastInsertRowid), version });
        }
        yield;
      }
    }
    return { version, time, author, objects, steps };
  }

  private committed(w: { version: number; time: string; author: string; objects: Map<string, StoredPolicy> }): { version: number; ids: Map<string, number> } {
    this.objects = w.objects;
    this.ordered = undefined;
    this.versionInfo.set(w.version, { time: w.time, author: w.author });
    this.latest = w.version;
    return { version: w.version, ids: new Map([...w.objects].map(([k, p]) => [k, p.id])) };
  }

  /** Versions, newest first; with `key`, only those that changed that policy (and only its change). */
  history(key?: string, limit = 1000): PolicyVersionRecord[] {
    // A version being written (commitSliced) is not one until it is committed.
    const rows = this.db.prepare('SELECT * FROM versions WHERE version <= ? ORDER BY version DESC').iterate(this.latest) as IterableIterator<VersionRow>;
    const out: PolicyVersionRecord[] = [];
    for (const row of rows) {
      let changes = JSON.parse(row.changes) as PolicyChange[];
      if (key !== undefined) changes = changes.filter((c) => policyKey(c) === key);
      if (changes.length === 0) continue;
      out.push({ version: row.version, time: row.time, author: row.author, action: row.action, changes });
      if (out.length >= limit) break;
    }
    return out;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
