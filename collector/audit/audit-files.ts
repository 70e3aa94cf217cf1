/**
 * The audit log's files in the data directory: the HMAC key (audit.key, hex, mode 0600), the head
 * that anchors the end of the chain outside the database (audit.head, `SEQ HASH`, written
 * atomically), and the SQLite database (audit.db) with its pragmas and schema. Every failure is
 * one PALISADE_ERR_DATA_DIR line naming the file (PALISADE_ERR_NATIVE_LOAD when SQLite cannot load).
 */
import { chmodSync, lstatSync, readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { writeFileAtomic, writeFileAtomicAsync } from '../../common/atomic-file';
import { describeCause, errorCode, PalisadeError } from '../../common/errors';

const SCHEMA_VERSION = 1;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit (
  seq   INTEGER PRIMARY KEY,
  time  TEXT NOT NULL,
  kind  TEXT NOT NULL,
  actor TEXT NOT NULL,
  data  TEXT NOT NULL,
  prev  TEXT NOT NULL,
  hash  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
`;
/** A record hash (and the key): 64 hex digits. */
export const HASH_RE = /^[0-9a-f]{64}$/;

/** The last record of the chain. */
export interface Tail {
  seq: number;
  hash: string;
}

/** What audit.head says, or why it cannot be trusted. */
export type Head = { state: 'ok'; seq: number; hash: string } | { state: 'missing' } | { state: 'bad'; why: string };

/** One PALISADE_ERR_DATA_DIR line. */
export const dataDirError = (message: string, cause?: unknown): PalisadeError =>
  new PalisadeError('PALISADE_ERR_DATA_DIR', message, cause === undefined ? undefined : { cause });

/** The key, or undefined when the file does not exist; one line for anything else wrong with it. */
export function readKey(file: string): Buffer | undefined {
  let text: string;
  try {
    const st = lstatSync(file);
    if (!st.isFile()) throw dataDirError(`${file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw dataDirError(`${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, refusing an audit key others can read: chmod 600 it`);
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof PalisadeError) throw err;
    if (errorCode(err) === 'ENOENT') return undefined;
    throw dataDirError(`cannot read ${file}: ${errorCode(err) ?? describeCause(err)}`, err);
  }
  const hex = text.replace(/\n$/, '');
  if (!HASH_RE.test(hex)) {
    throw dataDirError(`${file} is malformed (expected 64 hex digits, a 32-byte key): restore it, or move audit.db, audit.key and audit.head aside to start a new log`);
  }
  return Buffer.from(hex, 'hex');
}

/** What audit.head says: `SEQ HASH`, missing, or why it cannot be read. */
export function readHead(file: string): Head {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { state: 'missing' };
    return { state: 'bad', why: `cannot be read (${errorCode(err) ?? describeCause(err)})` };
  }
  const m = /^(\d{1,15}) ([0-9a-f]{64})\n?$/.exec(text);
  if (!m) return { state: 'bad', why: 'is malformed' };
  return { state: 'ok', seq: Number(m[1]), hash: m[2]! };
}

const headText = (tail: Tail): string => `${tail.seq} ${tail.hash}\n`;

/** Move the head to `tail` (atomically: a crash leaves the old head or the new). */
export function writeHead(file: string, tail: Tail): void {
  writeFileAtomic(file, headText(tail), 0o600);
}

/**
 * audit.head kept naming the end of the chain, written at once (`write`: its fsync on the caller's
 * thread) or off the event loop (`writeLater`: fs.promises, the fdatasync in the thread pool).
 * One write at a time: while one runs off the loop, later ends wait for it and only the newest is
 * written next, so the file never goes back to an older end.
 */
export class HeadWriter {
  /** The newest end not yet written while a write runs off the loop. */
  private wanted: Tail | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly file: string) {}

  /** A write runs off the loop: the file is being moved to the newest end. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Move the head to `tail` now, or, while a write runs off the loop, right after it. */
  write(tail: Tail): void {
    if (this.running) this.wanted = tail;
    else writeHead(this.file, tail);
  }

  /** Move the head to `tail` off the event loop; resolves once the file names it (or a later end). */
  writeLater(tail: Tail): Promise<void> {
    this.wanted = tail;
    return (this.running ??= this.run());
  }

  /** At close: the newest end written now, and nothing renamed afterwards by a write that was running. */
  stop(tail: Tail): void {
    this.stopped = true;
    this.wanted = undefined;
    if (this.running) writeHead(this.file, tail);
  }

  private async run(): Promise<void> {
    try {
      while (this.wanted && !this.stopped) {
        const tail = this.wanted;
        this.wanted = undefined;
        // not renamed once stopped: stop() has written the newest end itself
        await writeFileAtomicAsync(this.file, headText(tail), 0o600, { cancelled: () => this.stopped });
      }
    } finally {
      // no await between the last check of `wanted` and this: a later writeLater starts a new run
      this.running = undefined;
    }
  }
}

/** The database with our pragmas and schema; one-line errors that name the file. */
export function openAuditDatabase(file: string): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file);
  } catch (err) {
    const native = errorCode(err) === 'ERR_DLOPEN_FAILED';
    throw new PalisadeError(native ? 'PALISADE_ERR_NATIVE_LOAD' : 'PALISADE_ERR_DATA_DIR', `cannot open ${file}: ${describeCause(err)}`, { cause: err });
  }
  try {
    chmodSync(file, 0o600);
    db.pragma('journal_mode = WAL');
    // NORMAL: a commit does not sync; the log syncs the WAL itself after each append (wal-sync.ts),
    // on the event loop or, for a policy change through the API, off it.
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 2000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version !== 0 && version !== SCHEMA_VERSION) throw new Error(`schema version ${version}, this collector knows ${SCHEMA_VERSION}`);
    db.exec(SCHEMA);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  } catch (err) {
    db.close();
    throw dataDirError(`cannot use ${file}: ${describeCause(err)}`, err);
  }
  return db;
}
