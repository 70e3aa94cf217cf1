/**
 * Connections to the upstream (the pod) and the pool that keeps them alive between requests.
 *
 * An UpstreamConnection carries one request at a time. It parses the response with the same
 * strict parser as requests and reports what it reads to the exchange it serves (the
 * UpstreamUser): it decides nothing about the client. What a malicious or broken upstream can
 * try is contained here: bytes that arrive while no request is out, or after a response ends
 * (a second, smuggled response), a response that is cut short or malformed, a flood of 1xx
 * heads: the connection is never used again, and the exchange hears only about its own
 * response. After a clean response, with the request sent whole and `Connection: close` absent,
 * the connection goes back to its pool.
 * Idle ones wait in an UpstreamPool (pool.ts).
 */
import type { Duplex } from 'node:stream';
import { Parser, type ParserHandlers } from './llhttp';
import type { PooledConnection, UpstreamPool } from './pool';
import type { UpstreamReuse } from './types';
import { writeBuffersOnly } from './writev';

/** Response heads are held to Node's client default. */
const MAX_RESPONSE_HEAD_BYTES = 16384;
/** 1xx heads before the final one; more is a flood. */
const MAX_INFORMATIONAL = 16;

/** What an upstream connection reports to the exchange it serves. */
export interface UpstreamUser {
  /**
   * The final response's head (1xx heads other than 101 are dropped here). `keepAlive` is the
   * upstream's own view. A 101 to an upgrade request is reported by onUpgraded instead.
   */
  onResponseHead(status: number, message: string, rawHeaders: string[], keepAlive: boolean): void;
  onResponseBody(chunk: Buffer): void;
  onResponseEnd(): void;
  /**
   * The connection failed or closed before the response ended: `err` says how (undefined: a
   * clean close too early); `responded`: a response head had been reported.
   */
  onUpstreamFailed(err: Error | undefined, responded: boolean): void;
  /** The request body may be written again. */
  onUpstreamDrain(): void;
  /** The upstream accepted an upgrade: the socket is the user's now, with what followed the 101 head. */
  onUpgraded(socket: Duplex, status: number, message: string, rawHeaders: string[], head: Buffer): void;
}

const enum State {
  /** in the pool, or just opened */
  Idle,
  /** a request is out, its response not complete */
  Busy,
  /** the response is complete; waiting for the user to let go */
  Done,
  /** destroyed, or handed over as a tunnel */
  Gone,
}

const upstreamHandlers: ParserHandlers<UpstreamConnection> = {
  onMessageBegin() {
    this.owner.messageBegin();
  },
  onHeaders(headers) {
    // A head that spans reads (or has many lines) comes in pieces before onHeadersComplete.
    this.owner.headerPiece(headers);
  },
  onHeadersComplete(_major, _minor, headers, _method, _url, status, message, upgrade, keepAlive) {
    return this.owner.headersComplete(headers, status ?? 0, message ?? '', upgrade, keepAlive);
  },
  onBody(chunk) {
    this.owner.body(chunk);
  },
  onMessageComplete() {
    this.owner.messageComplete();
  },
};

function onData(this: Tagged, chunk: Buffer): void {
  this[kConn]?.data(chunk);
}
function onEnd(this: Tagged): void {
  this[kConn]?.end();
}
function onError(this: Tagged, err: Error): void {
  this[kConn]?.fail(err);
}
function onClose(this: Tagged): void {
  this[kConn]?.fail(undefined);
}
function onDrain(this: Tagged): void {
  this[kConn]?.drain();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const LISTENERS: ReadonlyArray<[string, (this: Tagged, ...args: any[]) => void]> = [
  ['data', onData],
  ['end', onEnd],
  ['error', onError],
  ['close', onClose],
  ['drain', onDrain],
];

const kConn = Symbol('palisade.http.upstream');

/** How Node's client names an upstream that closed before its response ended. */
function hangUp(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

/**
 * `Keep-Alive: timeout=N` in a response: the upstream closes idle connections after N seconds,
 * so one is offered again for at most N-1 (as Node's agent does); undefined without the hint.
 */
function keepAliveHint(raw: string[]): number | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || raw[i]!.toLowerCase() !== 'keep-alive') continue;
    const m = /^\s*timeout=(\d+)/i.exec(raw[i + 1]!);
    if (m) return Number(m[1]) * 1000 - 1000;
  }
  return undefined;
}

function protocolError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}
type Tagged = Duplex & { [kConn]?: UpstreamConnection };

/** The pool of upstream connections to one destination. */
export type ConnectionPool = UpstreamPool<UpstreamConnection>;

export class UpstreamConnection implements PooledConnection {
  /** responses it has carried: a connection that has one behind it is a reused one */
  served = 0;
  private state = State.Idle;
  private user: UpstreamUser | undefined;
  private readonly parser: Parser<UpstreamConnection>;
  private pool: ConnectionPool | undefined;
  /** when, idle in its pool, it stops being offered */
  expires = 0;
  /** how long the upstream said it keeps an idle connection (`Keep-Alive: timeout=N`, less a second), when it said so */
  keepAliveMs: number | undefined;
  /** its destination's reuse limits (a DestinationRule's), as of the request it serves */
  private reuse: UpstreamReuse | undefined;
  /** the request in flight was HEAD: its response has no body */
  private headRequest = false;
  /** the request in flight asked for an upgrade */
  private upgradeRequest = false;
  /** a response head has been reported for the request in flight */
  private responded = false;
  private informational = 0;
  private pendingHeaders: string[] | undefined;
  private keepAlive = false;
  /** bytes came that belong to no request: never reuse */
  private tainted = false;
  /** released from inside a read: back to the pool once the parser has returned */
  private releaseAfterExecute = false;
  /** what the upstream did wrong inside a read, acted on once the parser returns */
  private protocolError: Error | undefined;
  private upgraded: { status: number; message: string; rawHeaders: string[] } | undefined;

  constructor(readonly socket: Duplex) {
    writeBuffersOnly(socket);
    this.parser = new Parser('response', MAX_RESPONSE_HEAD_BYTES, this, upstreamHandlers);
    const s = socket as Tagged;
    s[kConn] = this;
    for (const [event, listener] of LISTENERS) s.on(event, listener);
  }

  /** how long it may wait idle in its pool, when its destination says */
  get idleMs(): number | undefined {
    return this.reuse?.idleMs;
  }

  get alive(): boolean {
    return this.state !== State.Gone && !this.socket.destroyed;
  }

  /** Serve `user`'s request (which it writes with write()/writeAll()); the response goes to it. */
  attach(user: UpstreamUser, headRequest: boolean, upgrade: boolean, pool: ConnectionPool | undefined, reuse?: UpstreamReuse): void {
    if (pool !== this.pool) {
      this.pool?.disown();
      pool?.adopt();
      this.pool = pool;
    }
    this.reuse = reuse;
    this.user = user;
    this.state = State.Busy;
    this.headRequest = headRequest;
    this.upgradeRequest = upgrade;
    this.responded = false;
    this.informational = 0;
    this.keepAlive = false;
    this.keepAliveMs = undefined;
  }

  /** Request body bytes; false when the caller should wait for onUpstreamDrain. */
  write(chunk: Buffer | string): boolean {
    if (this.state === State.Gone) return true;
    return typeof chunk === 'string' ? this.socket.write(chunk, 'latin1') : this.socket.write(chunk);
  }

  /** Several pieces in one go (a chunk with its framing). */
  writeAll(pieces: Array<Buffer | string>): boolean {
    if (this.state === State.Gone) return true;
    const s = this.socket;
    s.cork();
    let ok = true;
    for (const p of pieces) ok = (typeof p === 'string' ? s.write(p, 'latin1') : s.write(p)) && ok;
    s.uncork();
    return ok;
  }

  pauseResponse(): void {
    this.socket.pause();
  }

  resumeResponse(): void {
    this.socket.resume();
  }

  /**
   * The user is finished with this connection: `reusable` when its request went out whole.
   * Back to the pool when the response ended cleanly and the upstream keeps it alive; else
   * closed. Released from inside a read, it is pooled once the parser has returned (so what
   * follows the response in that read is never anybody's response).
   */
  release(reusable: boolean): void {
    if (this.state === State.Gone) return;
    if (!reusable || this.state !== State.Done || !this.keepAlive || this.tainted || this.pool === undefined) return this.destroy();
    if (this.keepAliveMs !== undefined && this.keepAliveMs <= 0) return this.destroy();
    // maxRequestsPerConnection: it has carried its share
    if (this.reuse !== undefined && this.reuse.maxRequests > 0 && this.served >= this.reuse.maxRequests) return this.destroy();
    if (this.parser.busy) {
      this.releaseAfterExecute = true;
      return;
    }
    this.toPool();
  }

  destroy(): void {
    if (this.state === State.Gone) return;
    this.state = State.Gone;
    this.user = undefined;
    this.leavePool();
    this.socket.destroy();
    this.parser.close();
  }

  // --- socket events ---

  data(chunk: Buffer): void {
    if (this.state === State.Gone) return;
    if (this.state !== State.Busy) {
      // Nothing was asked: an upstream talking out of turn is not trusted again.
      this.tainted = true;
      this.destroy();
      return;
    }
    const r = this.parser.execute(chunk);
    if (this.afterParser()) return;
    if (typeof r !== 'number') return this.fail(r);
    if (this.upgraded !== undefined) return this.handOver(chunk.subarray(r));
  }

  end(): void {
    if (this.state === State.Busy) {
      // A response read to the close ends here; anything else was cut short.
      const err = this.parser.finish();
      if (this.afterParser()) return;
      if (err !== undefined) return this.fail(err);
      if (this.state === State.Busy) return this.fail(hangUp());
    }
    this.destroy();
  }

  /** The connection failed: the exchange it serves hears why (a close before the response ends is a hang-up). */
  fail(err: Error | undefined): void {
    if (this.state === State.Gone) return;
    const user = this.state === State.Busy ? this.user : undefined;
    const responded = this.responded;
    this.destroy();
    user?.onUpstreamFailed(err ?? hangUp(), responded);
  }

  /** What the callbacks left to do once the parser returned; true when nothing more is to be done with this read. */
  private afterParser(): boolean {
    if (this.state === State.Gone) return true;
    if (this.protocolError !== undefined) {
      this.fail(this.protocolError);
      return true;
    }
    if (this.releaseAfterExecute) {
      this.releaseAfterExecute = false;
      // A second response in the same read (tainted): the first was reported, the rest never is.
      if (this.tainted) this.destroy();
      else this.toPool();
      return true;
    }
    return false;
  }

  drain(): void {
    if (this.state === State.Busy) this.user?.onUpstreamDrain();
  }

  // --- parser events ---

  messageBegin(): void {
    if (this.state !== State.Busy) this.tainted = true;
    this.pendingHeaders = undefined;
  }

  headerPiece(headers: string[]): void {
    if (this.state !== State.Busy || this.responded) return; // trailers
    this.pendingHeaders = this.pendingHeaders === undefined ? headers.slice() : this.pendingHeaders.concat(headers);
  }

  headersComplete(headers: string[] | undefined, status: number, message: string, upgrade: boolean, keepAlive: boolean): number {
    if (this.state !== State.Busy || this.protocolError !== undefined) return 0;
    const raw = headers ?? this.pendingHeaders ?? [];
    this.pendingHeaders = undefined;
    if (status >= 100 && status < 200 && status !== 101) {
      if (++this.informational > MAX_INFORMATIONAL) this.protocolError ??= protocolError('HPE_INFORMATIONAL_FLOOD', 'too many 1xx responses');
      return 0;
    }
    if (status === 101) {
      // A protocol switch nobody asked for: the bytes after it mean nothing to us.
      if (!this.upgradeRequest || !upgrade) this.protocolError ??= protocolError('HPE_UNEXPECTED_101', 'unrequested protocol switch');
      else this.upgraded = { status, message, rawHeaders: raw };
      return 2;
    }
    this.responded = true;
    this.keepAlive = keepAlive;
    this.keepAliveMs = keepAliveHint(raw);
    this.user?.onResponseHead(status, message, raw, keepAlive);
    return this.headRequest ? 1 : 0;
  }

  body(chunk: Buffer): void {
    if (this.state !== State.Busy || !this.responded || this.protocolError !== undefined) return;
    this.user?.onResponseBody(chunk);
  }

  messageComplete(): void {
    if (this.state !== State.Busy || !this.responded || this.protocolError !== undefined) return;
    this.state = State.Done;
    this.served += 1;
    this.user?.onResponseEnd();
  }

  // --- internals ---

  private handOver(head: Buffer): void {
    const u = this.upgraded!;
    const user = this.user;
    this.upgraded = undefined;
    this.state = State.Gone;
    this.user = undefined;
    this.leavePool();
    const s = this.socket as Tagged;
    s[kConn] = undefined;
    for (const [event, listener] of LISTENERS) s.off(event, listener);
    this.parser.close();
    if (user === undefined) {
      s.destroy();
      return;
    }
    user.onUpgraded(s, u.status, u.message, u.rawHeaders, head);
  }

  /** Gone: not offered again, and no longer one of its pool's. */
  private leavePool(): void {
    const pool = this.pool;
    if (pool === undefined) return;
    this.pool = undefined;
    pool.forget(this);
    pool.disown();
  }

  private toPool(): void {
    this.state = State.Idle;
    this.user = undefined;
    // Paused for a client slower than the answer (pauseResponse), it reads again: idle, it must see
    // the upstream's close, and its next user (another client, from a shared pool) its answer.
    this.socket.resume();
    this.pool!.put(this);
  }
}
