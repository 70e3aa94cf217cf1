/**
 * One downstream connection: its requests are served strictly one at a time in arrival
 * order (pipelined ones wait their turn, so nothing of a later request reaches the
 * upstream before an earlier one is answered), through at most one upstream connection.
 * Deadlines (headers, request, idle) are plain numbers checked by the front's sweep, so a
 * request arms no timer of its own.
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { FrontContext } from '../../../agent/proxy/http/context';
import { Kind } from '../../../agent/proxy/http/check';
import { Exchange, type Link } from './exchange';
import { rawResponse, statusOf } from '../../../agent/proxy/http/refusal';
import { UpstreamAgent } from './upstream';

/** Pipelined requests waiting their turn before the connection stops being read. */
const MAX_QUEUED = 32;

/** How long a closing connection may keep sending before it is destroyed (so the client reads our answer, not a reset). */
const LINGER_MS = 2000;

const kDownstream = Symbol('palisade.http.downstream');
type Tagged = Duplex & { [kDownstream]?: Downstream; parser?: ParserLike | null; _paused?: boolean };
interface ParserLike {
  socket?: Tagged | null;
  resume?: () => void;
  [k: number]: unknown;
}

export function downstreamOf(socket: Duplex): Downstream | undefined {
  return (socket as Tagged)[kDownstream];
}

/**
 * Node's HTTP parser calls its kOnMessageBegin slot at the first byte of every request
 * (Node's own headersTimeout uses it, but only on a listening server). We use it to start
 * the headers and request deadlines; the function is shared and finds its connection
 * through the parser's socket, so a parser reused by another server does nothing with it.
 */
function onMessageBegin(this: ParserLike): void {
  const socket = this.socket;
  if (socket) socket[kDownstream]?.messageBegin();
}

function onSocketClose(this: Tagged): void {
  this[kDownstream]?.onClose();
}

export class Downstream implements Link {
  closed = false;
  private closing = false;
  private readonly queue: Exchange[] = [];
  private current: Exchange | undefined;
  /** the exchange whose request is the latest parsed (its body may still be arriving) */
  private receiving: Exchange | undefined;
  private upstream: UpstreamAgent | undefined;
  private pumping = false;
  private throttled = false;
  /** a parse error or timeout to answer once the requests before it are answered */
  private fatal: string | undefined;
  private messageStart: number;
  private headersDeadline: number;
  private requestDeadline = 0;
  private idleDeadline = 0;
  private lingerDeadline = 0;

  constructor(
    readonly ctx: FrontContext,
    readonly socket: Duplex,
    private readonly forget: (d: Downstream) => void,
  ) {
    (socket as Tagged)[kDownstream] = this;
    socket.on('close', onSocketClose);
    this.messageStart = performance.now();
    this.headersDeadline = this.messageStart + ctx.limits.headersTimeoutMs;
  }

  /** After Node's server has taken the connection: hook the parser's message-begin slot. */
  hookParser(): void {
    const parser = (this.socket as Tagged).parser;
    const slot = (parser?.constructor as { kOnMessageBegin?: unknown } | undefined)?.kOnMessageBegin;
    if (parser && typeof slot === 'number') parser[slot] = onMessageBegin;
  }

  messageBegin(): void {
    const now = performance.now();
    this.messageStart = now;
    this.idleDeadline = 0;
    this.receiving = undefined;
    this.headersDeadline = now + this.ctx.limits.headersTimeoutMs;
    this.requestDeadline = now + this.ctx.limits.requestTimeoutMs;
  }

  /** A request's headers are complete (Node emitted it). */
  enqueue(kind: Kind, req: http.IncomingMessage, res: http.ServerResponse | undefined, head: Buffer | undefined): void {
    const ex = new Exchange(this, kind, req, res, head);
    this.headersDeadline = 0;
    this.idleDeadline = 0;
    this.receiving = ex;
    if (!ex.receivingBody()) this.requestDeadline = 0;
    if (this.closing || this.closed || this.fatal !== undefined) return ex.abandon('connection closing');
    this.queue.push(ex);
    if (this.queue.length >= MAX_QUEUED) this.throttle();
    this.pump();
  }

  /**
   * Too many pipelined requests waiting: stop reading, the way Node's server does for
   * unsent responses (its `_paused` flag also keeps a request body's reads from resuming).
   */
  private throttle(): void {
    if (this.throttled) return;
    this.throttled = true;
    (this.socket as Tagged)._paused = true;
    this.socket.pause();
  }

  private unthrottle(): void {
    if (!this.throttled || this.queue.length > MAX_QUEUED / 2) return;
    this.throttled = false;
    const s = this.socket as Tagged;
    s._paused = false;
    s.parser?.resume?.();
    s.resume();
  }

  /** A parse error or timeout: answer it in turn (or abort the request it broke) and close. */
  fail(reason: string): void {
    if (this.closed || this.closing || this.fatal !== undefined) return;
    this.headersDeadline = 0;
    this.requestDeadline = 0;
    const owner = this.receiving;
    if (owner !== undefined && !owner.finished && owner.receivingBody()) {
      // The error is inside this request's body: it is the one refused.
      if (owner === this.current) owner.abort(reason);
      else owner.broken = reason;
      return;
    }
    this.fatal = reason;
    this.pump();
  }

  agent(): http.Agent {
    return (this.upstream ??= new UpstreamAgent(this.ctx.connect));
  }

  writeRawAndClose(buf: Buffer): void {
    this.closing = true;
    if (this.socket.writable) this.socket.end(buf);
    this.linger();
  }

  exchangeDone(ex: Exchange): void {
    this.ctx.record({
      method: ex.method,
      path: ex.path,
      host: ex.host,
      status: ex.statusSent(),
      ...(ex.decision !== undefined && { decision: ex.decision }),
      ...(ex.rejected !== undefined && { rejected: ex.rejected }),
      bytesSent: ex.bytesSent,
      bytesReceived: ex.bytesReceived,
      durationMs: Math.round((performance.now() - ex.started) * 1000) / 1000,
      ...(ex.error !== undefined && { error: ex.error }),
    });
    if (ex !== this.current) return;
    this.current = undefined;
    if (!ex.keepsConnection()) this.closing = true;
    if (ex.closeAfter) {
      if (this.socket.writable) this.socket.end();
      this.linger();
    }
    this.pump();
  }

  /** Sweep: enforce the deadlines. */
  check(now: number): void {
    if (this.lingerDeadline !== 0) {
      if (now >= this.lingerDeadline) this.socket.destroy();
      return;
    }
    if (this.headersDeadline !== 0 && now >= this.headersDeadline) return this.fail('headers-timeout');
    if (this.requestDeadline !== 0 && now >= this.requestDeadline) {
      const ex = this.receiving;
      if (ex === undefined || ex.receivingBody()) return this.fail('request-timeout');
      this.requestDeadline = 0;
      this.armIdleIfQuiet();
    }
    if (this.idleDeadline !== 0 && now >= this.idleDeadline) {
      this.idleDeadline = 0;
      this.closing = true;
      if (this.socket.writable) this.socket.end();
      this.linger();
    }
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.upstream?.destroy();
    const cur = this.current;
    this.current = undefined;
    cur?.downstreamClosed();
    for (const ex of this.queue.splice(0)) ex.abandon('downstream closed');
    this.forget(this);
  }

  /** Nothing queued, in flight or arriving: the idle deadline runs. */
  private armIdleIfQuiet(): void {
    if (this.current !== undefined || this.queue.length > 0 || this.closing || this.headersDeadline !== 0) return;
    if (this.requestDeadline !== 0) {
      if (this.receiving === undefined || this.receiving.receivingBody()) return;
      this.requestDeadline = 0;
    }
    this.idleDeadline = performance.now() + this.ctx.limits.idleTimeoutMs;
  }

  private linger(): void {
    if (this.lingerDeadline === 0) this.lingerDeadline = performance.now() + LINGER_MS;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.current === undefined && !this.closing && !this.closed) {
        const ex = this.queue.shift();
        if (ex === undefined) {
          if (this.fatal !== undefined) this.flushFatal();
          else this.armIdleIfQuiet();
          return;
        }
        this.current = ex;
        this.unthrottle();
        ex.start();
      }
    } finally {
      this.pumping = false;
    }
  }

  private flushFatal(): void {
    const reason = this.fatal!;
    this.fatal = undefined;
    const status = statusOf(reason);
    this.ctx.log.warn({ event: 'refused', reason, status }, 'http request refused');
    this.ctx.record({
      method: '',
      path: '',
      host: '',
      status: this.socket.writable ? status : 0,
      rejected: reason,
      bytesSent: 0,
      bytesReceived: 0,
      durationMs: Math.round((performance.now() - this.messageStart) * 1000) / 1000,
    });
    this.writeRawAndClose(rawResponse(status));
  }
}
