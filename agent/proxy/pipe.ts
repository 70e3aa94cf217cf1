/** Splice two sockets both ways with half-close, and tell once when both are done. */
import type { Socket } from 'node:net';

export interface PipeResult {
  /** bytes client -> upstream */
  bytesSent: number;
  /** bytes upstream -> client */
  bytesReceived: number;
  error: Error | undefined;
}

export function splice(client: Socket, upstream: Socket, done: (r: PipeResult) => void): void {
  let error: Error | undefined;
  let finished = false;
  let closed = 0;
  const onClose = (): void => {
    closed += 1;
    if (closed < 2) {
      // One side is gone for good: the other cannot be completed.
      if (error) (client.destroyed ? upstream : client).destroy();
      return;
    }
    if (finished) return;
    finished = true;
    done({ bytesSent: upstream.bytesWritten, bytesReceived: client.bytesWritten, error });
  };
  const onError = (err: Error): void => {
    error ??= err;
    client.destroy();
    upstream.destroy();
  };
  client.on('error', onError);
  upstream.on('error', onError);
  client.once('close', onClose);
  upstream.once('close', onClose);
  client.pipe(upstream);
  upstream.pipe(client);
}
