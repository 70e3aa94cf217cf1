/** Splice two byte streams both ways with half-close, and tell once when both are done. */
import type { Duplex } from 'node:stream';
import { errorCode } from '../../common/errors';

export interface PipeResult {
  /** bytes client -> upstream */
  bytesSent: number;
  /** bytes upstream -> client */
  bytesReceived: number;
  /** What broke the exchange; undefined for a clean close and for an abortive one (`reset`). */
  error: Error | undefined;
  /**
   * A reset (ECONNRESET/EPIPE) after bytes went both ways: how many peers end a finished exchange
   * (curl after TLS, servers at idle timeouts). Not a failure: the flow keeps its verdict.
   */
  reset: boolean;
}

function abortiveClose(err: Error, sent: number, received: number): boolean {
  const code = errorCode(err);
  return (code === 'ECONNRESET' || code === 'EPIPE') && sent > 0 && received > 0;
}

/**
 * Works for sockets, TLS sockets and HTTP/2 streams alike. Byte counts come from
 * the chunks that passed, so they mean the same on every kind of stream.
 */
export function splice(client: Duplex, upstream: Duplex, done: (r: PipeResult) => void): void {
  let error: Error | undefined;
  let finished = false;
  let closed = 0;
  let sent = 0;
  let received = 0;
  const onClose = (): void => {
    closed += 1;
    if (closed < 2) {
      // One side is gone for good: after an error the other cannot be completed.
      if (error) (client.destroyed ? upstream : client).destroy();
      return;
    }
    if (finished) return;
    finished = true;
    const reset = error !== undefined && abortiveClose(error, sent, received);
    done({ bytesSent: sent, bytesReceived: received, error: reset ? undefined : error, reset });
  };
  const onError = (err: Error): void => {
    error ??= err;
    client.destroy();
    upstream.destroy();
  };
  client.on('data', (c: Buffer) => (sent += c.length));
  upstream.on('data', (c: Buffer) => (received += c.length));
  client.on('error', onError);
  upstream.on('error', onError);
  client.once('close', onClose);
  upstream.once('close', onClose);
  client.pipe(upstream);
  upstream.pipe(client);
}
