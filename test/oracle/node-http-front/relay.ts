/**
 * The upstream leg of an allowed request: send it in normalized form through the
 * downstream connection's agent, stream the body both ways with backpressure, relay the
 * response, and handle the upstream failing before or during the response. A WebSocket
 * upgrade the upstream accepts becomes a spliced tunnel.
 *
 * Handlers are shared functions that find their relay through a symbol on the emitter,
 * so forwarding a request allocates no closures.
 */
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { errorCode } from '../../../agent/proxy/connect';
import { splice } from '../../../agent/proxy/pipe';
import { Kind } from '../../../agent/proxy/http/check';
import type { FrontContext } from '../../../agent/proxy/http/context';
import { rawResponseHead, relayedResponseHeaders } from '../../../agent/proxy/http/headers';
import { bodyOf, rawResponse } from '../../../agent/proxy/http/refusal';

const kRelay = Symbol('palisade.http.relay');

/** Safe to send again when a kept-alive upstream connection turns out to have been closed under us. */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
type Tagged<T> = T & { [kRelay]?: Relay };

/**
 * What a relay reads of the exchange it forwards, and the fields it reports back into (status,
 * replied, closeAfter, error, byte counts). exchange.ts's Exchange is the one implementation;
 * naming the contract here keeps relay.ts from importing exchange.ts (which creates relays).
 */
export interface RelayedExchange {
  readonly link: {
    readonly ctx: FrontContext;
    readonly socket: Duplex;
    readonly closed: boolean;
    agent(): http.Agent;
    writeRawAndClose(buf: Buffer): void;
  };
  readonly kind: Kind;
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse | undefined;
  readonly head: Buffer | undefined;
  readonly hasBody: boolean;
  readonly finished: boolean;
  readonly aborted: boolean;
  status: number;
  replied: boolean;
  closeAfter: boolean;
  error: string | undefined;
  bytesSent: number;
  bytesReceived: number;
  receivingBody(): boolean;
  reply(status: number, body: string, close: boolean): void;
  complete(): void;
}

export class Relay {
  /** a WebSocket tunnel is up; it reports its own end */
  tunnelling = false;
  private up: http.ClientRequest | undefined;
  private upRes: http.IncomingMessage | undefined;
  private retried = false;
  private bodyAttached = false;

  constructor(
    private readonly ex: RelayedExchange,
    private readonly target: string,
    private readonly headers: string[],
  ) {}

  send(): void {
    const ex = this.ex;
    const up = http.request({
      agent: ex.link.agent(),
      method: ex.method,
      path: this.target,
      headers: this.headers,
      setHost: false,
    }) as Tagged<http.ClientRequest>;
    up[kRelay] = this;
    this.up = up;
    up.on('response', onUpstreamResponse);
    up.on('error', onUpstreamError);
    if (ex.kind === Kind.Upgrade) up.on('upgrade', onUpstreamUpgrade);
    if (!ex.hasBody) {
      up.end();
      return;
    }
    up.on('drain', onUpstreamDrain);
    if (!this.bodyAttached) {
      this.bodyAttached = true;
      const req = ex.req as Tagged<http.IncomingMessage>;
      req[kRelay] = this;
      req.on('data', onRequestData);
      req.on('end', onRequestEnd);
    }
  }

  /** Stop talking to the upstream; whatever of the request body still arrives is read and dropped. */
  stop(): void {
    this.up?.destroy();
    if (this.bodyAttached) {
      this.bodyAttached = false;
      this.ex.req.off('data', onRequestData);
      this.ex.req.off('end', onRequestEnd);
      this.ex.req.resume();
    }
  }

  /** The upstream went away mid-response: the client cannot get a whole response, so close it. */
  reset(err: Error | undefined): void {
    const ex = this.ex;
    if (ex.finished) return;
    ex.error ??= err ? `upstream reset: ${errorCode(err)}` : 'upstream reset';
    ex.closeAfter = true;
    this.stop();
    if (ex.res !== undefined) ex.res.destroy();
    else ex.link.socket.destroy();
  }

  /**
   * The upstream failed before a response started: 503. A safe method without a body is
   * sent once more when the failure was a kept-alive connection closed under us.
   */
  onError(up: http.ClientRequest, err: Error): void {
    const ex = this.ex;
    if (ex.finished || up !== this.up) return;
    if (this.upRes !== undefined) return this.reset(err);
    const code = errorCode(err);
    if (up.reusedSocket && !this.retried && !ex.hasBody && code === 'ECONNRESET' && RETRYABLE.has(ex.method)) {
      this.retried = true;
      return this.send();
    }
    ex.error = `upstream: ${code}`;
    this.stop();
    ex.link.ctx.log.warn({ event: 'upstream-failed', error: code, method: ex.method, path: ex.path, host: ex.host }, 'http upstream failed');
    if (ex.res === undefined) {
      ex.status = 503;
      ex.closeAfter = true;
      ex.replied = true;
      ex.link.writeRawAndClose(rawResponse(503));
      return ex.complete();
    }
    if (ex.res.headersSent) ex.res.destroy();
    else ex.reply(503, bodyOf(503), ex.receivingBody());
  }

  onResponse(upRes: http.IncomingMessage): void {
    const ex = this.ex;
    if (ex.finished || ex.aborted) {
      upRes.destroy();
      return;
    }
    this.upRes = upRes;
    ex.status = upRes.statusCode ?? 502;
    (upRes as Tagged<http.IncomingMessage>)[kRelay] = this;
    upRes.on('data', onUpstreamData);
    upRes.on('end', onUpstreamEnd);
    upRes.on('close', onUpstreamClose);
    upRes.on('error', ignore);
    ex.replied = true;
    const res = ex.res;
    if (res === undefined) {
      // An upgrade request the upstream answered without upgrading: relay that answer raw, then close.
      ex.closeAfter = true;
      ex.link.socket.write(rawResponseHead(ex.status, upRes.statusMessage ?? '', relayedResponseHeaders(upRes.rawHeaders, false), true));
      return;
    }
    if (ex.receivingBody()) {
      ex.closeAfter = true;
      res.shouldKeepAlive = false;
    }
    try {
      res.writeHead(ex.status, upRes.statusMessage, relayedResponseHeaders(upRes.rawHeaders, false));
    } catch (err) {
      ex.error = `bad upstream response: ${errorCode(err)}`;
      upRes.destroy();
      this.upRes = undefined;
      this.stop();
      return ex.reply(502, bodyOf(502), true);
    }
    (res as Tagged<http.ServerResponse>)[kRelay] = this;
    res.on('drain', onDownstreamDrain);
  }

  onData(upRes: http.IncomingMessage, chunk: Buffer): void {
    const ex = this.ex;
    ex.bytesReceived += chunk.length;
    const ok = ex.res !== undefined ? ex.res.write(chunk) : ex.link.socket.write(chunk);
    if (!ok) {
      upRes.pause();
      if (ex.res === undefined) ex.link.socket.once('drain', () => upRes.resume());
    }
  }

  onEnd(): void {
    const ex = this.ex;
    if (ex.res !== undefined) ex.res.end();
    else {
      ex.link.socket.end();
      ex.complete();
    }
  }

  downstreamDrained(): void {
    this.upRes?.resume();
  }

  requestData(chunk: Buffer): void {
    const up = this.up;
    if (up === undefined || up.destroyed) return;
    this.ex.bytesSent += chunk.length;
    if (!up.write(chunk)) this.ex.req.pause();
  }

  requestEnd(): void {
    this.up?.end();
  }

  upstreamDrained(): void {
    this.ex.req.resume();
  }

  /** A WebSocket upgrade the upstream accepted: write its 101 and splice the two connections. */
  onUpgrade(upRes: http.IncomingMessage, upSocket: Duplex, upHead: Buffer): void {
    const ex = this.ex;
    if (ex.finished || ex.link.closed) {
      upSocket.destroy();
      return;
    }
    ex.status = 101;
    ex.replied = true;
    this.tunnelling = true;
    const sock = ex.link.socket;
    sock.write(rawResponseHead(101, upRes.statusMessage ?? '', relayedResponseHeaders(upRes.rawHeaders, true), false));
    if (upHead.length > 0) sock.write(upHead);
    const clientHead = ex.head?.length ?? 0;
    if (clientHead > 0) upSocket.write(ex.head);
    splice(sock, upSocket, (r) => {
      ex.bytesSent = clientHead + r.bytesSent;
      ex.bytesReceived = upHead.length + r.bytesReceived;
      if (r.error) ex.error = `tunnel: ${errorCode(r.error)}`;
      ex.complete();
    });
  }
}

function ignore(): void {}

function onUpstreamResponse(this: Tagged<http.ClientRequest>, upRes: http.IncomingMessage): void {
  this[kRelay]?.onResponse(upRes);
}

function onUpstreamError(this: Tagged<http.ClientRequest>, err: Error): void {
  this[kRelay]?.onError(this, err);
}

function onUpstreamUpgrade(this: Tagged<http.ClientRequest>, upRes: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const relay = this[kRelay];
  if (relay === undefined) socket.destroy();
  else relay.onUpgrade(upRes, socket, head);
}

function onUpstreamData(this: Tagged<http.IncomingMessage>, chunk: Buffer): void {
  this[kRelay]?.onData(this, chunk);
}

function onUpstreamEnd(this: Tagged<http.IncomingMessage>): void {
  this[kRelay]?.onEnd();
}

function onUpstreamClose(this: Tagged<http.IncomingMessage>): void {
  if (!this.complete) this[kRelay]?.reset(undefined);
}

function onDownstreamDrain(this: Tagged<http.ServerResponse>): void {
  this[kRelay]?.downstreamDrained();
}

function onRequestData(this: Tagged<http.IncomingMessage>, chunk: Buffer): void {
  this[kRelay]?.requestData(chunk);
}

function onRequestEnd(this: Tagged<http.IncomingMessage>): void {
  this[kRelay]?.requestEnd();
}

function onUpstreamDrain(this: Tagged<http.ClientRequest>): void {
  this[kRelay]?.upstreamDrained();
}
