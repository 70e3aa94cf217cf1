/**
 * One HTTP/2 stream through the proxy, its whole lifecycle: the request read once (request.ts),
 * authorized, then sent as a stream on an upstream HTTP/2 session (sessions.ts) — attempt by
 * attempt as the decision's Dispatch says (the routed path's endpoints, retries and deadlines,
 * the same agent/traffic dispatcher as HTTP/1.1), or to the session's one target — and the
 * response relayed as it comes: headers, DATA, and trailers untouched. The proxy answers itself
 * only before a response has begun; to a gRPC call (content-type application/grpc) it answers
 * trailers-only with a gRPC status (grpc.ts): denied 7, deadline 4, no endpoint 14. A call's
 * `grpc-timeout` is a deadline like the route's request timeout (the shorter one holds). One
 * record per stream, when the client's stream closes.
 */
import * as http2 from 'node:http2';
import type { Logger } from '../../../common/log';
import { errorCode } from '../connect';
import { editHeaderObject, ownAnswerOps } from '../http/header-edit';
import type { HeaderRules } from '../http/headers';
import { bodyOf, DENIED_BODY, statusOf } from '../http/refusal';
import type { AttemptRefusal, Dispatch, HopTracer, HttpDecision, HttpRecord, MirrorTap, NormalizedRequest, UpstreamTarget } from '../http/types';
import { withTraceFields, type TraceHop } from '../../tracing/trace-context';
import { GRPC, grpcStatusIn, grpcStatusOfHttp, parseGrpcTimeout, retryStatusOf, trailersOnly, trailersOnlyStatus } from './grpc';
import { readRequest, relayedHeaders } from './request';
import type { H2Sessions } from './sessions';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR, HTTP2_FLAG_END_STREAM } = { ...http2.constants, HTTP2_FLAG_END_STREAM: 0x1 };

/** What belongs to one downstream connection: who decides, where allowed requests go, where records go. */
export interface H2Session {
  /** May be async. A throw or rejection denies the request. */
  authorize(req: NormalizedRequest): HttpDecision | Promise<HttpDecision>;
  /** where an allowed request goes when its decision has no dispatch (the destination side: the pod) */
  target?: UpstreamTarget;
  onRecord(r: HttpRecord): void;
  /** Read and continue (or start) the trace of each stream, as the HTTP/1.1 engine does; its record carries it. */
  tracer?: HopTracer;
}

export interface ExchangeContext {
  readonly session: H2Session;
  readonly rules: HeaderRules;
  readonly upstreams: H2Sessions;
  /** a stream with no frame either way for this long is reset (Envoy's stream idle timeout) */
  readonly streamIdleMs: number;
  readonly log: Logger;
}

/** A decision without a dispatch: its one target, no deadlines, never retried. */
class OneTarget implements Dispatch {
  readonly timeoutMs = 0;
  readonly attemptTimeoutMs = 0;
  readonly replayBytes = 0;
  private used = false;
  constructor(private readonly target: UpstreamTarget | undefined) {}
  next(): UpstreamTarget | undefined {
    if (this.used) return undefined;
    this.used = true;
    return this.target;
  }
  settle(): undefined {
    return undefined;
  }
  finish(): void {}
}

export class H2Exchange {
  private readonly started = performance.now();
  private method = '';
  private path = '';
  private host = '';
  private grpc = false;
  private forward: http2.OutgoingHttpHeaders = {};
  /** the stream's trace, when the session traces */
  private trace: TraceHop | undefined;
  private decision: HttpDecision | undefined;
  private dispatch: Dispatch | undefined;
  private rejected: string | undefined;
  private error: string | undefined;
  private status = 0;
  /** the grpc-status the client got (the proxy's own, the upstream's trailers-only or trailers) */
  private grpcStatus: number | undefined;
  private bytesSent = 0;
  private bytesReceived = 0;
  private forwardedAfterMs: number | undefined;
  /** the request body: what waits for an attempt, and what is kept for another one */
  private queued: Buffer[] = [];
  private kept: Buffer[] = [];
  private bodyBytes = 0;
  private bodyEnded = false;
  private replayable = true;
  /** the current attempt */
  private up: http2.ClientHttp2Stream | undefined;
  private upUsed = 0;
  private attemptStarted = 0;
  private attemptSent = 0;
  private committed = false;
  private waiting = false;
  private trailers: http2.IncomingHttpHeaders | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private attemptTimer: NodeJS.Timeout | undefined;
  private done = false;
  /** a mirrored copy of this request, fed its body (a route's RequestMirror) */
  private mirror: MirrorTap | undefined;

  constructor(
    private readonly ctx: ExchangeContext,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
  ) {}

  start(): void {
    const { stream } = this;
    stream.once('close', () => this.closed());
    stream.on('error', () => undefined); // the close that follows says it all
    stream.setTimeout(this.ctx.streamIdleMs, () => {
      this.error ??= 'stream-idle-timeout';
      this.cancelUp();
      stream.close(NGHTTP2_CANCEL);
    });
    const r = readRequest(this.headers, this.ctx.rules);
    this.grpc = r.ok ? r.grpc : String(this.headers['content-type'] ?? '').startsWith('application/grpc');
    if (!r.ok) {
      this.method = r.method;
      this.path = r.path;
      this.rejected = r.reason;
      return this.answer(statusOf(r.reason), GRPC.INTERNAL);
    }
    this.method = r.req.method;
    this.path = r.req.path;
    this.host = r.req.host;
    this.forward = r.forward;
    const tracer = this.ctx.session.tracer;
    if (tracer !== undefined) {
      this.trace = tracer.begin(r.req.headers);
      this.forward = withTraceFields(this.forward, this.trace);
    }
    stream.on('data', (d: Buffer) => this.bodyData(d));
    stream.once('end', () => this.bodyEnd());
    let decided: HttpDecision | Promise<HttpDecision>;
    try {
      decided = this.ctx.session.authorize(r.req);
    } catch (err) {
      return this.authzFailed(err);
    }
    if (decided instanceof Promise) decided.then((d) => this.decided(d), (err: unknown) => this.authzFailed(err));
    else this.decided(decided);
  }

  private get live(): boolean {
    return !this.done && !this.stream.closed && !this.stream.destroyed;
  }

  // --- the decision ---

  private authzFailed(err: unknown): void {
    this.error = `authorize: ${errorCode(err)}`;
    this.ctx.log.error({ err, method: this.method, path: this.path, host: this.host }, 'http2 authorize failed; denying');
    this.answer(403, GRPC.PERMISSION_DENIED);
  }

  private decided(d: HttpDecision): void {
    this.decision = d;
    // decided after the stream ended (a request that waited its turn): its dispatch still ends, giving back its place
    if (!this.live) return d?.dispatch?.finish();
    if (d?.allowed !== true) {
      const status = typeof d?.status === 'number' ? d.status : 403;
      return this.answer(status, typeof d?.grpcStatus === 'number' ? d.grpcStatus : status === 403 ? GRPC.PERMISSION_DENIED : grpcStatusOfHttp(status), d?.location);
    }
    if (d.mirror !== undefined) {
      const tap = (this.mirror = d.mirror({ proto: 'h2', headers: this.forward }));
      // what of the body has come so far waits in `queued` (nothing went upstream yet)
      for (const chunk of this.queued) tap?.data(chunk);
      if (this.bodyEnded) tap?.end();
    }
    const edit = d.edit;
    if (edit !== undefined) {
      const f = edit.request.length > 0 ? editHeaderObject(this.forward, edit.request) : { ...this.forward };
      if (edit.host !== undefined) f[':authority'] = edit.host;
      if (edit.path !== undefined) {
        const target = String(f[':path']);
        const q = target.indexOf('?');
        f[':path'] = q < 0 ? edit.path : edit.path + target.slice(q);
      }
      this.forward = f;
    }
    const dispatch: Dispatch = (this.dispatch = d.dispatch ?? new OneTarget(this.ctx.session.target));
    if (this.bodyBytes > dispatch.replayBytes) this.dropKept();
    const grpcMs = this.grpc ? parseGrpcTimeout(String(this.headers['grpc-timeout'] ?? '')) : undefined;
    const routeMs = dispatch.timeoutMs;
    if (grpcMs !== undefined && (routeMs === 0 || grpcMs <= routeMs)) this.timer(grpcMs, () => this.timedOut('grpc-timeout'));
    else if (routeMs > 0) this.timer(routeMs, () => this.timedOut('route-timeout'));
    if (dispatch.delayMs !== undefined && dispatch.delayMs > 0) this.timer(dispatch.delayMs, () => this.attempt());
    else this.attempt();
  }

  // --- attempts ---

  private attempt(): void {
    if (!this.live) return;
    const d = this.dispatch!;
    const target = d.next();
    if (target === undefined) {
      this.error = 'no-healthy-endpoint';
      return this.answer(503, GRPC.UNAVAILABLE);
    }
    this.attemptStarted = performance.now();
    this.attemptSent = 0;
    if (d.attemptTimeoutMs > 0) this.attemptTimer = setTimeout(() => this.attemptTimedOut(), d.attemptTimeoutMs);
    this.ctx.upstreams.get(target.pool, () => target.connect()).then(
      (u) => {
        if (!this.live || this.waiting) return;
        let up: http2.ClientHttp2Stream;
        try {
          up = u.session.request(this.forward, { endStream: this.bodyEnded && this.bodyBytes === 0 });
        } catch (err) {
          // the session was closing: the stream never left
          return this.failed(errorCode(err), false, true);
        }
        this.send(up, u.used);
      },
      (err: unknown) => {
        const refusal = (err as { refusal?: AttemptRefusal }).refusal;
        if (refusal !== undefined) this.refusedByDestination(refusal);
        else this.failed(errorCode(err), false, false);
      },
    );
  }

  private send(up: http2.ClientHttp2Stream, used: number): void {
    this.up = up;
    this.upUsed = used;
    this.attemptSent = performance.now();
    this.forwardedAfterMs ??= this.attemptSent - this.started;
    this.bytesSent = 0;
    const first = this.queued;
    this.queued = [];
    for (const chunk of this.replayable && this.kept.length > 0 ? this.kept : first) this.write(up, chunk);
    if (this.bodyEnded && this.bodyBytes > 0) up.end();
    this.stream.resume();
    up.on('response', (h, flags) => this.response(up, h, (flags & HTTP2_FLAG_END_STREAM) !== 0));
    up.on('error', () => undefined); // its close follows
    up.once('close', () => {
      if (this.up === up && !this.committed) this.failed(up.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused-stream' : `rst ${up.rstCode ?? 0}`, up.rstCode !== NGHTTP2_REFUSED_STREAM, false);
    });
  }

  private write(up: http2.ClientHttp2Stream, chunk: Buffer): void {
    this.bytesSent += chunk.length;
    if (!up.write(chunk)) {
      this.stream.pause();
      up.once('drain', () => this.stream.resume());
    }
  }

  private bodyData(d: Buffer): void {
    this.bodyBytes += d.length;
    this.mirror?.data(d);
    const keep = this.dispatch?.replayBytes ?? 64 * 1024;
    if (this.replayable && this.bodyBytes <= keep) this.kept.push(d);
    else this.dropKept();
    if (this.up !== undefined && !this.committed) this.write(this.up, d);
    else if (this.committed && this.up !== undefined) this.write(this.up, d);
    else {
      this.queued.push(d);
      if (this.queuedBytes() > 64 * 1024) this.stream.pause();
    }
  }

  private bodyEnd(): void {
    this.bodyEnded = true;
    this.mirror?.end();
    if (this.up !== undefined && !this.up.closed) this.up.end();
  }

  private dropKept(): void {
    this.replayable = false;
    this.kept = [];
  }

  private queuedBytes(): number {
    let n = 0;
    for (const c of this.queued) n += c.length;
    return n;
  }

  private settle(status: number, error: string | undefined, connected: boolean, reused: boolean, refusal?: AttemptRefusal): number | undefined {
    if (this.attemptTimer !== undefined) clearTimeout(this.attemptTimer);
    this.attemptTimer = undefined;
    const since = this.attemptSent > 0 ? this.attemptSent : this.attemptStarted;
    return this.dispatch!.settle({ status, error, connected, reused, ms: performance.now() - since, ...(refusal && { refusal }) }, this.replayable);
  }

  private response(up: http2.ClientHttp2Stream, h: http2.IncomingHttpHeaders, end: boolean): void {
    if (this.up !== up || !this.live) return;
    const status = Number(h[':status']);
    const grpcStatus = this.grpc ? trailersOnlyStatus(h, end) : undefined;
    const wait = this.settle(retryStatusOf(grpcStatus, status), undefined, true, this.upUsed > 0);
    if (wait !== undefined) return this.retryAfter(wait);
    this.committed = true;
    this.status = status;
    if (this.grpc) this.grpcStatus = grpcStatus;
    const { stream } = this;
    const response = this.decision?.edit?.response ?? [];
    const relayed = response.length > 0 ? editHeaderObject(relayedHeaders(h), response) : relayedHeaders(h);
    stream.respond(withAdded(relayed, this.dispatch?.responseHeaders?.()), { endStream: end, waitForTrailers: !end });
    if (end) return;
    stream.once('wantTrailers', () => {
      if (!stream.closed) stream.sendTrailers(this.trailers === undefined ? {} : relayedHeaders(this.trailers));
    });
    up.on('data', (d: Buffer) => {
      this.bytesReceived += d.length;
      if (!stream.write(d)) {
        up.pause();
        stream.once('drain', () => up.resume());
      }
    });
    up.once('trailers', (t) => {
      this.trailers = t;
      if (this.grpc) this.grpcStatus = grpcStatusIn(t);
    });
    up.once('end', () => stream.end());
    up.once('close', () => {
      // reset before its end: the client's stream is reset too
      if (up.rstCode !== undefined && up.rstCode !== 0 && !stream.closed) {
        this.error = `upstream reset: rst ${up.rstCode}`;
        stream.close(up.rstCode === NGHTTP2_CANCEL ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR);
      }
    });
  }

  /** The attempt failed before a response: another one if the dispatch says so, else 503 / UNAVAILABLE. */
  private failed(code: string, connected: boolean, reused: boolean): void {
    if (!this.live || this.committed || this.waiting) return;
    const wait = this.settle(0, code, connected, reused || this.upUsed > 0);
    if (wait !== undefined) return this.retryAfter(wait);
    this.error = `upstream: ${code}`;
    this.ctx.log.warn({ event: 'upstream-failed', error: code, method: this.method, path: this.path, host: this.host }, 'http2 upstream failed');
    this.cancelUp();
    this.answer(503, GRPC.UNAVAILABLE);
  }

  /** The destination refused the attempt (its policy, its limit): its answer, final (not retried, nothing ejected). */
  private refusedByDestination(r: AttemptRefusal): void {
    if (!this.live || this.committed || this.waiting) return;
    this.settle(0, r.reason, false, false, r);
    this.answer(r.status, grpcStatusOfHttp(r.status), undefined, true);
  }

  private attemptTimedOut(): void {
    this.attemptTimer = undefined;
    if (!this.live || this.committed || this.waiting) return;
    const wait = this.settle(0, 'backend-timeout', this.up !== undefined, false);
    if (wait !== undefined) return this.retryAfter(wait);
    this.timedOut('backend-timeout');
  }

  private retryAfter(wait: number): void {
    this.cancelUp();
    this.waiting = true;
    this.timer(wait, () => {
      this.waiting = false;
      this.attempt();
    });
  }

  private cancelUp(): void {
    const up = this.up;
    this.up = undefined;
    if (up !== undefined && !up.closed) up.close(NGHTTP2_CANCEL);
  }

  /** The request's deadline passed: 504 / DEADLINE_EXCEEDED if no response has begun, else the stream is reset. */
  private timedOut(reason: string): void {
    if (!this.live) return;
    this.error = reason;
    this.cancelUp();
    if (this.committed) return void this.stream.close(NGHTTP2_CANCEL);
    this.answer(504, GRPC.DEADLINE_EXCEEDED);
  }

  // --- answers and the end ---

  /**
   * The proxy's own answer: a gRPC call gets trailers-only `grpcStatus`, anything else `status` with
   * a short body (and a redirect's `location`); with the route's response headers (as a relayed
   * answer, but not on the headers the answer keeps), unless it is the destination's refusal (`peer`).
   */
  private answer(status: number, grpcStatus: number, location?: string, peer = false): void {
    const { stream } = this;
    if (stream.closed || stream.destroyed || stream.headersSent) return;
    const ops = peer ? undefined : this.decision?.edit?.response;
    const edited = (h: http2.OutgoingHttpHeaders): http2.OutgoingHttpHeaders => (ops === undefined || ops.length === 0 ? h : editHeaderObject(h, ownAnswerOps(ops)));
    if (this.grpc) {
      this.status = 200;
      this.grpcStatus = grpcStatus;
      stream.respond(edited(trailersOnly(grpcStatus)), { endStream: true });
      return;
    }
    this.status = status;
    const body = status === 403 ? DENIED_BODY : bodyOf(status);
    stream.respond(edited({ ':status': status, ...(location !== undefined && { location }), 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }));
    stream.end(this.method === 'HEAD' ? undefined : body);
  }

  private timer(ms: number, fn: () => void): void {
    this.timers.push(setTimeout(fn, ms));
  }

  private closed(): void {
    if (this.done) return;
    this.done = true;
    this.mirror?.abort();
    for (const t of this.timers) clearTimeout(t);
    if (this.attemptTimer !== undefined) clearTimeout(this.attemptTimer);
    if (!this.committed || (this.up !== undefined && !this.up.closed)) this.cancelUp();
    if (this.status === 0 && this.error === undefined && this.rejected === undefined) this.error = 'downstream closed';
    this.dispatch?.finish();
    const record: HttpRecord = {
      method: this.method,
      path: this.path,
      host: this.host,
      status: this.status,
      ...(this.grpcStatus !== undefined && { grpcStatus: this.grpcStatus }),
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      durationMs: Math.round(performance.now() - this.started),
      ...(this.decision !== undefined && { decision: this.decision }),
      ...(this.rejected !== undefined && { rejected: this.rejected }),
      ...(this.error !== undefined && { error: this.error }),
      ...(this.forwardedAfterMs !== undefined && { forwardedAfterMs: this.forwardedAfterMs }),
      ...(this.trace !== undefined && { trace: this.trace }),
    };
    try {
      this.ctx.session.onRecord(record);
    } catch (err) {
      this.ctx.log.error({ err }, 'http2 onRecord callback failed');
    }
  }
}

/** `headers` with the mesh's own added (a sticky session's cookie), a name already there given both values. */
function withAdded(headers: http2.OutgoingHttpHeaders, added: readonly (readonly [string, string])[] | undefined): http2.OutgoingHttpHeaders {
  if (added === undefined) return headers;
  for (const [name, value] of added) {
    const had = headers[name];
    headers[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [String(had)]), value];
  }
  return headers;
}
