/** Where the collector listens: `HOST:PORT` on TCP, and an optional Unix socket for agents. */
import { lstatSync, unlinkSync } from 'node:fs';
import * as net from 'node:net';
import { describeCause, errorCode, invalidArgument, PalisadeError } from '../common/errors';

export const DEFAULT_LISTEN = '127.0.0.1:15012';

/** `127.0.0.1:15012`, `[::1]:15012`, `localhost:0`; port 0 picks a free port. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  const host = m ? (m[1] ?? m[2]) : '';
  if (!m || port > 65535 || (m[1] !== undefined && net.isIPv6(host) === false)) {
    throw invalidArgument(`invalid listen address ${JSON.stringify(text)}: expected HOST:PORT like ${DEFAULT_LISTEN}`);
  }
  return { host, port };
}

export function formatAddress(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Make `path` free for a new Unix socket: a socket nobody answers on (left by a crash) is
 * removed; a live socket or anything that is not a socket is refused.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return;
    throw new PalisadeError('PALISADE_ERR_LISTEN', `cannot use agent socket ${path}: ${describeCause(err)}`, { cause: err });
  }
  if (!isSocket) throw new PalisadeError('PALISADE_ERR_LISTEN', `agent socket ${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new PalisadeError('PALISADE_ERR_LISTEN', `agent socket ${path} is in use by another process`);
  try {
    unlinkSync(path);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') {
      throw new PalisadeError('PALISADE_ERR_LISTEN', `cannot remove stale agent socket ${path}: ${describeCause(err)}`, { cause: err });
    }
  }
}
