/**
 * The proxy's HTTP/2 client sessions to its upstreams, one per name (the HTTP/1.1 engine's pool
 * names: a routed endpoint as seen by one client pod, or a destination pod): every stream to that
 * upstream is multiplexed on it. A session is made on the Duplex its connect() gives (an HBONE
 * stream, a stream pair into this node's destination authorization, a TCP socket to a pod), is
 * forgotten when it closes, receives GOAWAY or errs, and is closed after `idleMs` without streams.
 * A destination's reuse limits (a DestinationRule's connectionPool.http) apply when given: its
 * idle time replaces `idleMs` for the sessions it opens, and past `maxRequests` streams a session
 * takes no new one (the next get opens another) and is closed once its streams end.
 */
import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { UpstreamReuse } from '../http/types';

export interface H2Upstream {
  readonly session: http2.ClientHttp2Session;
  /** streams opened on it before this one (a failure on a used session may be a stale one) */
  readonly used: number;
  /** this stream is its last (maxRequests): retire() the session with the stream opened on it (or close it if none is) */
  readonly last: boolean;
}

interface Entry {
  session: Promise<http2.ClientHttp2Session>;
  used: number;
}

export const IDLE_MS = 60_000;
/** the largest header list an upstream may send (as the HTTP/1.1 engine's 16 KiB, with HPACK's overhead) */
const MAX_HEADER_LIST = 64 * 1024;

export class H2Sessions {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly idleMs = IDLE_MS) {}

  get size(): number {
    return this.entries.size;
  }

  /** The live session named `name`, or a new one on `connect()`'s stream. Rejects when connect() does. */
  async get(name: string, connect: () => Promise<Duplex>, reuse?: UpstreamReuse): Promise<H2Upstream> {
    let e = this.entries.get(name);
    if (e === undefined) {
      const entry: Entry = { session: this.open(name, connect, reuse?.idleMs ?? this.idleMs), used: 0 };
      e = entry;
      this.entries.set(name, entry);
      entry.session.catch(() => {
        if (this.entries.get(name) === entry) this.entries.delete(name);
      });
    }
    // counted when handed out (before the session is up), so streams asked for meanwhile respect maxRequests too
    const used = e.used++;
    const last = reuse !== undefined && reuse.maxRequests > 0 && e.used >= reuse.maxRequests;
    // its share is given out: the next stream gets a new session
    if (last && this.entries.get(name) === e) this.entries.delete(name);
    const session = await e.session;
    if (session.closed || session.destroyed) {
      if (this.entries.get(name) === e) this.entries.delete(name);
      return this.get(name, connect, reuse);
    }
    return { session, used, last };
  }

  closeAll(): void {
    for (const e of this.entries.values()) e.session.then((s) => s.destroy(), () => undefined);
    this.entries.clear();
  }

  private async open(name: string, connect: () => Promise<Duplex>, idleMs: number): Promise<http2.ClientHttp2Session> {
    const stream = await connect();
    const session = http2.connect('http://upstream', { createConnection: () => stream, maxHeaderListPairs: 256, settings: { maxHeaderListSize: MAX_HEADER_LIST, enablePush: false } });
    const forget = (): void => {
      const e = this.entries.get(name);
      if (e !== undefined) e.session.then((s) => s === session && this.entries.get(name) === e && this.entries.delete(name), () => undefined);
    };
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.setTimeout(idleMs, () => session.close());
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => reject(err);
      session.once('error', failed);
      session.once('connect', () => {
        session.off('error', failed);
        resolve(session);
      });
    });
  }
}

/**
 * Close `session` gracefully once `stream`, its last, has been opened on the wire (a close before
 * that would refuse the stream): the streams on it finish, no new one starts.
 */
export function retire(session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream): void {
  let done = false;
  const close = (): void => {
    if (done) return;
    done = true;
    session.close();
  };
  stream.once('ready', close);
  stream.once('close', close);
}
