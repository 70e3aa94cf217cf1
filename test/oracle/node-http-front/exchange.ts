/**
 * One request on a downstream connection: check → normalize → authorize → refuse, answer
 * 403, or hand it to a Relay that forwards it in normalized form. Holds what the record
 * reports. Handlers are shared functions that find their exchange through a symbol on the
 * emitter, so the synchronous-authz path allocates no closures.
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { errorCode } from '../../../agent/proxy/connect';
import { checkRequest, Kind } from '../../../agent/proxy/http/check';
import type { FrontContext } from '../../../agent/proxy/http/context';
import { bodyOf, DENIED_BODY, DENIED_HEADERS, DENIED_RAW, rawResponse, statusOf } from '../../../agent/proxy/http/refusal';
import { Relay } from './relay';
import type { HttpDecision, NormalizedRequest } from '../../../agent/proxy/http/types';

/** What an exchange needs of its downstream connection. */
export interface Link {
  readonly ctx: FrontContext;
  readonly socket: Duplex;
  readonly closed: boolean;
  agent(): http.Agent;
  /** Send a complete response on the raw connection and close it. */
  writeRawAndClose(buf: Buffer): void;
  exchangeDone(ex: Exchange): void;
}

const kExchange = Symbol('palisade.http.exchange');
type Tagged<T> = T & { [kExchange]?: Exchange };

const MAX_LOGGED = 256;
/** A denied request's body up to this size is read and dropped so the connection stays usable. */
const DRAIN_LIMIT = 64 * 1024;

function clip(s: string): string {
  return s.length > MAX_LOGGED ? s.slice(0, MAX_LOGGED) : s;
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

export class Exchange {
  readonly started = performance.now();
  readonly method: string;
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

  private chunked = false;
  private contentLength = 0;
  private drained = 0;
  private relay: Relay | undefined;

  constructor(
    readonly link: Link,
    readonly kind: Kind,
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse | undefined,
    /** bytes after an upgrade request's head */
    readonly head: Buffer | undefined,
  ) {
    this.method = req.method ?? '';
    this.path = clip(req.url ?? '');
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    this.hasBody = te !== undefined || (cl !== undefined && cl !== '0');
    if (res !== undefined) {
      (res as Tagged<http.ServerResponse>)[kExchange] = this;
      res.on('close', onResponseClose);
    }
  }

  /** The body of this request is still arriving. */
  receivingBody(): boolean {
    return this.hasBody && !this.req.complete && this.kind !== Kind.Upgrade && this.kind !== Kind.Connect;
  }

  start(): void {
    if (this.broken !== undefined) return this.refuse(this.broken);
    const n = this.check();
    if (n === undefined) return;
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

  /** The parser or a timer failed while this request's body was arriving. */
  abort(reason: string): void {
    if (this.finished || this.aborted) return;
    if (this.replied) {
      // The answer is on its way: the connection closes after it, and the upstream hears no more.
      this.closeAfter = true;
      if (this.receivingBody()) this.relay?.stop();
      return;
    }
    this.aborted = true;
    this.rejected = reason;
    this.closeAfter = true;
    const status = statusOf(reason);
    this.logRefusal(reason, status);
    this.relay?.stop();
    if (this.res === undefined) this.link.writeRawAndClose(rawResponse(status));
    else if (this.res.headersSent) this.res.destroy();
    else this.reply(status, bodyOf(status), true);
  }

  /** Never started: the connection closed or was refused before its turn. */
  abandon(error: string): void {
    this.error ??= error;
    this.complete();
  }

  downstreamClosed(): void {
    if (this.relay?.tunnelling) return; // the splice reports when both sides are gone
    this.error ??= 'downstream closed';
    this.relay?.stop();
    this.complete();
  }

  /** The connection may carry another request after this one. */
  keepsConnection(): boolean {
    if (this.closeAfter) return false;
    return this.res !== undefined && this.res.shouldKeepAlive;
  }

  /** Status the client got, for the record. */
  statusSent(): number {
    if (this.res === undefined) return this.status;
    return this.res.headersSent ? this.status : 0;
  }

  complete(): void {
    if (this.finished) return;
    this.finished = true;
    this.link.exchangeDone(this);
  }

  /** Our own short answer through Node's ServerResponse. */
  reply(status: number, body: string, close: boolean): void {
    const res = this.res!;
    this.status = status;
    this.replied = true;
    if (close) {
      this.closeAfter = true;
      res.shouldKeepAlive = false;
    }
    res.writeHead(status, ['content-type', 'text/plain', 'content-length', String(Buffer.byteLength(body))]);
    res.end(body);
  }

  /** The response closed: finished, or the client went away first. */
  responseClosed(): void {
    if (this.res !== undefined && !this.res.writableFinished) {
      this.error ??= 'downstream closed';
      this.relay?.reset(undefined);
    }
    this.complete();
  }

  private check(): NormalizedRequest | undefined {
    const { ctx } = this.link;
    const c = checkRequest(this.req, this.kind, ctx.rules, ctx.limits.maxHeaders);
    if (!c.ok) {
      this.host = c.host;
      if (c.path !== undefined) this.path = c.path;
      return this.refuse(c.reason);
    }
    this.host = c.request.host;
    this.path = c.request.path;
    this.chunked = c.chunked;
    this.contentLength = c.contentLength;
    this.hasBody = c.chunked || c.contentLength > 0;
    this.relay = new Relay(this, c.target, c.forward);
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
    if (this.res === undefined) {
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
    if (this.finished || this.aborted) return;
    this.decision = decision;
    if (decision?.allowed !== true) return this.deny();
    if (this.link.closed) return this.downstreamClosed();
    if (this.kind === Kind.Continue) this.res!.writeContinue();
    this.relay!.send();
  }

  /** 403 with Istio's body; the connection stays usable unless the request body is unread and large. */
  private deny(): void {
    this.status = 403;
    this.link.ctx.log.info({ event: 'denied', method: this.method, path: this.path, host: this.host }, 'http request denied');
    if (this.res === undefined) {
      this.closeAfter = true;
      this.replied = true;
      this.link.writeRawAndClose(DENIED_RAW);
      return this.complete();
    }
    if (this.receivingBody() && this.kind !== Kind.Continue && (this.chunked || this.contentLength <= DRAIN_LIMIT)) {
      // A small body still arriving: read it to its end and drop it, then answer on a usable connection.
      const req = this.req as Tagged<http.IncomingMessage>;
      req[kExchange] = this;
      req.on('data', onDrainData);
      req.on('end', onDrainEnd);
      return;
    }
    this.sendDenied();
  }

  private sendDenied(): void {
    const res = this.res!;
    this.replied = true;
    if (this.receivingBody()) {
      this.closeAfter = true;
      res.shouldKeepAlive = false;
    }
    res.writeHead(403, DENIED_HEADERS);
    res.end(DENIED_BODY);
  }

  drainData(chunk: Buffer): void {
    this.drained += chunk.length;
    if (this.drained <= DRAIN_LIMIT || this.replied) return;
    this.req.off('data', onDrainData);
    this.req.off('end', onDrainEnd);
    this.sendDenied();
  }

  drainEnd(): void {
    if (!this.replied && !this.aborted && !this.finished) this.sendDenied();
  }
}

function onResponseClose(this: Tagged<http.ServerResponse>): void {
  this[kExchange]?.responseClosed();
}

function onDrainData(this: Tagged<http.IncomingMessage>, chunk: Buffer): void {
  this[kExchange]?.drainData(chunk);
}

function onDrainEnd(this: Tagged<http.IncomingMessage>): void {
  this[kExchange]?.drainEnd();
}
