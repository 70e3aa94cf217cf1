/**
 * The proxy's HTTP/2 front (h2c: cleartext, prior knowledge), on raw streams like the HTTP/1.1
 * engine: it is handed a byte stream (a pod's TCP socket, an HBONE stream) whose first bytes
 * were the client preface, and serves it with Node's `http2` (nghttp2: framing, HPACK, flow
 * control, its own limits on header lists, streams and resets) — HTTP/2 here is the routed and
 * L7-authorized path, not the byte-splicing hot path the lean engine replaced. Each stream is an
 * H2Exchange (exchange.ts); upstream sessions are shared per name (sessions.ts).
 */
import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../../common/log';
import { compileHeaderRules, withSetHeaders, type HeaderRules } from '../http/headers';
import { H2Exchange, type ExchangeContext, type H2Session } from './exchange';
import { withUpgradedStream, type UpgradeRequest } from './h2c-upgrade';
import { joinedStream } from './joined';
import { H2Sessions } from './sessions';

export interface H2FrontOptions {
  /** extra client headers to remove (lowercase; a trailing '*' makes a prefix) */
  stripHeaders?: string[];
  /** a connection without a stream, or a stream without a frame, for this long is closed (default 300 s) */
  idleTimeoutMs?: number;
  log: Logger;
}

/** nghttp2's settings towards clients: the HTTP/1.1 engine's limits in HTTP/2 terms. */
const SERVER_SETTINGS: http2.Settings = { maxConcurrentStreams: 256, maxHeaderListSize: 64 * 1024, enablePush: false };

export class H2Front {
  private readonly server: http2.Http2Server;
  private readonly rules: HeaderRules;
  private readonly log: Logger;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly contexts = new WeakMap<http2.ServerHttp2Session, ExchangeContext>();
  /** the context of the connection being handed in (the server makes its session synchronously) */
  private pending: ExchangeContext | undefined;
  private readonly idleMs: number;
  readonly upstreams = new H2Sessions();

  constructor(opts: H2FrontOptions) {
    this.log = opts.log;
    this.rules = compileHeaderRules(undefined, opts.stripHeaders);
    const idle = (this.idleMs = opts.idleTimeoutMs ?? 300_000);
    this.server = http2.createServer({ settings: SERVER_SETTINGS, maxSessionMemory: 10, maxHeaderListPairs: 256 });
    this.server.on('session', (s: http2.ServerHttp2Session) => {
      const ctx = this.pending;
      if (ctx === undefined) return void s.destroy();
      this.contexts.set(s, ctx);
      this.sessions.add(s);
      s.setTimeout(idle, () => s.close());
      s.on('error', (err) => this.log.debug({ err }, 'http2 client session error'));
      s.once('close', () => this.sessions.delete(s));
    });
    this.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      const ctx = this.contexts.get(stream.session as http2.ServerHttp2Session);
      if (ctx === undefined) return void stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      new H2Exchange(ctx, stream, headers).start();
    });
  }

  /** live client connections */
  get active(): number {
    return this.sessions.size;
  }

  /**
   * Serve HTTP/2 on `conn`; `head` holds the bytes already read from it (the preface at least),
   * which nghttp2 reads first.
   */
  handle(conn: Duplex, head: Buffer, session: H2Session & { setHeaders?: Record<string, string> }): void {
    this.serve(conn, () => joinedStream(conn, head), session);
  }

  /**
   * Serve HTTP/2 on a connection the HTTP/1.1 engine switched with 101 (`Upgrade: h2c`): `req`,
   * the upgrade request, is its stream 1; `head` the bytes that followed it.
   */
  handleUpgraded(conn: Duplex, head: Buffer, req: UpgradeRequest, session: H2Session & { setHeaders?: Record<string, string> }): void {
    this.serve(conn, () => withUpgradedStream(conn, head, req), session);
  }

  private serve(conn: Duplex, stream: () => Duplex, session: H2Session & { setHeaders?: Record<string, string> }): void {
    if (conn.destroyed) return;
    const ctx: ExchangeContext = { session, rules: withSetHeaders(this.rules, session.setHeaders), upstreams: this.upstreams, streamIdleMs: this.idleMs, log: this.log };
    this.pending = ctx;
    try {
      this.server.emit('connection', stream());
    } finally {
      this.pending = undefined;
    }
  }

  closeAll(): void {
    for (const s of [...this.sessions]) s.destroy();
    this.upstreams.closeAll();
  }
}
