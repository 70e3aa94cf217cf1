/** Open a TCP connection and resolve only once it is established (or reject: refused, timed out). */
import * as net from 'node:net';
import { errorCode as errnoName } from '../../common/errors';

export function connectTcp(opts: { host: string; port: number; localAddress?: string; timeoutMs: number }): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const upstream = net.connect({
      host: opts.host,
      port: opts.port,
      allowHalfOpen: true,
      noDelay: true,
      timeout: opts.timeoutMs,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const fail = (err: Error): void => {
      upstream.destroy();
      reject(err);
    };
    upstream.once('error', fail);
    upstream.once('timeout', () => fail(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    upstream.once('connect', () => {
      upstream.off('error', fail);
      upstream.removeAllListeners('timeout');
      upstream.setTimeout(0);
      resolve(upstream);
    });
  });
}

/** What went wrong, briefly: the errno name when there is one (ECONNREFUSED), else the message. */
export function errorCode(err: unknown): string {
  const message = (err as { message?: unknown } | null | undefined)?.message;
  return errnoName(err) ?? (typeof message === 'string' ? message : String(err));
}
