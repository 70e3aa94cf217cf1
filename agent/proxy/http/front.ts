/**
 * The hardened HTTP/1.1 front of the node proxy. It is handed byte streams (a pod's TCP
 * connection, an HBONE CONNECT stream — any Duplex) carrying HTTP/1.1, parses each request
 * with Node's strict parser (llhttp, llhttp.ts) plus the checks that parser leaves out,
 * normalizes it once, asks authorize(), and answers 403 itself or forwards the normalized
 * request over a kept-alive upstream connection. No http.Server, ClientRequest or http.Agent:
 * the engine is downstream.ts (a connection and its queue of requests), exchange.ts (one
 * request's lifecycle), upstream.ts (upstream connections and their pools), messages.ts (the
 * bytes it writes). Deadlines are checked by one sweep per front.
 *
 * WebSocket upgrades are tunnelled after authz (and only once the upstream answers 101).
 * `Upgrade: h2c` is switched to HTTP/2 when the session takes it (HttpSession.upgradeH2c, the
 * routed path); any other upgrade is refused with 501, and CONNECT with 405.
 */
import type { Duplex } from 'node:stream';
import type { FrontContext } from './context';
import { Downstream } from './downstream';
import { compileHeaderRules, withSetHeaders } from './headers';
import { resolveLimits } from './limits';
import { checkParserBinding } from './llhttp';
import type { HttpFrontOptions, HttpRecord, HttpSession } from './types';
import { UpstreamPool } from './pool';
import type { ConnectionPool, UpstreamConnection } from './upstream';

/** Sweep period bounds: a tenth of the shortest deadline, within these. */
const MIN_TICK_MS = 10;
const MAX_TICK_MS = 1000;
/** Idle upstream connections kept per shared pool, and for how long. */
const POOL_MAX_IDLE = 128;
const POOL_IDLE_MS = 30_000;

export class HttpFront {
  private readonly shared: Omit<FrontContext, 'authorize' | 'connect' | 'record' | 'pool' | 'tracer' | 'sharedPool' | 'upgradeH2c'>;
  /** the context of connections handed in without a session of their own */
  private readonly defaults: FrontContext | undefined;
  private readonly conns = new Set<Downstream>();
  private readonly pools = new Map<string, ConnectionPool>();
  private readonly tickMs: number;
  private sweep: NodeJS.Timeout | undefined;
  private readonly admitIdle: HttpFrontOptions['admitIdle'];
  /** upstream connections closed instead of kept idle, refused a place by admitIdle */
  idleRefused = 0;

  constructor(opts: HttpFrontOptions) {
    checkParserBinding();
    const limits = resolveLimits(opts.limits);
    this.admitIdle = opts.admitIdle;
    this.shared = { limits, rules: compileHeaderRules(opts.setHeaders, opts.stripHeaders), log: opts.log };
    const { authorize, connect, onRecord } = opts;
    this.defaults = authorize && connect && onRecord ? this.contextFor({ authorize, connect, onRecord, ...(opts.pool !== undefined && { pool: opts.pool }) }) : undefined;
    this.tickMs = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs, limits.idleTimeoutMs) / 10)));
  }

  /** live downstream connections */
  get active(): number {
    return this.conns.size;
  }

  /** idle upstream connections in the shared pools */
  get idleUpstreams(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.idleCount;
    return n;
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
    this.ensureSweep();
    d.start(head);
  }

  /** Destroy every downstream connection (and with it its upstream connection) and every idle upstream one. */
  closeAll(): void {
    for (const d of [...this.conns]) {
      d.socket.destroy();
      d.onClose();
    }
    for (const p of this.pools.values()) p.destroy();
    this.pools.clear();
  }

  private contextFor(session: HttpSession): FrontContext {
    const { log } = this.shared;
    const onRecord = session.onRecord;
    return {
      ...this.shared,
      rules: withSetHeaders(this.shared.rules, session.setHeaders),
      authorize: session.authorize,
      connect: session.connect,
      ...(session.pool !== undefined && { poolName: session.pool }),
      sharedPool: (name: string) => this.poolFor(name),
      tracer: session.tracer,
      upgradeH2c: session.upgradeH2c,
      record(r: HttpRecord): void {
        try {
          onRecord(r);
        } catch (err) {
          log.error({ err }, 'http onRecord callback failed');
        }
      },
    };
  }

  /** The shared pool of that name: in the map (and swept) while any connection belongs to it (idle or busy). */
  private poolFor(name: string): ConnectionPool {
    let p = this.pools.get(name);
    if (p === undefined) {
      const admit = this.admitIdle;
      const pool: ConnectionPool = new UpstreamPool<UpstreamConnection>(
        POOL_MAX_IDLE,
        POOL_IDLE_MS,
        () => {
          if (!this.pools.has(name)) this.pools.set(name, pool);
          this.ensureSweep();
        },
        admit &&
          (() => {
            const release = admit(name);
            if (release === undefined) this.idleRefused++;
            return release;
          }),
      );
      p = pool;
      this.pools.set(name, p);
    }
    return p;
  }

  private ensureSweep(): void {
    this.sweep ??= setInterval(() => this.tick(), this.tickMs).unref();
  }

  private forget(d: Downstream): void {
    this.conns.delete(d);
  }

  private tick(): void {
    const now = performance.now();
    for (const d of this.conns) d.check(now);
    for (const [name, p] of this.pools) {
      p.sweep(now);
      // kept while a connection of it is out serving a request: that is where it comes back
      if (p.unused) this.pools.delete(name);
    }
    if (this.conns.size === 0 && this.pools.size === 0 && this.sweep !== undefined) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }
}
