/**
 * The idle upstream connections to one destination (a pod's address and port, which is what the
 * destination side connects to for every client: requests are authorized one by one, so a
 * connection may serve requests of different clients, as haproxy's and Envoy's do): last in
 * first out, at most `maxIdle`, each for at most `idleMs` (or its own, a DestinationRule's
 * idleTimeout) or what the upstream said it keeps one (`Keep-Alive: timeout=N`). With `admitIdle`, a connection is kept idle only if it gets a
 * place (the source node's routed upstreams take one of their client pod's connection share while
 * idle: agent/traffic/router.ts), held until it is used again or closed; refused, it is closed.
 * A pool knows how many connections belong to it, those out serving a request too: the front keeps
 * a pool (and sweeps it) while any does, so the pool of connections that were all busy during a
 * sweep is still the one they come back to, not one nobody takes from or sweeps any more.
 */
/** What the pool needs of a connection (upstream.ts's C is one). */
export interface PooledConnection {
  readonly alive: boolean;
  /** when, idle in its pool, it stops being offered (set by the pool) */
  expires: number;
  /** how long the upstream said it keeps an idle connection, when it said so */
  readonly keepAliveMs: number | undefined;
  /** how long it may wait idle, when its destination says (a DestinationRule's idleTimeout; else the pool's) */
  readonly idleMs?: number | undefined;
  destroy(): void;
}

/** Idle connections to one destination. */
export class UpstreamPool<C extends PooledConnection = PooledConnection> {
  private readonly idle: C[] = [];
  /** the places idle connections hold (with admitIdle) */
  private readonly places = new Map<C, () => void>();
  /** connections closed instead of kept idle, for want of a place */
  refused = 0;
  /** its connections, idle or out serving a request (adopt/disown): the front drops a pool only when it has none */
  private members = 0;

  constructor(
    private readonly maxIdle: number,
    private readonly idleMs: number,
    /** called when a connection goes idle (the front sweeps pools that hold some) */
    private readonly onIdle?: () => void,
    /** a place for one more idle connection (its release), or undefined: it is closed instead */
    private readonly admitIdle?: () => (() => void) | undefined,
  ) {}

  get idleCount(): number {
    return this.idle.length;
  }

  /** No connection belongs to it (none idle, none out serving a request). */
  get unused(): boolean {
    return this.members === 0;
  }

  /** A connection now belongs to this pool (it comes back to it, or closes). */
  adopt(): void {
    this.members++;
  }

  /** A connection of this pool is gone (closed, handed over, or another pool's now). */
  disown(): void {
    this.members--;
  }

  /** The most recently used idle connection still open and not expired, or undefined. */
  take(): C | undefined {
    const now = performance.now();
    for (;;) {
      const c = this.idle.pop();
      if (c === undefined) return undefined;
      this.release(c);
      if (c.alive && now < c.expires) return c;
      c.destroy();
    }
  }

  put(c: C): void {
    if (this.admitIdle !== undefined) {
      const release = this.admitIdle();
      if (release === undefined) {
        this.refused++;
        return c.destroy();
      }
      this.places.set(c, release);
    }
    c.expires = performance.now() + Math.min(c.idleMs ?? this.idleMs, c.keepAliveMs ?? Infinity);
    this.idle.push(c);
    if (this.idle.length > this.maxIdle) this.drop(this.idle.shift()!);
    this.onIdle?.();
  }

  /** A connection is gone (closed while idle, or handed over): it is not offered again. */
  forget(c: C): void {
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    this.release(c);
  }

  /** Close connections idle past their time. */
  sweep(now: number): void {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const c = this.idle[i]!;
      if (now >= c.expires) {
        this.idle.splice(i, 1);
        this.drop(c);
      }
    }
  }

  destroy(): void {
    for (const c of this.idle.splice(0)) this.drop(c);
  }

  private drop(c: C): void {
    this.release(c);
    c.destroy();
  }

  private release(c: C): void {
    const release = this.places.get(c);
    if (release === undefined) return;
    this.places.delete(c);
    release();
  }
}
