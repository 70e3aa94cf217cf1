/**
 * Splice two byte streams both ways with half-close, and tell once when both are done. An L4
 * connection with no byte either way for `idleTimeoutMs` is closed, and sooner — after
 * `halfClosedTimeoutMs` without a byte — once one side has finished sending (half-closed): a peer
 * that vanished must not hold two descriptors forever.
 */
import type { Duplex } from 'node:stream';
import { errorCode } from '../../common/errors';

/** Envoy's TCP proxy default: an hour without a byte either way. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60 * 60_000;
/** Once one side has sent its FIN: five minutes without a byte (Envoy's stream idle default). */
export const DEFAULT_HALF_CLOSED_TIMEOUT_MS = 5 * 60_000;

export interface SpliceTimeouts {
  /** close after this long without a byte either way; 0: never */
  idleTimeoutMs: number;
  /** the same once one side has ended (sent its FIN), when shorter; 0: as idleTimeoutMs */
  halfClosedTimeoutMs: number;
}

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
  /** Closed by the proxy for want of a byte: while open both ways, or once half-closed. */
  timeout?: 'idle' | 'half-closed';
}

/** The flow reason of a connection the proxy closed for idleness. */
export function timeoutReason(t: NonNullable<PipeResult['timeout']>): string {
  return t === 'idle' ? 'idle-timeout' : 'half-closed-timeout';
}

function abortiveClose(err: Error, sent: number, received: number): boolean {
  const code = errorCode(err);
  return (code === 'ECONNRESET' || code === 'EPIPE') && sent > 0 && received > 0;
}

/** Sockets and HTTP/2 streams both time out on inactivity (a read or a write restarts it). */
type Timed = Duplex & { setTimeout(ms: number): unknown };

function timed(s: Duplex): Timed | undefined {
  return typeof (s as Partial<Timed>).setTimeout === 'function' ? (s as Timed) : undefined;
}

/**
 * Works for sockets, TLS sockets and HTTP/2 streams alike. Byte counts come from
 * the chunks that passed, so they mean the same on every kind of stream.
 */
export function splice(client: Duplex, upstream: Duplex, done: (r: PipeResult) => void, timeouts?: SpliceTimeouts): void {
  let error: Error | undefined;
  let finished = false;
  let closed = 0;
  let sent = 0;
  let received = 0;
  let timeout: PipeResult['timeout'];
  let gone = false;
  const onClose = (side: Duplex, other: Duplex): void => {
    closed += 1;
    if (closed < 2) {
      gone = true;
      // One side is gone for good: after an error the other cannot be completed; after a clean
      // close, what the other still sends has nowhere to go: it is read to its end (and dropped,
      // not counted) so the other closes at its peer's FIN, instead of waiting paused (forever for
      // a stream pair, until the half-closed timeout for a socket).
      if (error) other.destroy();
      else {
        other.unpipe(side);
        other.resume();
      }
      return;
    }
    if (finished) return;
    finished = true;
    const reset = error !== undefined && abortiveClose(error, sent, received);
    done({ bytesSent: sent, bytesReceived: received, error: reset ? undefined : error, reset, ...(timeout ? { timeout } : {}) });
  };
  const onError = (err: Error): void => {
    error ??= err;
    client.destroy();
    upstream.destroy();
  };
  client.on('data', (c: Buffer) => void (gone || (sent += c.length)));
  upstream.on('data', (c: Buffer) => void (gone || (received += c.length)));
  client.on('error', onError);
  upstream.on('error', onError);
  client.once('close', () => onClose(client, upstream));
  upstream.once('close', () => onClose(upstream, client));
  if (timeouts) watchIdle(client, upstream, timeouts, (t) => (timeout ??= t));
  client.pipe(upstream);
  upstream.pipe(client);
}

/**
 * Inactivity timers on both sides: every byte either way is a read on one side and a write on the
 * other, so each side's timer sees all traffic while both are open, and the one left open keeps
 * timing after the other has gone.
 */
function watchIdle(client: Duplex, upstream: Duplex, t: SpliceTimeouts, closing: (why: 'idle' | 'half-closed') => void): void {
  const idle = t.idleTimeoutMs;
  const half = t.halfClosedTimeoutMs;
  const sides = [timed(client), timed(upstream)].filter((x): x is Timed => x !== undefined);
  if (sides.length === 0 || (idle <= 0 && half <= 0)) return;
  let state: 'idle' | 'half-closed' = 'idle';
  const onTimeout = (): void => {
    closing(state);
    client.destroy();
    upstream.destroy();
  };
  for (const side of sides) {
    if (idle > 0) side.setTimeout(idle);
    side.on('timeout', onTimeout);
    side.once('close', () => void side.setTimeout(0));
  }
  const halfClosed = (): void => {
    if (state === 'half-closed') return;
    state = 'half-closed';
    if (half > 0 && (idle <= 0 || half < idle)) for (const side of sides) if (!side.destroyed) side.setTimeout(half);
  };
  client.once('end', halfClosed);
  upstream.once('end', halfClosed);
}
