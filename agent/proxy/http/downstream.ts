/**
 * One downstream connection: its bytes go through the strict request parser, and its requests
 * are served strictly one at a time in arrival order (pipelined ones wait their turn, so nothing
 * of a later request reaches the upstream before an earlier one is answered). What Node's
 * http.Server did for its connections is done here: 100-continue and other expectations told
 * apart, an upgrade (or CONNECT) ends the parsing and leaves the rest of the bytes for a tunnel,
 * the client's half-close answered after the last response, a parse error answered in turn.
 * Deadlines (headers, request, idle) are plain numbers checked by the front's sweep, so a
 * request arms no timer of its own.
 */
import type { Duplex } from 'node:stream';
import { kindOf } from './check';
import type { FrontContext } from './context';
import { Exchange, type Link } from './exchange';
import { methodName, Parser, type ParserHandlers } from './llhttp';
import { parserErrorReason, rawResponse, statusOf } from './refusal';
import { UpstreamPool } from './pool';
import type { ConnectionPool, UpstreamConnection } from './upstream';
import { writeBuffersOnly } from './writev';

/** Pipelined requests waiting their turn before the connection stops being read. */
const MAX_QUEUED = 32;

/** How long a closing connection may keep sending before it is destroyed (so the client reads our answer, not a reset). */
const LINGER_MS = 2000;

/** A connection's own upstream connections (a session that names no shared pool): one kept idle, for as long as the connection lives. */
const OWN_POOL_IDLE_MS = 2 ** 31;

const requestHandlers: ParserHandlers<Downstream> = {
  onMessageBegin() {
    this.owner.messageBegin();
  },
  onHeaders(headers, url) {
    this.owner.headerPiece(headers, url);
  },
  onHeadersComplete(major, minor, headers, method, url, _status, _message, upgrade, keepAlive) {
    return this.owner.headersComplete(major, minor, headers, method, url, upgrade, keepAlive);
  },
  onBody(chunk) {
    this.owner.receiving?.requestBody(chunk);
  },
  onMessageComplete() {
    this.owner.receiving?.requestEnd();
  },
};

const kDownstream = Symbol('palisade.http.downstream');
type Tagged = Duplex & { [kDownstream]?: Downstream };

function onData(this: Tagged, chunk: Buffer): void {
  this[kDownstream]?.data(chunk);
}
function onEnd(this: Tagged): void {
  this[kDownstream]?.end();
}
function onClose(this: Tagged): void {
  this[kDownstream]?.onClose();
}
function onDrain(this: Tagged): void {
  this[kDownstream]?.drained();
}
function ignore(): void {}

export class Downstream implements Link {
  closed = false;
  private closing = false;
  private readonly queue: Exchange[] = [];
  private current: Exchange | undefined;
  /** the exchange whose request is the latest parsed (its body may still be arriving) */
  receiving: Exchange | undefined;
  private readonly parser: Parser<Downstream>;
  private parsing = true;
  /** reading only to drop what comes (the parser stopped: an upgrade, a close) */
  private dropping = false;
  /** an upgrade or CONNECT head just parsed: it is queued once the bytes after it are known */
  private upgrading: Exchange | undefined;
  private pendingHeaders: string[] | undefined;
  private pendingUrl = '';
  private inHead = false;
  private ownPool: ConnectionPool | undefined;
  private pumping = false;
  /** exchanges finished and not yet settled (recorded, connection state updated): see exchangeDone */
  private readonly done: Exchange[] = [];
  private settleQueued = false;
  private readonly settleSoon = (): void => this.settle();
  private throttled = false;
  private holding = false;
  private paused = false;
  /** the client half-closed: close after the last answer */
  private lastRequest = false;
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
    writeBuffersOnly(socket);
    this.parser = new Parser('request', ctx.limits.maxHeaderBytes, this, requestHandlers);
    const s = socket as Tagged;
    s[kDownstream] = this;
    s.on('close', onClose);
    s.on('end', onEnd);
    s.on('drain', onDrain);
    s.on('error', ignore); // 'close' follows; the exchange in flight learns it there
    this.messageStart = performance.now();
    this.headersDeadline = this.messageStart + ctx.limits.headersTimeoutMs;
  }

  /** Parse what a sniffer already read, then read the connection. */
  start(head: Buffer | undefined): void {
    if (head !== undefined && head.length > 0) this.data(head);
    if (this.parsing && !this.closed) {
      this.socket.on('data', onData);
      if (this.paused) this.socket.pause();
      else if (this.socket.readableFlowing !== true) this.socket.resume();
    }
  }

  // --- Link ---

  get reading(): boolean {
    return this.parser.busy;
  }

  pool(): ConnectionPool {
    const { poolName, sharedPool } = this.ctx;
    if (poolName !== undefined && sharedPool !== undefined) return sharedPool(poolName);
    return (this.ownPool ??= new UpstreamPool<UpstreamConnection>(1, OWN_POOL_IDLE_MS));
  }

  write(data: Buffer | string): boolean {
    if (this.socket.destroyed || !this.socket.writable) return true;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  writeRawAndClose(buf: Buffer): void {
    this.closing = true;
    if (this.socket.writable) this.socket.end(buf);
    this.linger();
  }

  holdBody(hold: boolean): void {
    this.holding = hold;
    this.updateReading();
  }

  /**
   * An exchange has finished. It is settled — recorded, the connection closed or the next
   * request started — once the read that finished it has returned (a microtask later): what the
   * parser still has to say in that read (the next pipelined request, an error, an upstream
   * connection going back to its pool) comes first, as when Node's response 'close' event ended
   * an exchange.
   */
  exchangeDone(ex: Exchange): void {
    this.done.push(ex);
    if (!this.settleQueued) {
      this.settleQueued = true;
      queueMicrotask(this.settleSoon);
    }
  }

  private settle(): void {
    this.settleQueued = false;
    for (const ex of this.done.splice(0)) this.settleOne(ex);
    this.pump();
  }

  private settleOne(ex: Exchange): void {
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
      ...(ex.trace !== undefined && { trace: ex.trace }),
      ...(ex.forwardedAt !== undefined && { forwardedAfterMs: ex.forwardedAt - ex.started }),
    });
    if (ex !== this.current) return;
    this.current = undefined;
    if (ex.tunnelling) return;
    if (!ex.keepsConnection() || (this.lastRequest && this.queue.length === 0)) {
      this.closing = true;
      if (this.socket.writable) this.socket.end();
      this.linger();
    }
  }

  // --- socket events ---

  data(chunk: Buffer): void {
    if (!this.parsing) return; // failed, or closing: read and dropped so the close is clean
    const r = this.parser.execute(chunk);
    if (typeof r !== 'number') {
      this.parsing = false;
      this.fail(parserErrorReason(r));
      this.current?.flushBody();
      return;
    }
    this.current?.flushBody();
    const up = this.upgrading;
    if (up !== undefined) {
      // The rest of the bytes belong to whatever the upgrade becomes: no more parsing here.
      this.upgrading = undefined;
      this.parsing = false;
      this.socket.off('data', onData);
      this.socket.pause();
      up.head = chunk.subarray(r);
      this.enqueue(up);
      if (this.closing) this.discardInput();
    }
  }

  end(): void {
    if (!this.parsing || this.closed) return;
    const err = this.parser.finish();
    if (err !== undefined) {
      this.parsing = false;
      return this.fail(parserErrorReason(err));
    }
    if (this.current !== undefined || this.queue.length > 0) {
      this.lastRequest = true;
      return;
    }
    this.closing = true;
    if (this.socket.writable) this.socket.end();
    this.linger();
  }

  drained(): void {
    this.current?.downstreamDrained();
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.parsing = false;
    this.parser.close();
    this.ownPool?.destroy();
    const cur = this.current;
    this.current = undefined;
    cur?.downstreamClosed();
    for (const ex of this.queue.splice(0)) ex.abandon('downstream closed');
    this.forget(this);
  }

  // --- parser events ---

  messageBegin(): void {
    const now = performance.now();
    this.messageStart = now;
    this.idleDeadline = 0;
    this.receiving = undefined;
    this.inHead = true;
    this.pendingHeaders = undefined;
    this.pendingUrl = '';
    this.headersDeadline = now + this.ctx.limits.headersTimeoutMs;
    this.requestDeadline = now + this.ctx.limits.requestTimeoutMs;
  }

  headerPiece(headers: string[], url: string): void {
    if (!this.inHead) return; // trailers: not forwarded
    this.pendingHeaders = this.pendingHeaders === undefined ? headers.slice() : this.pendingHeaders.concat(headers);
    this.pendingUrl += url;
  }

  headersComplete(major: number, minor: number, headers: string[] | undefined, method: number | undefined, url: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    this.inHead = false;
    const raw = headers ?? this.pendingHeaders ?? [];
    const target = url ?? this.pendingUrl;
    this.pendingHeaders = undefined;
    this.pendingUrl = '';
    const name = methodName(method) ?? '';
    const version = major === 1 && minor === 1 ? '1.1' : `${major}.${minor}`;
    const ex = new Exchange(this, kindOf(upgrade, name, version, raw), name, target, version, raw, keepAlive);
    if (upgrade) {
      this.upgrading = ex;
      return 2;
    }
    this.enqueue(ex);
    return 0;
  }

  // --- the queue ---

  private enqueue(ex: Exchange): void {
    this.headersDeadline = 0;
    this.idleDeadline = 0;
    this.receiving = ex;
    if (!ex.receivingBody()) this.requestDeadline = 0;
    if (this.closing || this.closed || this.fatal !== undefined) return ex.abandon('connection closing');
    this.queue.push(ex);
    if (this.queue.length >= MAX_QUEUED) {
      this.throttled = true;
      this.updateReading();
    }
    if (!this.settleQueued) this.pump();
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
    if (!this.settleQueued) this.pump();
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

  /** Too many pipelined requests waiting, or a body the upstream is not taking yet: stop reading. */
  private updateReading(): void {
    if (this.throttled && this.queue.length <= MAX_QUEUED / 2) this.throttled = false;
    const pause = this.throttled || this.holding;
    if (pause === this.paused || !this.parsing || this.closing) return;
    this.paused = pause;
    if (pause) this.socket.pause();
    else this.socket.resume();
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
    this.discardInput();
  }

  /**
   * Closing: keep reading what the client still sends (parsed and refused as 'connection
   * closing' while the parser runs, dropped once it stopped), so our answer is not lost to a reset.
   */
  private discardInput(): void {
    if (this.current?.tunnelling) return;
    if (!this.parsing && !this.dropping) {
      this.dropping = true;
      this.socket.off('data', onData);
      this.socket.on('data', ignore);
    }
    this.paused = false;
    this.socket.resume();
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
        if (this.throttled) this.updateReading();
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
