/**
 * HBONE keepalive, for both ends of a tunnel connection: a session carrying streams PINGs its
 * peer every `intervalMs` and is destroyed — failing its streams, so the connections on them end —
 * when no answer comes within `timeoutMs`. A peer node that vanished without a FIN or RST (powered
 * off, partitioned) would otherwise hold every tunnel to or from it open for ever: on the source
 * side a route without a timeout sets no deadline once a request is sent, on the destination side
 * each tunnel holds its connection to the pod.
 */
import type * as http2 from 'node:http2';
import { PalisadeError } from '../../common/errors';

export interface HboneKeepalive {
  intervalMs: number;
  timeoutMs: number;
}
export const DEFAULT_HBONE_KEEPALIVE: HboneKeepalive = { intervalMs: 20_000, timeoutMs: 10_000 };

/** Streams open on a session, counted by its owner (a quiet session is not PINGed). */
export interface OpenStreams {
  open: number;
}

/**
 * PING `session` every interval while it has open streams; when a PING goes without an answer for
 * the timeout, `unanswered` is called once (to count and log it) and the session is destroyed with
 * PALISADE_ERR_HBONE naming `peer` (e.g. `peer 10.0.0.2`). Stops with the session.
 */
export function keepSessionAlive(session: http2.Http2Session, keepalive: HboneKeepalive, streams: OpenStreams, peer: string, unanswered: () => void): void {
  let waiting: NodeJS.Timeout | undefined;
  const tick = setInterval(() => {
    if (streams.open === 0 || waiting || session.destroyed) return;
    waiting = setTimeout(() => {
      unanswered();
      session.destroy(new PalisadeError('PALISADE_ERR_HBONE', `${peer} did not answer a PING within ${keepalive.timeoutMs} ms`));
    }, keepalive.timeoutMs);
    const answered = (): void => {
      clearTimeout(waiting);
      waiting = undefined;
    };
    try {
      // false: too many PINGs unanswered already — the timer above decides
      session.ping(answered);
    } catch {
      answered(); // the session is gone: its own close ends its streams
    }
  }, keepalive.intervalMs);
  tick.unref();
  session.once('close', () => {
    clearInterval(tick);
    clearTimeout(waiting);
  });
}
