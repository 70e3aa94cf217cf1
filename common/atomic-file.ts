/** Files that readers see whole or not at all: write a temp file, fsync, rename over. */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { PalisadeError } from './errors';

/** Write `data` to `file` with `mode` atomically; PALISADE_ERR_DATA_DIR (one line) on failure. */
export function writeFileAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
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
