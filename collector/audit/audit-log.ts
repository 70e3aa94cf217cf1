/**
 * The collector's tamper-evident audit log: every policy change and every denied-flow summary, one
 * record each of an HMAC-SHA256 hash chain in `<data dir>/audit.db`, keyed by `audit.key`, its end
 * anchored in `audit.head` (the files: audit-files.ts). Append, list, verify. What the chain
 * proves and against whom, and what happens when the head does not match the database:
 * docs/architecture.md "The audit log".
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as path from 'node:path';
import type Database from 'better-sqlite3';
import { writeFileAtomic } from '../../common/atomic-file';
import { AUDIT_KINDS, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT, type AuditKind, type AuditRecord, type AuditVerifyResponse } from '../../common/control-api';
import { describeCause, errorCode, invalidArgument, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { isRecord } from '../../common/record';
import { Slice } from '../../common/slice';
import { WalSync } from '../wal-sync';
import { dataDirError, HASH_RE, HeadWriter, openAuditDatabase, readHead, readKey, writeHead, type Head, type Tail } from './audit-files';

export const AUDIT_DB_FILE = 'audit.db';
export const AUDIT_KEY_FILE = 'audit.key';
export const AUDIT_HEAD_FILE = 'audit.head';
/** verify lists at most this many problems (and then says how many more there are). */
export const MAX_AUDIT_PROBLEMS = 100;
/** `prev` of record 1. */
export const GENESIS_HASH = '0'.repeat(64);

const COLUMNS = 'seq, time, kind, actor, data, prev, hash';
const ACTOR_RE = /^[\x21-\x7e]{1,128}$/;
/** Largest `since` a Date can render. */
const MAX_TIME_MS = 8.64e15;
/** How many broken records verify compares with each other to tell a swap from an edit. */
const MAX_SWAP_CANDIDATES = 200;

export interface AuditLogOptions {
  dataDir: string;
  log: Logger;
  /** Clock for record times (tests). */
  now?: () => number;
}

export interface AuditQuery {
  /** Records at or after this time (epoch ms). */
  since?: number;
  /** The newest this many (default 100, at most 10000), returned oldest first. */
  limit?: number;
  kind?: AuditKind;
}

/** A row as SQLite hands it back: anyone may have changed its columns, types included. */
interface Row {
  seq: number;
  time: unknown;
  kind: unknown;
  actor: unknown;
  data: unknown;
  prev: unknown;
  hash: unknown;
}

/** What a record's hash covers, apart from its seq. */
interface Content {
  time: string;
  kind: string;
  actor: string;
  data: unknown;
  prev: string;
}

/** JSON with object keys sorted (by UTF-16 code units) and no white space; undefined members dropped. */
export function canonicalJson(value: unknown): string {
  const plain: unknown = JSON.parse(JSON.stringify(value) ?? 'null');
  return canonical(plain);
}

/**
 * A record's data made canonical ahead of its append, in slices (`CanonicalData.of`): a policy
 * change's record lists thousands of policies, made canonical at once it held the event loop for
 * milliseconds. `appendSynced` stores its text as it is.
 */
export class CanonicalData {
  private constructor(readonly text: string) {}

  static async of(data: Record<string, unknown>, sliceMs: number): Promise<CanonicalData> {
    return new CanonicalData(await canonicalJsonSliced(data, sliceMs));
  }
}

/**
 * `canonicalJson(data)` of an object whose lists may hold thousands of items, each item made
 * canonical in slices of about `sliceMs` between which the event loop runs. The same text.
 */
async function canonicalJsonSliced(data: Record<string, unknown>, sliceMs: number): Promise<string> {
  const slice = new Slice(sliceMs);
  const members: string[] = [];
  for (const key of Object.keys(data).sort()) {
    const value = data[key];
    if (JSON.stringify(Array.isArray(value) ? [] : value) === undefined) continue; // dropped, as JSON.stringify drops it
    let text: string;
    if (Array.isArray(value)) {
      const items: string[] = [];
      for (const item of value) {
        items.push(canonicalJson(item));
        await slice.pass();
      }
      text = `[${items.join(',')}]`;
    } else {
      text = canonicalJson(value);
    }
    members.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${members.join(',')}}`;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}


export class AuditLog {
  private readonly insert: (row: unknown[]) => void;
  private readonly sql: {
    list: Database.Statement;
    count: Database.Statement;
    hashAt: Database.Statement;
    all: Database.Statement;
    after: Database.Statement;
  };
  private tail: Tail;
  /** Why audit.head is left alone (it does not match the database); undefined: it follows appends. */
  private anchorProblem: string | undefined;
  private closed = false;
  private readonly head: HeadWriter;
  /** Makes each append durable (the connection does not sync its commits: audit-files.ts). */
  readonly walSync: WalSync;

  private constructor(
    private readonly db: Database.Database,
    private readonly key: Buffer,
    private readonly files: { db: string; head: string },
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.head = new HeadWriter(files.head);
    this.walSync = new WalSync(files.db);
    const insert = db.prepare(`INSERT INTO audit (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.insert = db.transaction((row: unknown[]) => void insert.run(row));
    this.sql = {
      // null filters match everything: one statement serves every query
      list: db.prepare(
        `SELECT * FROM (SELECT ${COLUMNS} FROM audit WHERE (@since IS NULL OR time >= @since) AND (@kind IS NULL OR kind = @kind) ORDER BY seq DESC LIMIT @limit) ORDER BY seq`,
      ),
      count: db.prepare('SELECT count(*) AS n FROM audit'),
      hashAt: db.prepare('SELECT hash FROM audit WHERE seq = ?'),
      all: db.prepare(`SELECT ${COLUMNS} FROM audit ORDER BY seq`),
      after: db.prepare(`SELECT ${COLUMNS} FROM audit WHERE seq > ? ORDER BY seq`),
    };
    const last = db.prepare(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).get() as { seq: number; hash: unknown } | undefined;
    this.tail = last ? { seq: last.seq, hash: String(last.hash) } : { seq: 0, hash: GENESIS_HASH };
    this.walSync.prime();
  }

  /**
   * Open (or create) `<dataDir>/audit.db` with its key and head. PALISADE_ERR_DATA_DIR (one line)
   * for a malformed or exposed key, a key missing beside existing records, an unusable database.
   */
  static open(opts: AuditLogOptions): AuditLog {
    const log = opts.log.child({ component: 'audit-log' });
    const keyFile = path.join(opts.dataDir, AUDIT_KEY_FILE);
    const files = { db: path.join(opts.dataDir, AUDIT_DB_FILE), head: path.join(opts.dataDir, AUDIT_HEAD_FILE) };
    let key = readKey(keyFile);
    const db = openAuditDatabase(files.db);
    let audit: AuditLog;
    try {
      if (!key) {
        const rows = (db.prepare('SELECT count(*) AS n FROM audit').get() as { n: number }).n;
        const head = readHead(files.head);
        if (rows > 0 || (head.state === 'ok' && head.seq > 0)) {
          const what = rows > 0 ? `${files.db} holds ${rows} records` : `${files.head} says ${head.state === 'ok' ? head.seq : 0} records were written`;
          throw dataDirError(`${keyFile} is missing but ${what}: restore the key, or move audit.db, audit.head aside to start a new log`);
        }
        key = randomBytes(32);
        writeFileAtomic(keyFile, `${key.toString('hex')}\n`, 0o600);
        log.info({ file: keyFile }, 'audit key created');
      }
      audit = new AuditLog(db, key, files, log, opts.now ?? Date.now);
      audit.checkAnchor();
    } catch (err) {
      db.close();
      throw err;
    }
    log.info({ file: files.db, records: audit.count(), head: audit.tail.seq }, 'audit log opened');
    return audit;
  }

  /** Append one record (one transaction, synced to disk) and move audit.head to it; returns the record. */
  append(kind: AuditKind, actor: string, data: Record<string, unknown>): AuditRecord {
    const record = this.store(kind, actor, data);
    this.walSync.now();
    if (this.anchorProblem === undefined) {
      try {
        this.head.write(this.tail);
      } catch (err) {
        // The record is stored; verify says the head lags until an append writes it again.
        this.log.error({ err, seq: record.seq }, 'cannot write audit.head');
      }
    }
    return record;
  }

  /**
   * `append`, with the commit's sync and audit.head's move off the event loop (their fdatasyncs in
   * the thread pool, at the same time): resolves once the record is on disk and the head names it,
   * so a change acknowledged after it is as durable and anchored as one from `append`; rejects
   * (PALISADE_ERR_DATA_DIR) when the record cannot be synced. The record is committed (and the
   * chain's tail moved to it) before this returns its promise.
   */
  async appendAnchored(kind: AuditKind, actor: string, data: Record<string, unknown>): Promise<AuditRecord> {
    const { record, anchored } = await this.appendSynced(kind, actor, data);
    await anchored;
    return record;
  }

  /**
   * `appendAnchored` in two steps: resolves once the record is on disk (what must come before the
   * change it records is made durable), with `anchored`, which settles once audit.head names it
   * (never rejects: a head that cannot be written is logged, as `append` does), so a caller can
   * make its own change durable while the head is written.
   */
  async appendSynced(kind: AuditKind, actor: string, data: Record<string, unknown> | CanonicalData): Promise<{ record: AuditRecord; anchored: Promise<void> }> {
    const record = this.store(kind, actor, data);
    const anchored = (this.anchorProblem === undefined ? this.head.writeLater(this.tail) : Promise.resolve()).catch((err: unknown) => {
      this.log.error({ err, seq: record.seq }, 'cannot write audit.head');
    });
    try {
      await this.walSync.later();
    } catch (err) {
      await anchored;
      throw err;
    }
    return { record, anchored };
  }

  /** The record appended to the database (one transaction), the tail moved to it; audit.head not yet. */
  private store(kind: AuditKind, actor: string, data: Record<string, unknown> | CanonicalData): AuditRecord {
    const canonicalData = data instanceof CanonicalData ? data.text : undefined;
    this.ensureOpen();
    if (!AUDIT_KINDS.includes(kind)) throw new PalisadeError('PALISADE_ERR_INTERNAL', `unknown audit record kind ${JSON.stringify(String(kind).slice(0, 64))}`);
    if (typeof actor !== 'string' || !ACTOR_RE.test(actor)) throw new PalisadeError('PALISADE_ERR_INTERNAL', `invalid audit actor ${JSON.stringify(String(actor).slice(0, 64))}`);
    const plain: unknown = JSON.parse(canonicalData ?? JSON.stringify(data) ?? 'null');
    if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) throw new PalisadeError('PALISADE_ERR_INTERNAL', 'audit record data must be an object');
    const seq = this.tail.seq + 1;
    const content: Content = { time: new Date(this.now()).toISOString(), kind, actor, data: plain, prev: this.tail.hash };
    // Made canonical once: the row's data and the hashed text hold the same (a big change's record is large).
    const dataText = canonicalData ?? canonical(plain);
    const hash = this.hashText(hashedText(seq, content, dataText));
    try {
      this.insert([seq, content.time, kind, actor, dataText, content.prev, hash]);
    } catch (err) {
      if (errorCode(err) === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw dataDirError(`cannot append audit record ${seq}: ${this.files.db} already holds a record ${seq}, written by something other than this collector`, err);
      }
      throw dataDirError(`cannot append to ${this.files.db}: ${describeCause(err)}`, err);
    }
    this.tail = { seq, hash };
    this.log.debug({ seq, kind, actor }, 'audit record appended');
    return { seq, time: content.time, kind, actor, data: plain as Record<string, unknown>, prev: content.prev, hash };
  }

  /** The newest `limit` records matching `q`, oldest first. PALISADE_ERR_INVALID_ARGUMENT for bad values. */
  list(q: AuditQuery = {}): AuditRecord[] {
    this.ensureOpen();
    if (q.since !== undefined && !(Number.isFinite(q.since) && q.since >= 0 && q.since <= MAX_TIME_MS)) throw invalidArgument('since must be a time in epoch milliseconds');
    if (q.kind !== undefined && !AUDIT_KINDS.includes(q.kind)) throw invalidArgument(`kind must be ${AUDIT_KINDS.join(' or ')}`);
    const limit = q.limit ?? DEFAULT_AUDIT_LIMIT;
    if (!(Number.isSafeInteger(limit) && limit >= 1)) throw invalidArgument(`limit must be a whole number from 1 to ${MAX_AUDIT_LIMIT}`);
    // ISO times of one format compare as text
    const since = q.since === undefined ? null : new Date(Math.floor(q.since)).toISOString();
    const rows = this.sql.list.all({ since, kind: q.kind ?? null, limit: Math.min(limit, MAX_AUDIT_LIMIT) }) as Row[];
    return rows.map(recordOf);
  }

  /** Records in the database. */
  count(): number {
    this.ensureOpen();
    return (this.sql.count.get() as { n: number }).n;
  }

  /**
   * Walk the whole log in seq order and say where the chain breaks: edited, forged, deleted,
   * swapped or moved records, and an end that does not match audit.head. Problems are ordered by
   * seq (first break first), at most MAX_AUDIT_PROBLEMS of them plus one line counting the rest.
   */
  verify(): AuditVerifyResponse {
    this.ensureOpen();
    // While audit.head is being moved off the loop (a change not yet acknowledged), its end is the tail.
    const head: Head = this.anchorProblem === undefined && this.head.busy ? { state: 'ok', ...this.tail } : readHead(this.files.head);
    const headSeq = head.state === 'ok' ? head.seq : undefined;
    const problems: Array<{ seq: number; problem: string }> = [];
    /** Rows whose hash does not verify: candidates for "holds the content of another record". */
    const broken: Array<{ at: number; seq: number; content: Content; hash: string }> = [];
    /** seqs that are not where they should be (broken rows, gaps): where moved content may come from. */
    const homes: number[] = [];
    let records = 0;
    let expected = 1;
    let prev: { seq: number; hash: string; valid: boolean } | undefined;
    let intact = 0;
    let headRow: { hash: string; valid: boolean } | undefined;
    for (const row of this.sql.all.iterate() as IterableIterator<Row>) {
      records++;
      const seq = row.seq;
      if (seq > expected) {
        const gap = seq - expected === 1 ? `record ${expected} is missing (deleted)` : `records ${expected} to ${seq - 1} are missing (deleted)`;
        problems.push({ seq: expected, problem: gap });
        for (let s = expected; s < seq && homes.length < MAX_SWAP_CANDIDATES; s++) homes.push(s);
      }
      const content = contentOf(row);
      const hash = typeof row.hash === 'string' ? row.hash : '';
      const valid = content !== undefined && this.hashMatches(seq, content, hash);
      if (!valid) {
        if (seq < 1 || (headSeq !== undefined && seq > headSeq)) {
          problems.push({ seq, problem: `record ${seq} was forged: its hash does not verify${seq < 1 ? '' : ` and audit.head ends at ${headSeq}`}` });
        } else {
          if (content && broken.length < MAX_SWAP_CANDIDATES) broken.push({ at: problems.length, seq, content, hash });
          problems.push({ seq, problem: `record ${seq} was modified: its hash does not match its content` });
        }
        if (homes.length < MAX_SWAP_CANDIDATES) homes.push(seq);
      } else if (prev && prev.seq === seq - 1 && prev.valid && content.prev !== prev.hash) {
        problems.push({ seq, problem: `record ${seq} does not follow record ${seq - 1} (reordered or removed)` });
      } else if (seq === 1 && content.prev !== GENESIS_HASH) {
        problems.push({ seq, problem: 'record 1 does not start the chain (its prev is not 64 zeros)' });
      }
      if (seq === headSeq) headRow = { hash, valid };
      if (problems.length === 0) intact = seq;
      prev = { seq, hash, valid };
      expected = seq + 1;
    }
    const last = prev?.seq ?? 0;
    this.explainMoves(broken, homes, problems);
    problems.push(...this.headProblems(head, last, headRow));
    problems.sort((a, b) => a.seq - b.seq);
    if (problems.length > MAX_AUDIT_PROBLEMS) {
      const more = problems.length - MAX_AUDIT_PROBLEMS;
      const next = problems[MAX_AUDIT_PROBLEMS]!.seq;
      problems.length = MAX_AUDIT_PROBLEMS;
      problems.push({ seq: next, problem: `${more} more problem${more === 1 ? '' : 's'} from record ${next} on, not listed` });
    }
    const ok = problems.length === 0;
    return { ok, records, head: ok ? last : intact, problems };
  }

  /** Close the database; appends and queries fail afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.anchorProblem === undefined) {
      try {
        this.head.stop(this.tail);
      } catch (err) {
        this.log.error({ err, seq: this.tail.seq }, 'cannot write audit.head');
      }
    }
    this.db.close();
    this.log.info('audit log closed');
  }

  /** A broken row whose content verifies under another broken (or missing) seq was moved, not edited. */
  private explainMoves(broken: ReadonlyArray<{ at: number; seq: number; content: Content; hash: string }>, homes: readonly number[], problems: Array<{ seq: number; problem: string }>): void {
    for (const b of broken) {
      const home = homes.find((s) => s !== b.seq && this.hashMatches(s, b.content, b.hash));
      if (home !== undefined) problems[b.at] = { seq: b.seq, problem: `record ${b.seq} holds the content of record ${home} (records swapped or moved)` };
    }
  }

  /** The end of the log against audit.head. */
  private headProblems(head: Head, last: number, headRow: { hash: string; valid: boolean } | undefined): Array<{ seq: number; problem: string }> {
    if (head.state === 'missing') return [{ seq: last, problem: `${AUDIT_HEAD_FILE} is missing: the end of the log cannot be checked` }];
    if (head.state === 'bad') return [{ seq: last, problem: `${AUDIT_HEAD_FILE} ${head.why}: the end of the log cannot be checked` }];
    if (head.seq > last) {
      const what = last === 0 ? 'all records are missing' : `records after ${last} are missing`;
      return [{ seq: last + 1, problem: `${what} (head says ${head.seq})` }];
    }
    const out: Array<{ seq: number; problem: string }> = [];
    if (head.seq === 0 ? head.hash !== GENESIS_HASH : headRow?.valid === true && headRow.hash !== head.hash) {
      out.push({ seq: head.seq, problem: `record ${head.seq} is not the one ${AUDIT_HEAD_FILE} names (the log was replaced or rolled back)` });
    }
    if (head.seq < last) {
      out.push({ seq: head.seq + 1, problem: `records after ${head.seq} are not anchored: ${AUDIT_HEAD_FILE} says ${head.seq}, the log ends at ${last}` });
    }
    return out;
  }

  /**
   * At open: does audit.head name the last record? A head behind a tail that verifies and
   * follows it (a crash between commit and head write) moves to the end; any other mismatch
   * freezes the head (see the header comment).
   */
  private checkAnchor(): void {
    const head = readHead(this.files.head);
    let problem: string;
    if (head.state === 'missing') {
      if (this.tail.seq === 0) {
        writeHead(this.files.head, this.tail);
        return;
      }
      problem = `${AUDIT_HEAD_FILE} is missing but the log holds records up to ${this.tail.seq}`;
    } else if (head.state === 'bad') {
      problem = `${AUDIT_HEAD_FILE} ${head.why}`;
    } else if (head.seq === this.tail.seq && head.hash === this.tail.hash) {
      return;
    } else if (head.seq < this.tail.seq && this.followsFrom(head)) {
      this.log.warn({ head: head.seq, tail: this.tail.seq }, 'audit.head lagged behind the log (interrupted append): moved to the end');
      writeHead(this.files.head, this.tail);
      return;
    } else {
      problem = `${AUDIT_HEAD_FILE} names record ${head.seq} but the log ends at ${this.tail.seq}${head.seq === this.tail.seq ? ' with another record' : ''}`;
    }
    this.anchorProblem = problem;
    this.log.error({ problem }, 'the audit log does not match its head: audit.head is kept as it is, and audit verify reports it until the log is moved aside');
  }

  /** Whether the records after `head` verify and chain on from it. */
  private followsFrom(head: { seq: number; hash: string }): boolean {
    let prevHash = head.hash;
    if (head.seq > 0) {
      const row = this.sql.hashAt.get(head.seq) as { hash: unknown } | undefined;
      if (!row || row.hash !== head.hash) return false;
    } else if (head.hash !== GENESIS_HASH) return false;
    let expected = head.seq + 1;
    for (const row of this.sql.after.iterate(head.seq) as IterableIterator<Row>) {
      const content = contentOf(row);
      if (row.seq !== expected || !content || content.prev !== prevHash || !this.hashMatches(row.seq, content, String(row.hash))) return false;
      prevHash = String(row.hash);
      expected++;
    }
    return true;
  }

  private hashOf(seq: number, c: Content): string {
    return this.hashText(hashedText(seq, c, canonical(c.data)));
  }

  private hashText(text: string): string {
    return createHmac('sha256', this.key).update(text, 'utf8').digest('hex');
  }

  private hashMatches(seq: number, c: Content, hash: string): boolean {
    if (!HASH_RE.test(hash)) return false;
    return timingSafeEqual(Buffer.from(this.hashOf(seq, c), 'hex'), Buffer.from(hash, 'hex'));
  }

  private ensureOpen(): void {
    if (this.closed) throw new PalisadeError('PALISADE_ERR_INTERNAL', 'the audit log is closed');
  }
}

/**
 * What a record's hash covers: `canonical({seq, time, kind, actor, data, prev})`, written out with
 * its keys in their sorted order around `dataText` (`canonical(c.data)`, made once by the caller).
 */
function hashedText(seq: number, c: Content, dataText: string): string {
  const s = JSON.stringify;
  return `{"actor":${s(c.actor)},"data":${dataText},"kind":${s(c.kind)},"prev":${s(c.prev)},"seq":${s(seq)},"time":${s(c.time)}}`;
}

/** The hashed content of a row, or undefined when a column has the wrong type or data is not canonical JSON. */
function contentOf(row: Row): Content | undefined {
  const { time, kind, actor, data, prev } = row;
  if (typeof time !== 'string' || typeof kind !== 'string' || typeof actor !== 'string' || typeof data !== 'string' || typeof prev !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (canonical(parsed) !== data) return undefined;
  return { time, kind, actor, data: parsed, prev };
}

/** A row as the API shows it; columns someone broke are shown as they are, never thrown over. */
function recordOf(row: Row): AuditRecord {
  let data: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(String(row.data));
    data = isRecord(parsed) ? parsed : { unreadable: String(row.data).slice(0, 1024) };
  } catch {
    data = { unreadable: String(row.data).slice(0, 1024) };
  }
  return {
    seq: row.seq,
    time: String(row.time),
    kind: String(row.kind) as AuditKind,
    actor: String(row.actor),
    data,
    prev: String(row.prev),
    hash: String(row.hash),
  };
}
