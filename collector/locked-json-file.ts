/**
 * A small JSON file in the collector's data directory that two processes may change: the running
 * collector and an offline `palisade collector …` command (token create, node revoke). Every
 * change is read-modify-write under a lock file (`<file>.lock`, created exclusively; one older
 * than 10 s is taken to be left by a crash) and written atomically (temp file + rename, 0600).
 * Used by the join tokens (tokens.ts) and the node records (nodes/node-records.ts).
 */
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../common/atomic-file';
import { errorCode, PalisadeError } from '../common/errors';

const LOCK_WAIT_MS = 2_000;
const LOCK_STALE_MS = 10_000;

export interface LockedJsonFileOptions<T> {
  /** What a missing file holds. */
  empty: () => T;
  /** The parsed text as T, or throw (any error: the message says what is wrong). */
  check: (parsed: unknown) => T;
  /** Named in errors: "… is not a <what> file". */
  what: string;
}

/** How often `watch` looks for changes made by another process. */
const WATCH_INTERVAL_MS = 1_000;

export class LockedJsonFile<T> {
  readonly file: string;
  private readonly lockFile: string;

  constructor(
    private readonly dataDir: string,
    name: string,
    private readonly opts: LockedJsonFileOptions<T>,
  ) {
    this.file = path.join(dataDir, name);
    this.lockFile = `${this.file}.lock`;
  }

  /** The file's content now (no lock: the file is only ever replaced whole). */
  read(): T {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return this.opts.empty();
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot read ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return this.opts.check(JSON.parse(text) as unknown);
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${this.file} is not a ${this.opts.what} file: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Read-modify-write under the lock; `change` returning false skips the write. */
  update(change: (content: T) => boolean | void): void {
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    this.lock();
    try {
      const content = this.read();
      if (change(content) === false) return;
      writeFileAtomic(this.file, `${JSON.stringify(content, null, 2)}\n`, 0o600);
    } finally {
      this.unlock();
    }
  }

  /** A cheap fingerprint of the file on disk (size, mtime, inode): changes whenever it is replaced. */
  stamp(): string {
    try {
      const st = statSync(this.file, { bigint: true });
      return `${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch {
      return 'missing';
    }
  }

  /** Call `onChange` (at most once a second) whenever the file changes, whoever changed it. */
  watch(onChange: () => void): () => void {
    let last = this.stamp();
    const timer = setInterval(() => {
      const stamp = this.stamp();
      if (stamp === last) return;
      last = stamp;
      onChange();
    }, WATCH_INTERVAL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }

  private lock(): void {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        closeSync(openSync(this.lockFile, 'wx', 0o600));
        return;
      } catch (err) {
        if (errorCode(err) !== 'EEXIST') {
          throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot lock ${this.file}: ${(err as Error).message}`, { cause: err });
        }
      }
      if (this.lockIsStale()) {
        this.unlock();
        continue;
      }
      if (Date.now() >= deadline) throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${this.lockFile} is held by another process`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }

  private lockIsStale(): boolean {
    try {
      return Date.now() - statSync(this.lockFile).mtimeMs > LOCK_STALE_MS;
    } catch {
      return false;
    }
  }

  private unlock(): void {
    try {
      unlinkSync(this.lockFile);
    } catch {
      // gone already
    }
  }
}
