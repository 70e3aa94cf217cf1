/** Files that readers see whole or not at all: write a temp file, fsync, rename over. */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { describeCause, PalisadeError } from './errors';

/** A name beside `file` no other writer picks: this process, then random. */
const tempName = (file: string): string => `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;

/** Write `data` to `file` with `mode` atomically; PALISADE_ERR_DATA_DIR (one line) on failure. */
export function writeFileAtomic(file: string, data: string, mode: number): void {
  const tmp = tempName(file);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * `writeFileAtomic` off the event loop (fs.promises: the fdatasync runs in the thread pool). When
 * `cancelled()` is true once the data is on disk, the temporary file is removed and `file` left as
 * it was (a caller that stopped must not rename over what it wrote since).
 */
export async function writeFileAtomicAsync(file: string, data: string, mode: number, opts: { cancelled?: () => boolean } = {}): Promise<void> {
  const tmp = tempName(file);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    if (opts.cancelled?.()) await unlink(tmp);
    else await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot write ${file}: ${describeCause(err)}`, { cause: err });
  }
}
