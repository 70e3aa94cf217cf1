/**
 * The upstream side of one downstream connection: a keep-alive agent limited to a single
 * connection, opened lazily through the caller's connect() on the first allowed request,
 * destroyed with the downstream connection.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { writeBuffersOnly } from '../../../agent/proxy/http/writev';

/** One upstream connection at a time, kept alive between requests of the same downstream connection. */
export class UpstreamAgent extends http.Agent {
  private closed = false;

  constructor(private readonly connectFn: () => Promise<Duplex>) {
    super({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1, maxTotalSockets: 1, scheduling: 'fifo' });
  }

  override createConnection(_options: http.ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void): undefined {
    this.connectFn().then(
      (s) => {
        if (this.closed) {
          s.destroy();
          cb?.(new Error('downstream closed'), undefined as unknown as Duplex);
          return;
        }
        writeBuffersOnly(s);
        cb?.(null, s);
      },
      (err: unknown) => cb?.(err instanceof Error ? err : new Error(String(err)), undefined as unknown as Duplex),
    );
    return undefined;
  }

  override destroy(): void {
    this.closed = true;
    super.destroy();
  }

  // The base class assumes a net.Socket (setKeepAlive, unref, ref); connect() may return any Duplex.
  override keepSocketAlive(socket: Duplex): boolean {
    if (socket instanceof net.Socket) return (http.Agent.prototype.keepSocketAlive as (s: Duplex) => boolean).call(this, socket);
    return true;
  }

  override reuseSocket(socket: Duplex, request: http.ClientRequest): void {
    if (socket instanceof net.Socket) http.Agent.prototype.reuseSocket.call(this, socket, request);
    else request.reusedSocket = true;
  }
}
