/**
 * THE ORACLE, not product code: the HTTP/1.1 front as it was before the lean engine
 * (agent/proxy/http/), built on Node's http.Server and a ClientRequest per request on a
 * per-connection http.Agent. It stays in the test tree, unchanged but for its import paths, so
 * the differential test (test/integration/proxy/http-engine-differential.test.ts) can hold the
 * engine to the same decisions and the same bytes upstream. Its original header follows.
 *
 * The hardened HTTP/1.1 front of the node proxy. It is handed byte streams (a pod's TCP
 * connection, an HBONE CONNECT stream — any Duplex) carrying HTTP/1.1, parses each request
 * with Node's strict parser (llhttp) plus the checks that parser leaves out, normalizes it
 * once, asks authorize(), and answers 403 itself or forwards the normalized request to one
 * upstream connection per downstream connection.
 *
 * Node's http.Server is used without listen(): connections come in by
 * `emit('connection')`. Its own timeouts only run on a listening server, so the deadlines
 * here are ours, checked by one sweep per front.
 *
 * WebSocket upgrades are tunnelled after authz (and only once the upstream answers 101).
 * Any other upgrade (h2c…) is refused with 501, and CONNECT with 405.
 */
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { errorCode } from '../../../common/errors';
import type { FrontContext } from '../../../agent/proxy/http/context';
import { Downstream, downstreamOf } from './downstream';
import { Kind } from '../../../agent/proxy/http/check';
import { compileHeaderRules, withSetHeaders } from '../../../agent/proxy/http/headers';
import { resolveLimits } from '../../../agent/proxy/http/limits';
import { parserErrorReason } from '../../../agent/proxy/http/refusal';
import type { HttpFrontOptions, HttpRecord, HttpSession } from '../../../agent/proxy/http/types';
import { writeBuffersOnly } from '../../../agent/proxy/http/writev';

/** Sweep period bounds: a tenth of the shortest deadline, within these. */
const MIN_TICK_MS = 10;
const MAX_TICK_MS = 1000;

export class HttpFront {
  private readonly shared: Omit<FrontContext, 'authorize' | 'connect' | 'record'>;
  /** the context of connections handed in without a session of their own */
  private readonly defaults: FrontContext | undefined;
  private readonly server: http.Server;
  private readonly conns = new Set<Downstream>();
  private readonly tickMs: number;
  private sweep: NodeJS.Timeout | undefined;

  constructor(opts: HttpFrontOptions) {
    const limits = resolveLimits(opts.limits);
    this.shared = { limits, rules: compileHeaderRules(opts.setHeaders, opts.stripHeaders), log: opts.log };
    const { authorize, connect, onRecord } = opts;
    this.defaults = authorize && connect && onRecord ? this.contextFor({ authorize, connect, onRecord }) : undefined;
    this.tickMs = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs, limits.idleTimeoutMs) / 10)));
    this.server = http.createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      insecureHTTPParser: false,
      requireHostHeader: false, // checked by us, so the refusal is recorded
      joinDuplicateHeaders: false,
      requestTimeout: 0,
      headersTimeout: 0,
      keepAliveTimeout: 0,
    });
    // 0 = no cap in Node; our own cap answers 431 instead of Node's silent truncation at 2000.
    this.server.maxHeadersCount = 0;
    // A client that half-closes after pipelining still gets every answer.
    (this.server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.server.on('request', onRequest);
    this.server.on('checkContinue', onCheckContinue);
    this.server.on('checkExpectation', onCheckExpectation);
    this.server.on('upgrade', onUpgrade);
    this.server.on('connect', onConnect);
    this.server.on('clientError', onClientError);
  }

  /** live downstream connections */
  get active(): number {
    return this.conns.size;
  }

  /**
   * Serve HTTP/1.1 on `conn`. `head` holds bytes a protocol sniffer already read from it;
   * they are parsed before anything else.
   */
  handle(conn: Duplex, head?: Buffer, session?: HttpSession): void {
    if (conn.destroyed) return;
    const ctx = session ? this.contextFor(session) : this.defaults;
    if (!ctx) throw new TypeError('HttpFront.handle: no session given and the front has no default one');
    const d = new Downstream(ctx, conn, (x) => this.forget(x));
    this.conns.add(d);
    writeBuffersOnly(conn);
    this.server.emit('connection', conn);
    d.hookParser();
    if (head !== undefined && head.length > 0) conn.emit('data', head);
    if (conn.readableFlowing === false) conn.resume();
    this.sweep ??= setInterval(() => this.tick(), this.tickMs).unref();
  }

  /** Destroy every downstream connection (and with it its upstream connection). */
  closeAll(): void {
    for (const d of [...this.conns]) {
      d.socket.destroy();
      d.onClose();
    }
  }

  private contextFor(session: HttpSession): FrontContext {
    const { log } = this.shared;
    const onRecord = session.onRecord;
    return {
      ...this.shared,
      rules: withSetHeaders(this.shared.rules, session.setHeaders),
      authorize: session.authorize,
      connect: session.connect,
      record(r: HttpRecord): void {
        try {
          onRecord(r);
        } catch (err) {
          log.error({ err }, 'http onRecord callback failed');
        }
      },
    };
  }

  private forget(d: Downstream): void {
    this.conns.delete(d);
    if (this.conns.size === 0 && this.sweep !== undefined) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  private tick(): void {
    const now = performance.now();
    for (const d of this.conns) d.check(now);
  }
}

function onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  enqueue(Kind.Request, req, res, undefined);
}

function onCheckContinue(req: http.IncomingMessage, res: http.ServerResponse): void {
  enqueue(Kind.Continue, req, res, undefined);
}

function onCheckExpectation(req: http.IncomingMessage, res: http.ServerResponse): void {
  enqueue(Kind.Expectation, req, res, undefined);
}

function onUpgrade(req: http.IncomingMessage, _socket: Duplex, head: Buffer): void {
  enqueue(Kind.Upgrade, req, undefined, head);
}

function onConnect(req: http.IncomingMessage, _socket: Duplex, head: Buffer): void {
  enqueue(Kind.Connect, req, undefined, head);
}

function enqueue(kind: Kind, req: http.IncomingMessage, res: http.ServerResponse | undefined, head: Buffer | undefined): void {
  const d = downstreamOf(req.socket);
  if (d === undefined) {
    req.socket.destroy();
    return;
  }
  d.enqueue(kind, req, res, head);
}

function onClientError(err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  const d = downstreamOf(socket);
  // Not a parse error (ECONNRESET, EPIPE…): the connection is gone.
  if (d === undefined || errorCode(err)?.startsWith('HPE_') !== true) {
    socket.destroy();
    return;
  }
  d.fail(parserErrorReason(err));
}
