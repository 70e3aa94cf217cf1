/**
 * One request on a downstream connection, from its parsed head to its record: check →
 * normalize → authorize → refuse, deny (403), or forward it in normalized form through an
 * upstream connection and relay the response (or, for a WebSocket the upstream accepts, splice
 * the two connections). This object owns every field of the exchange; the downstream
 * connection feeds it the request body and drains, the upstream connection reports the
 * response (UpstreamUser), and neither writes its state.
 */
import type { Duplex } from 'node:stream';
import { errorCode } from '../connect';
import { checkRequest, Kind, type ParsedRequest } from './check';
import type { FrontContext } from './context';
import { rawResponseHead, relayedResponseHeaders } from './headers';
import { CONTINUE_100, CRLF, chunkSize, declaresBody, deniedResponse, LAST_CHUNK, ownResponse, relayedHead, requestHead } from './messages';
import { RequestBody } from './request-body';
import { bodyOf, DENIED_BODY, DENIED_RAW, rawResponse, statusOf } from './refusal';
import { openTunnel } from './tunnel';
import { asksForH2c, SWITCHING_TO_H2C } from '../h2/h2c-upgrade';
import { withTraceHeaders, type TraceHop } from '../../tracing/trace-context';
import { Deadlines } from './deadlines';
import { editLines, ownAnswerOps, withHost, withPath } from './header-edit';
import type { AttemptRefusal, Dispatch, HttpDecision, MirrorTap, NormalizedRequest, UpstreamTarget } from './types';
import type { ConnectionPool, UpstreamConnection, UpstreamUser } from './upstream';
import { UpstreamConnection as Upstream } from './upstream';

/** What an exchange needs of its downstream connection. */
export interface Link {
  readonly ctx: FrontContext;
  readonly socket: Duplex;
  readonly closed: boolean;
  /** where this connection's upstream connections are kept between requests */
  pool(): ConnectionPool;
  /** Write to the client; false when it should wait for downstreamDrained(). */
  write(data: Buffer | string): boolean;
  /** inside a read of the client's bytes (request body pieces are flushed when it returns) */
  readonly reading: boolean;
  /** Send a complete response on the raw connection and close it. */
  writeRawAndClose(buf: Buffer): void;
  /** Stop (or resume) reading the client while a request body waits for the upstream. */
  holdBody(hold: boolean): void;
  exchangeDone(ex: Exchange): void;
}

const MAX_LOGGED = 256;
/** A denied request's body up to this size is read and dropped so the connection stays usable. */
const DRAIN_LIMIT = 64 * 1024;
/** Request body held while the upstream is not ready, before the client is no longer read. */
const BODY_HOLD_BYTES = 16 * 1024;
/** Safe to send again when a kept-alive upstream connection turns out to have been closed under us. */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

function clip(s: string): string {
  return s.length > MAX_LOGGED ? s.slice(0, MAX_LOGGED) : s;
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

function uncork(s: Duplex): void {
  s.uncork();
}

export class Exchange implements ParsedRequest, UpstreamUser {
  readonly started = performance.now();
  path: string;
  host = '';
  /** status of the response begun to the client (0: none) */
  status = 0;
  decision: HttpDecision | undefined;
  rejected: string | undefined;
  error: string | undefined;
  bytesSent = 0;
  bytesReceived = 0;
  /** the connection closes after this exchange */
  closeAfter = false;
  finished = false;
  /** a parse error or timeout hit this request's body, or its answer */
  aborted = false;
  /** a final response (ours or the upstream's) has begun */
  replied = false;
  /** set when the parser failed inside this request's body before its turn came */
  broken: string | undefined;
  /** the request has a body (declared; refined by the checks) */
  hasBody: boolean;
  /** bytes after an upgrade request's head */
  head: Buffer | undefined;
  /** a WebSocket tunnel is up; it reports its own end */
  tunnelling = false;
  /** the request's trace, when the session traces */
  trace: TraceHop | undefined;
  /** performance.now() when the request first went upstream (traced requests) */
  forwardedAt: number | undefined;

  private readonly body = new RequestBody();
  private contentLength = 0;
  private target = '';
  private forward: string[] = [];
  /** the client is not read while the body waits for the upstream */
  private holding = false;
  /** denied: the rest of the body is read and dropped, then the 403 goes out */
  private draining = false;
  private drained = 0;
  /** no longer wanted: body bytes still arriving are dropped */
  private discard = false;
  private upstream: UpstreamConnection | undefined;
  private retried = false;
  /** a response head went to the client */
  private headSent = false;
  private responseChunked = false;
  /** the upgrade request's non-101 answer: relayed raw, then the connection closes */
  private responseRaw = false;
  private keepsAlive = false;
  /** `100 Continue` went to the client */
  private sent100 = false;
  /** routed: the upstream is chosen per attempt (HttpDecision.dispatch) */
  private dispatch: Dispatch | undefined;
  private deadlines: Deadlines | undefined;
  private attemptStarted = 0;
  /** when the current attempt's request went to a connected upstream (0: not yet) */
  private attemptSent = 0;
  /** the current response is read and dropped; then the next attempt goes after this many ms */
  private retryWait: number | undefined;
  /** status of a refusal that is not a policy denial (404: no route) */
  private denyStatus = 403;
  /** a mirrored copy of this request, fed its body (a route's RequestMirror) */
  private mirror: MirrorTap | undefined;
  /** the destination refused the request: its answer carries none of the route's response headers */
  private refusedByPeer = false;
  /** attempts begun: a connect that settles after its attempt is over (timed out, retried) is not the current one's */
  private attemptNo = 0;

  constructor(
    readonly link: Link,
    readonly kind: Kind,
    readonly method: string,
    readonly url: string,
    readonly httpVersion: string,
    readonly rawHeaders: string[],
    /** the parser's view: HTTP/1.1 without `Connection: close`, or 1.0 with keep-alive */
    readonly keepAlive: boolean,
  ) {
    this.path = clip(url);
    this.hasBody = declaresBody(rawHeaders);
  }

  private get detached(): boolean {
    return this.kind === Kind.Upgrade || this.kind === Kind.Connect;
  }

  /** The body of this request is still arriving. */
  receivingBody(): boolean {
    return this.hasBody && !this.body.done && !this.detached;
  }

  start(): void {
    if (this.broken !== undefined) return this.refuse(this.broken);
    const h2c = this.kind === Kind.Upgrade && this.link.ctx.upgradeH2c !== undefined && asksForH2c(this.rawHeaders);
    const n = this.check(h2c);
    if (n === undefined) return;
    if (h2c) return this.switchToH2c(this.link.ctx.upgradeH2c!);
    let decision: HttpDecision | Promise<HttpDecision>;
    try {
      decision = this.link.ctx.authorize(n);
    } catch (err) {
      return this.authzFailed(err);
    }
    if (isThenable(decision)) {
      decision.then(
        (d) => this.decided(d),
        (err: unknown) => this.authzFailed(err),
      );
    } else this.decided(decision);
  }

  /**
   * `Upgrade: h2c` on the routed path: 101, and the connection (with the bytes after this request)
   * goes to the HTTP/2 front, where this request is stream 1, authorized and routed there. This
   * exchange's record says the connection switched; it ends when the connection does.
   */
  private switchToH2c(upgrade: NonNullable<FrontContext['upgradeH2c']>): void {
    this.decision = { allowed: true, reason: 'h2c-upgrade' };
    this.status = 101;
    this.replied = true;
    this.headSent = true;
    this.tunnelling = true;
    const socket = this.link.socket;
    socket.once('close', () => this.complete());
    this.link.write(SWITCHING_TO_H2C);
    upgrade(socket, this.head ?? Buffer.alloc(0), { method: this.method, target: this.target, authority: this.host, headers: this.forward });
  }

  // --- the request body, from the downstream parser ---

  /**
   * A piece of the request body. It is held until the read it came in has been parsed (then
   * flushBody() sends what a read brought as one piece): a framing error later in the same read
   * refuses the request before any of that read reaches the upstream.
   */
  requestBody(chunk: Buffer): void {
    if (this.finished || this.discard || chunk.length === 0) return;
    if (this.draining) return this.drainData(chunk.length);
    this.mirror?.data(chunk);
    this.body.push(chunk);
    if (this.upstream === undefined && this.body.heldBytes >= BODY_HOLD_BYTES) this.hold(true);
  }

  requestEnd(): void {
    this.body.done = true;
    if (this.finished || this.discard) return;
    this.mirror?.end();
    if (this.draining) this.drainEnd();
  }

  /** After a read: what it brought of the body (and its end) goes to the upstream, if there is one yet. */
  flushBody(): void {
    const up = this.upstream;
    if (up === undefined || this.finished || this.discard || !this.body.pending) return;
    this.body.flush(up);
    this.bytesSent = this.body.bytesSent;
    this.hold(up.socket.writableNeedDrain);
  }

  // --- the connection ---

  /** The parser or a timer failed while this request's body was arriving. */
  abort(reason: string): void {
    if (this.finished || this.aborted) return;
    if (this.replied) {
      // The answer is on its way: the connection closes after it, and the upstream hears no more.
      this.closeAfter = true;
      if (this.receivingBody()) this.stop();
      return;
    }
    this.aborted = true;
    this.rejected = reason;
    this.closeAfter = true;
    const status = statusOf(reason);
    this.logRefusal(reason, status);
    this.stop();
    if (this.detached) this.link.writeRawAndClose(rawResponse(status));
    else if (this.headSent) this.link.socket.destroy();
    else this.reply(status, bodyOf(status), true);
  }

  /** Never started: the connection closed or was refused before its turn. */
  abandon(error: string): void {
    this.error ??= error;
    this.complete();
  }

  downstreamClosed(): void {
    if (this.tunnelling) return; // the splice reports when both sides are gone
    this.error ??= 'downstream closed';
    this.stop();
    this.complete();
  }

  downstreamDrained(): void {
    this.upstream?.resumeResponse();
  }

  /** The connection may carry another request after this one. */
  keepsConnection(): boolean {
    return !this.closeAfter && this.keepsAlive;
  }

  /** Status the client got, for the record. */
  statusSent(): number {
    if (this.detached) return this.status;
    return this.headSent ? this.status : 0;
  }

  private complete(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.dispatch !== undefined) {
      this.deadlines?.clear();
      this.dispatch.finish();
    }
    this.mirror?.abort();
    this.body.drop();
    if (this.holding) this.hold(false);
    this.link.exchangeDone(this);
  }

  // --- deciding ---

  private check(h2c: boolean): NormalizedRequest | undefined {
    const { ctx } = this.link;
    const c = checkRequest(this, this.kind, ctx.rules, ctx.limits.maxHeaders, h2c);
    if (!c.ok) {
      this.host = c.host;
      if (c.path !== undefined) this.path = c.path;
      return this.refuse(c.reason);
    }
    this.host = c.request.host;
    this.path = c.request.path;
    this.body.chunked = c.chunked;
    this.contentLength = c.contentLength;
    this.hasBody = c.chunked || c.contentLength > 0;
    this.target = c.target;
    this.forward = c.forward;
    if (ctx.tracer !== undefined) {
      this.trace = ctx.tracer.begin(c.request.headers);
      this.forward = withTraceHeaders(this.forward, this.trace);
    }
    return c.request;
  }

  private logRefusal(reason: string, status: number): void {
    this.link.ctx.log.warn({ event: 'refused', reason, status, method: clip(this.method), path: this.path, host: clip(this.host) }, 'http request refused');
  }

  /** Refused before authz: its status, a generic body, then close. */
  private refuse(reason: string): undefined {
    const status = statusOf(reason);
    this.rejected = reason;
    this.closeAfter = true;
    this.logRefusal(reason, status);
    if (this.detached) {
      this.status = status;
      this.replied = true;
      this.link.writeRawAndClose(rawResponse(status));
      this.complete();
    } else this.reply(status, bodyOf(status), true);
    return undefined;
  }

  private authzFailed(err: unknown): void {
    if (this.finished || this.aborted) return;
    this.error = `authorize: ${errorCode(err)}`;
    this.link.ctx.log.error({ err, method: this.method, path: this.path, host: this.host }, 'http authorize failed; denying');
    this.deny();
  }

  private decided(decision: HttpDecision): void {
    // decided after the exchange ended (a request that waited its turn): its dispatch still ends, giving back its place
    if (this.finished || this.aborted) return decision?.dispatch?.finish();
    this.decision = decision;
    if (decision?.allowed !== true) {
      if (typeof decision?.status === 'number') this.denyStatus = decision.status;
      return this.deny();
    }
    // a dispatch this exchange will not use (the client is gone, or an upgrade is relayed whole) ends now, giving back its place
    if (this.link.closed || this.detached) decision.dispatch?.finish();
    if (this.link.closed) return this.downstreamClosed();
    // a WebSocket's upgrade is not mirrored: its copy would be a handshake nobody finishes
    if (decision.mirror !== undefined && !this.detached) this.startMirror(decision.mirror);
    const edit = decision.edit;
    if (edit !== undefined) {
      if (edit.request.length > 0) this.forward = editLines(this.forward, edit.request);
      if (edit.host !== undefined) this.forward = withHost(this.forward, edit.host);
      if (edit.path !== undefined) this.target = withPath(this.target, edit.path);
    }
    if (decision.dispatch !== undefined && !this.detached) {
      const d = (this.dispatch = decision.dispatch);
      this.body.keep(d.replayBytes);
      this.deadlines = new Deadlines(() => this.timedOut('route-timeout'), () => this.attemptTimedOut());
      this.deadlines.startRequest(d.timeoutMs);
      if (d.delayMs !== undefined && d.delayMs > 0) {
        this.deadlines.startDelay(d.delayMs, () => {
          if (!this.finished && !this.aborted && !this.link.closed) this.forwardRequest();
        });
        return;
      }
    }
    if (this.kind === Kind.Continue) {
      this.sent100 = true;
      this.link.write(CONTINUE_100);
    }
    this.forwardRequest();
  }

  /** The copy starts with what of the body has come so far (held: nothing went upstream yet). */
  private startMirror(make: NonNullable<HttpDecision['mirror']>): void {
    const tap = make({ proto: 'h1', method: this.method, target: this.target, lines: this.forward });
    if (tap === undefined) return;
    this.mirror = tap;
    for (const piece of this.body.heldPieces()) tap.data(piece);
    if (!this.hasBody || this.body.done) tap.end();
  }

  /**
   * 403 with Istio's body; the connection stays usable unless the request body is unread and large.
   * `quiet`: no line (the mesh's own refusals, a fault abort or no route, are errors in their
   * records, not denials to log one by one, and a redirect is no denial; a destination's refusal
   * is logged there).
   */
  private deny(quiet = this.decision?.verdict === 'error' || this.decision?.location !== undefined): void {
    this.status = this.denyStatus;
    if (!quiet) this.link.ctx.log.info({ event: 'denied', status: this.status, method: this.method, path: this.path, host: this.host }, 'http request denied');
    if (this.detached) {
      this.closeAfter = true;
      this.replied = true;
      // a route's own answer (404, a redirect, a fault's abort) as it is, a denial as Istio's
      const lines = this.ownLines();
      this.link.writeRawAndClose(this.denyStatus === 403 && lines.length === 0 ? DENIED_RAW : ownResponse(this.denyStatus, this.denyStatus === 403 ? DENIED_BODY : bodyOf(this.denyStatus), true, false, lines));
      return this.complete();
    }
    if (this.receivingBody() && this.kind !== Kind.Continue && (this.body.chunked || this.contentLength <= DRAIN_LIMIT)) {
      // A small body still arriving: read it to its end and drop it, then answer on a usable connection.
      this.draining = true;
      const held = this.body.heldBytes;
      this.body.drop();
      if (this.holding) this.hold(false);
      return this.drainData(held);
    }
    this.sendDenied();
  }

  private drainData(n: number): void {
    this.drained += n;
    if (this.drained <= DRAIN_LIMIT || this.replied) return;
    this.draining = false;
    this.discard = true;
    this.sendDenied();
  }

  private drainEnd(): void {
    this.draining = false;
    if (!this.replied && !this.aborted && !this.finished) this.sendDenied();
  }

  private sendDenied(): void {
    this.discard = true;
    if (this.receivingBody()) this.closeAfter = true;
    const close = this.closeAfter || !this.keepsAliveOnFinalAnswer();
    const head = this.method === 'HEAD';
    const lines = this.ownLines();
    this.answer(this.denyStatus, this.denyStatus === 403 ? deniedResponse(close, head, lines) : ownResponse(this.denyStatus, bodyOf(this.denyStatus), close, head, lines), close);
  }

  /**
   * The header lines of the proxy's own answer to this request: a redirect's Location, then the
   * route's response headers (its ResponseHeaderModifier, as on a relayed answer, but not on the
   * headers the answer keeps) — not on a destination's refusal, which is that node's answer.
   */
  private ownLines(): readonly string[] {
    const location = this.decision?.location;
    const lines = location === undefined ? [] : ['location', location];
    const ops = this.refusedByPeer ? undefined : this.decision?.edit?.response;
    return ops === undefined || ops.length === 0 ? lines : editLines(lines, ownAnswerOps(ops));
  }

  /** Our own short answer (a refusal, 503, 502). */
  private reply(status: number, body: string, close: boolean): void {
    this.status = status;
    if (close) this.closeAfter = true;
    const shut = this.closeAfter || !this.keepsAliveOnFinalAnswer();
    this.answer(status, ownResponse(status, body, shut, this.method === 'HEAD', this.ownLines()), shut);
  }

  /**
   * Whether the connection may stay open after a final answer: the client's own wish, unless it
   * asked for 100-continue and did not get it (it may yet send the body: bytes nobody would parse
   * right), as Node's server decided.
   */
  private keepsAliveOnFinalAnswer(): boolean {
    return this.keepAlive && !(this.kind === Kind.Continue && !this.sent100);
  }

  private answer(status: number, buf: Buffer, close: boolean): void {
    this.status = status;
    this.replied = true;
    this.headSent = true;
    this.keepsAlive = !close;
    this.link.write(buf);
    this.complete();
  }

  // --- forwarding ---

  private forwardRequest(): void {
    const d = this.dispatch;
    const target = d?.next();
    if (d !== undefined && target === undefined) {
      this.error = 'no-healthy-endpoint';
      return this.reply(503, bodyOf(503), this.receivingBody());
    }
    const pool = this.poolOf(target);
    if (d !== undefined) {
      this.attemptStarted = performance.now();
      this.attemptSent = 0;
      this.deadlines?.startAttempt(d.attemptTimeoutMs);
    }
    const attempt = ++this.attemptNo;
    const idle = pool.take();
    if (idle !== undefined) return this.send(idle, pool, target);
    (target === undefined ? this.link.ctx.connect() : target.connect()).then(
      (s) => {
        // Gone meanwhile: the downstream's close, or the abort, has already said so; or its attempt is over.
        if (this.finished || this.aborted || this.link.closed || this.retryWait !== undefined || attempt !== this.attemptNo) return void s.destroy();
        // Over before it was ours (closed, or its far end done sending: a tunnel answered and shut at
        // once): its 'close' or 'end' came before anybody listened, so a request written into it would
        // wait for ever. Nothing was sent on it: the attempt failed to connect.
        if (s.destroyed || s.readableEnded) {
          s.destroy();
          return this.upstreamFailed(Object.assign(new Error('upstream connection closed before the request was sent'), { code: 'upstream-closed' }));
        }
        // the pool as it is now: the one looked up before the connect may have been dropped meanwhile (it had no connection)
        this.send(new Upstream(s), this.poolOf(target), target);
      },
      (err: unknown) => {
        // a late failure of an attempt that is over says nothing of the one in progress
        if (attempt === this.attemptNo) this.upstreamFailed(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  /** Where this attempt's upstream connection comes from and goes back to (looked up each time: the front drops a pool with no connection). */
  private poolOf(target: UpstreamTarget | undefined): ConnectionPool {
    return target === undefined || this.link.ctx.sharedPool === undefined ? this.link.pool() : this.link.ctx.sharedPool(target.pool);
  }

  private send(up: UpstreamConnection, pool: ConnectionPool, target: UpstreamTarget | undefined): void {
    this.upstream = up;
    if (this.dispatch !== undefined) this.attemptSent = performance.now();
    if (this.trace !== undefined) this.forwardedAt ??= performance.now();
    up.attach(this, this.method === 'HEAD', this.kind === Kind.Upgrade, pool, target?.reuse);
    const head = requestHead(this.method, this.target, this.forward);
    if (!this.hasBody || this.detached) {
      this.body.sent = true;
      up.write(head);
      return;
    }
    // The head goes with the first piece of the body (what arrived meanwhile goes as one).
    this.body.headFirst(head);
    if (!this.link.reading) this.flushBody();
  }

  private hold(on: boolean): void {
    if (on === this.holding) return;
    this.holding = on;
    this.link.holdBody(on);
  }

  /** Stop talking to the upstream; whatever of the request body still arrives is read and dropped. */
  private stop(): void {
    const up = this.upstream;
    this.upstream = undefined;
    up?.destroy();
    this.discard = true;
    this.body.drop();
    if (this.holding) this.hold(false);
  }

  /** The upstream failed before a response started: 503 (a safe request on a reused connection is sent once more). */
  private upstreamFailed(err: Error): void {
    if (this.finished || this.retryWait !== undefined) return;
    const refusal = (err as { refusal?: AttemptRefusal }).refusal;
    if (refusal !== undefined && this.dispatch !== undefined && !this.detached && !this.headSent) return this.refusedByDestination(refusal);
    const code = errorCode(err);
    const reused = this.upstream !== undefined && this.upstream.served > 0;
    if (this.dispatch !== undefined && !this.detached && !this.headSent) {
      const wait = this.settleAttempt(0, code, this.upstream !== undefined, reused);
      if (wait !== undefined) return this.retryAfter(wait, true);
    } else if (reused && !this.retried && !this.hasBody && code === 'ECONNRESET' && RETRYABLE.has(this.method)) {
      this.retried = true;
      this.upstream = undefined;
      return this.forwardRequest();
    }
    this.error = `upstream: ${code}`;
    this.stop();
    this.link.ctx.log.warn({ event: 'upstream-failed', error: code, method: this.method, path: this.path, host: this.host }, 'http upstream failed');
    if (this.detached) {
      this.status = 503;
      this.closeAfter = true;
      this.replied = true;
      const lines = this.ownLines();
      this.link.writeRawAndClose(lines.length === 0 ? rawResponse(503) : ownResponse(503, bodyOf(503), true, false, lines));
      return this.complete();
    }
    if (this.headSent) this.link.socket.destroy();
    else this.reply(503, bodyOf(503), this.receivingBody());
  }

  /** The destination refused the attempt (its policy, its limit): its answer, final (not retried, nothing ejected). */
  private refusedByDestination(r: AttemptRefusal): void {
    this.refusedByPeer = true;
    this.settleAttempt(0, r.reason, false, false, r);
    this.denyStatus = r.status;
    this.deny(true);
  }

  /** The upstream went away mid-response: the client cannot get a whole response, so close it. */
  private reset(err: Error | undefined): void {
    if (this.finished) return;
    this.error ??= err ? `upstream reset: ${errorCode(err)}` : 'upstream reset';
    this.closeAfter = true;
    this.stop();
    this.link.socket.destroy();
  }

  // --- dispatched requests: attempts, retries, deadlines ---

  private settleAttempt(status: number, error: string | undefined, connected: boolean, reused: boolean, refusal?: AttemptRefusal): number | undefined {
    this.deadlines?.endAttempt();
    const replayable = !this.hasBody || this.body.replayable;
    // Latency from the request's sending, as tower's PeakEwma times a call: a new connection's setup is not the endpoint's latency.
    const since = this.attemptSent > 0 ? this.attemptSent : this.attemptStarted;
    return this.dispatch!.settle({ status, error, connected, reused, ms: performance.now() - since, ...(refusal && { refusal }) }, replayable);
  }

  /** Another attempt after `wait` ms; `drop`: the current upstream connection is closed (else it was released). */
  private retryAfter(wait: number, drop: boolean): void {
    const up = this.upstream;
    this.upstream = undefined;
    if (drop) up?.destroy();
    this.retryWait = wait;
    setTimeout(() => {
      this.retryWait = undefined;
      if (this.finished || this.aborted || this.link.closed) return;
      if (this.hasBody) this.body.rewind();
      this.forwardRequest();
    }, wait);
  }

  /** The request's deadline passed: 504 if no response has begun, else the client's connection is cut. */
  private timedOut(reason: string): void {
    if (this.finished) return;
    this.error = reason;
    this.closeAfter ||= this.receivingBody();
    this.stop();
    if (this.headSent) return void this.link.socket.destroy();
    this.reply(504, bodyOf(504), this.closeAfter);
  }

  /** One attempt's deadline passed before its response: another attempt if the dispatch says so, else 504. */
  private attemptTimedOut(): void {
    if (this.finished || this.headSent || this.retryWait !== undefined) return;
    const wait = this.settleAttempt(0, 'backend-timeout', this.upstream !== undefined, false);
    if (wait !== undefined) return this.retryAfter(wait, true);
    this.timedOut('backend-timeout');
  }

  // --- UpstreamUser: the response ---

  onResponseHead(status: number, message: string, rawHeaders: string[]): void {
    if (this.finished || this.aborted) return this.stop();
    if (this.dispatch !== undefined && !this.detached && this.retryWait === undefined) {
      const wait = this.settleAttempt(status, undefined, true, false);
      if (wait !== undefined) {
        // read this response to its end and drop it (the connection stays usable), then retry
        this.retryWait = wait;
        return;
      }
    }
    this.status = status;
    this.replied = true;
    if (this.detached) {
      // An upgrade request the upstream answered without upgrading: relay that answer raw, then close.
      this.closeAfter = true;
      this.responseRaw = true;
      this.headSent = true;
      this.link.write(rawResponseHead(status, message, relayedResponseHeaders(rawHeaders, false), true));
      return;
    }
    if (this.receivingBody()) this.closeAfter = true;
    const edit = this.decision?.edit;
    if (edit !== undefined && edit.response.length > 0) rawHeaders = editLines(rawHeaders, edit.response);
    const added = this.dispatch?.responseHeaders?.();
    const r = relayedHead(status, message, added === undefined ? rawHeaders : [...rawHeaders, ...added.flat()], { method: this.method, httpVersion: this.httpVersion, keepAlive: this.keepsAliveOnFinalAnswer() && !this.closeAfter });
    if ('bad' in r) {
      this.error = `bad upstream response: ${r.bad}`;
      this.stop();
      return this.reply(502, bodyOf(502), true);
    }
    this.responseChunked = r.plan.chunked && !r.noBody;
    this.keepsAlive = !r.plan.close;
    this.headSent = true;
    const s = this.link.socket;
    s.cork();
    process.nextTick(uncork, s);
    this.link.write(r.head);
  }

  onResponseBody(chunk: Buffer): void {
    if (this.finished || this.retryWait !== undefined) return;
    this.bytesReceived += chunk.length;
    let ok: boolean;
    if (this.responseChunked) {
      const s = this.link.socket;
      s.cork();
      this.link.write(chunkSize(chunk.length));
      this.link.write(chunk);
      ok = this.link.write(CRLF);
      s.uncork();
    } else ok = this.link.write(chunk);
    if (!ok) this.upstream?.pauseResponse();
  }

  onResponseEnd(): void {
    if (this.finished) return;
    const up = this.upstream;
    this.upstream = undefined;
    if (this.retryWait !== undefined && up !== undefined) {
      up.release(this.body.sent);
      const wait = this.retryWait;
      this.retryWait = undefined;
      return this.retryAfter(wait, false);
    }
    if (this.responseRaw) {
      up?.release(false);
      this.link.socket.end();
      return this.complete();
    }
    if (this.responseChunked) this.link.write(LAST_CHUNK);
    if (!this.body.sent) {
      // Answered before the request went whole (an early error): the upstream connection and
      // this one end here.
      this.closeAfter = true;
      this.discard = true;
    }
    up?.release(this.body.sent);
    this.complete();
  }

  onUpstreamFailed(err: Error | undefined, responded: boolean): void {
    if (this.finished) return;
    if (this.retryWait !== undefined && this.upstream !== undefined) {
      // the dropped response broke off: retry anyway, on a new connection
      const wait = this.retryWait;
      this.retryWait = undefined;
      return this.retryAfter(wait, true);
    }
    if (responded) return this.reset(err);
    this.upstreamFailed(err ?? new Error('upstream closed'));
  }

  onUpstreamDrain(): void {
    this.hold(false);
  }

  /** A WebSocket upgrade the upstream accepted: write its 101 and splice the two connections. */
  onUpgraded(upSocket: Duplex, _status: number, message: string, rawHeaders: string[], upHead: Buffer): void {
    this.upstream = undefined;
    if (this.finished || this.link.closed) {
      upSocket.destroy();
      return;
    }
    this.status = 101;
    this.replied = true;
    this.headSent = true;
    this.tunnelling = true;
    const link = this.link;
    openTunnel({ client: link.socket, writeClient: (d) => link.write(d), upstream: upSocket, upstreamHead: upHead, clientHead: this.head }, message, rawHeaders, (r) => {
      this.bytesSent = r.bytesSent;
      this.bytesReceived = r.bytesReceived;
      if (r.error) this.error = `tunnel: ${errorCode(r.error)}`;
      this.complete();
    });
  }
}
