/**
 * The demo's state lock: `demo up`, `demo down` and `demo pod add|remove` read and change the
 * demo (state.json, its namespaces and processes) one at a time. A kernel lock (flock through
 * native.lockFile) that dies with its holder, so there is no dead holder to take over from.
 *
 * The lock file is `state.lock` in the demo's directory, removed by its holder on release, and
 * with the whole directory by `demo down`. A waiter may lock a file that its holder has just
 * removed: it checks that the file it locked is still the one at the path, and tries again if not.
 * A waiter that finds no directory finds no demo.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isSyscallError } from '../../common/errors';
import { native } from '../../native';
import { waitFor } from '../../test/harness';

export const STATE_LOCK = 'state.lock';
const LOCK_WAIT_MS = 60_000;

type Attempt = { fd: number } | 'absent' | undefined;

/** One try: the locked fd, 'absent' (no demo directory), or undefined (held by another; try again). */
function tryLock(file: string): Attempt {
  let fd: number;
  try {
    fd = native.lockFile(file);
  } catch (err) {
    if (isSyscallError(err) && (err.code === 'EWOULDBLOCK' || err.code === 'EAGAIN')) return undefined;
    if (isSyscallError(err) && err.code === 'ENOENT') return 'absent';
    throw err;
  }
  let current: fs.Stats | undefined;
  try {
    current = fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      native.closeFd(fd);
      throw err;
    }
  }
  const locked = fs.fstatSync(fd);
  if (current && current.ino === locked.ino && current.dev === locked.dev) return { fd };
  native.closeFd(fd); // its holder removed it between our open and our flock
  return undefined;
}

/**
 * Run `fn` holding the demo's state lock (waiting up to a minute for it); `absent` answers instead
 * when there is no demo directory.
 */
export async function withStateLock<T>(dir: string, fn: () => Promise<T>, absent: () => T): Promise<T> {
  const file = path.resolve(dir, STATE_LOCK);
  const got = await waitFor(() => tryLock(file), LOCK_WAIT_MS, { what: `the demo's state lock (${file})` });
  if (got === 'absent') return absent();
  try {
    return await fn();
  } finally {
    fs.rmSync(file, { force: true });
    native.closeFd(got.fd);
  }
}
