/**
 * A Unix socket at a fixed path that only its owner (root) can connect to. It is bound inside a
 * fresh 0700 directory, made 0600, then renamed into place: at no moment does a path name a socket
 * others could reach. A stale socket at the path (nobody answers) is replaced; a live one, or a
 * file that is not a socket, is refused and left alone.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describeCause, errorCode, PalisadeError } from './errors';

export interface PrivateSocket {
  path: string;
  /** Stop listening and remove the path, if it still names this socket. */
  close(): Promise<void>;
}

/**
 * `server` listens on `socketPath` (mode 0600); `what` names it in errors ("CNI socket"). With
 * `takeOver`, a live socket at the path is replaced too (a successor taking a node over from its
 * predecessor: new connections reach the successor, and the predecessor's close leaves the path).
 */
export async function listenPrivateSocket(server: net.Server, socketPath: string, what: string, opts: { takeOver?: boolean } = {}): Promise<PrivateSocket> {
  const dir = path.dirname(socketPath);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw listenError(`cannot create ${dir} for the ${what}: ${describeCause(err)}`, err);
  }
  await refuseLiveOrForeign(socketPath, what, opts.takeOver === true);
  const staging = fs.mkdtempSync(path.join(dir, `.${path.basename(socketPath)}-${randomBytes(4).toString('hex')}-`));
  const staged = path.join(staging, 's');
  let ino: number;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: staged }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(staged, 0o600);
    ino = fs.lstatSync(staged).ino;
    fs.renameSync(staged, socketPath);
  } catch (err) {
    server.close();
    throw listenError(`cannot listen on ${what} ${socketPath}: ${describeCause(err)}`, err);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return {
    path: socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        try {
          if (fs.lstatSync(socketPath).ino === ino) fs.unlinkSync(socketPath);
        } catch {
          /* already gone or replaced: not ours to remove */
        }
      }),
  };
}

async function refuseLiveOrForeign(socketPath: string, what: string, takeOver: boolean): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return;
    throw listenError(`cannot use ${what} ${socketPath}: ${describeCause(err)}`, err);
  }
  if (!st.isSocket()) throw listenError(`${what} ${socketPath} exists and is not a socket; refusing to replace it`);
  if (takeOver) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path: socketPath });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw listenError(`${what} ${socketPath} is in use by another process`);
}

function listenError(message: string, cause?: unknown): PalisadeError {
  return new PalisadeError('PALISADE_ERR_LISTEN', message, cause === undefined ? undefined : { cause });
}
