/**
 * Durable SQLite commits without their fsync on the event loop. A database in WAL mode with
 * synchronous=NORMAL writes a commit's frames to its `-wal` file (into the page cache) and returns
 * without syncing it; syncing that file afterwards makes the commit as durable as
 * synchronous=FULL would have (SQLite's own checkpoints sync the WAL and the database file
 * themselves). `later()` runs the fdatasync in the thread pool (fs.promises) and resolves once a
 * sync that began after the call is done — what a caller awaits before it acknowledges the
 * commit; `now()` syncs on the caller's thread, for callers that cannot wait. The first sync of a
 * file also syncs its directory (the `-wal` file's entry, as SQLite does when it creates it).
 * A `-wal` file that is gone was checkpointed into the database and removed by the connection's
 * close, which syncs the database first: nothing is left to sync then.
 */
import { closeSync, existsSync, fdatasyncSync, fsyncSync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { describeCause, errorCode, PalisadeError } from '../common/errors';

export class WalSync {
  private readonly wal: string;
  private dirSynced = false;
  /** The sync running off the loop, if any. */
  private running: Promise<void> | undefined;
  /** The sync that starts after `running`: every caller since `running` began waits for it. */
  private queued: Promise<void> | undefined;
  /** The `-wal` file's directory entry is synced (by `prime` at open, or the first sync). */
  get directorySynced(): boolean {
    return this.dirSynced;
  }

  /** Syncs done, by where they ran (tests). */
  readonly counts = { now: 0, later: 0 };

  /** `dbFile`: the database in WAL mode (its connection set to synchronous=NORMAL by the caller). */
  constructor(dbFile: string) {
    this.wal = `${dbFile}-wal`;
  }

  /**
   * At open, on this thread: the directory synced now if the `-wal` file exists (the connection
   * made it), so the first commit's sync does not wait for it — under heavy writes to the same
   * file system a directory's fsync can take seconds. Not counted as a sync.
   */
  prime(): void {
    if (this.dirSynced || !existsSync(this.wal)) return;
    try {
      this.syncDirectoryNow();
    } catch (err) {
      throw this.failed(err);
    }
  }

  /** Sync what was committed so far, on this thread. PALISADE_ERR_DATA_DIR (one line) on failure. */
  now(): void {
    try {
      const fd = openSync(this.wal, 'r');
      try {
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
      if (!this.dirSynced) this.syncDirectoryNow();
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw this.failed(err);
    }
    this.counts.now++;
  }

  private syncDirectoryNow(): void {
    const dir = openSync(path.dirname(this.wal), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.dirSynced = true;
  }

  /** Sync what was committed before this call, off the event loop; rejects with PALISADE_ERR_DATA_DIR. */
  later(): Promise<void> {
    // A sync already running may have begun before the caller's commit: the caller waits for the next.
    if (!this.running) return (this.running = this.run());
    return (this.queued ??= this.running.then(
      () => this.startQueued(),
      () => this.startQueued(),
    ));
  }

  private startQueued(): Promise<void> {
    this.queued = undefined;
    return (this.running = this.run());
  }

  private async run(): Promise<void> {
    try {
      const fh = await open(this.wal, 'r');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
      if (!this.dirSynced) {
        const dir = await open(path.dirname(this.wal), 'r');
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
        this.dirSynced = true;
      }
      this.counts.later++;
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw this.failed(err);
    } finally {
      this.running = undefined;
    }
  }

  private failed(err: unknown): PalisadeError {
    return new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot sync ${this.wal}: ${describeCause(err)}`, { cause: err });
  }
}
