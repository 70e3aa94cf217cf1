/**
 * How much work one agent's session may ask of the collector: a token bucket per session. Each
 * frame costs according to what it asks (a certificate request signs with the CA key, a
 * registration is pushed to every node), and a session that has spent its bucket is paused —
 * frames already received wait in order, and the collector stops reading its socket, so TCP
 * pushes back on the agent — until the bucket has refilled. Nothing is dropped; one node cannot
 * keep the collector from everyone else.
 */
import type { MessageType } from '../common/mesh-protocol';

/**
 * Frames of the node session, by what they cost (flows: 1 more per 500 records). A
 * `registry-sync` may cost the collector a whole snapshot (O(mesh)); an agent sends one only when
 * a delta did not follow, so it is priced to allow two a second at most.
 */
const COST: Partial<Record<MessageType, number>> = { csr: 10, register: 10, hello: 5, 'registry-sync': 50 };

export interface FrameBudgetOptions {
  /** Bucket size (default 200): a burst of this much costs nothing. */
  capacity?: number;
  /** Refill per second (default 100). */
  perSecond?: number;
  now?: () => number;
}

export class FrameBudget {
  private tokens: number;
  private last: number;
  private readonly capacity: number;
  private readonly perMs: number;
  private readonly now: () => number;

  constructor(opts: FrameBudgetOptions = {}) {
    this.capacity = opts.capacity ?? 200;
    this.perMs = (opts.perSecond ?? 100) / 1000;
    this.now = opts.now ?? Date.now;
    this.tokens = this.capacity;
    this.last = this.now();
  }

  /** What a frame of `type` (with `records` flow records) costs. */
  static cost(type: MessageType, records = 0): number {
    return (COST[type] ?? 1) + Math.floor(records / 500);
  }

  /** Spend `cost` only if the bucket holds it now (true); otherwise spend nothing (false). */
  take(cost: number): boolean {
    this.refill();
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }

  /** Spend `cost`; how many ms the session must then pause for the bucket to be back above zero (0: none). */
  spend(cost: number): number {
    this.refill();
    this.tokens -= cost;
    return this.tokens >= 0 ? 0 : Math.ceil(-this.tokens / this.perMs);
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + (t - this.last) * this.perMs);
    this.last = t;
  }
}

/** The socket side of a session, as `PacedFrames` needs it (a ws WebSocket). */
export interface Pausable {
  pause(): void;
  resume(): void;
}

/**
 * A session's frames handled at the pace its budget allows: `receive` hands a frame to `handle`
 * now, or queues it while the session is paused; `handle` says what each frame cost (`charge`).
 */
export class PacedFrames {
  private readonly backlog: Array<[Buffer, boolean]> = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly socket: Pausable,
    private readonly handle: (data: Buffer, isBinary: boolean) => void,
    private readonly budget = new FrameBudget(),
  ) {}

  receive(data: Buffer, isBinary: boolean): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.backlog.push([data, isBinary]);
    else this.handle(data, isBinary);
  }

  /** Spend what the frame being handled costs; past the budget, pause until it has refilled. */
  charge(cost: number): void {
    const waitMs = this.budget.spend(cost);
    if (waitMs === 0 || this.timer !== undefined || this.stopped) return;
    this.socket.pause();
    this.timer = setTimeout(() => this.drain(), waitMs);
    this.timer.unref();
  }

  /** Frames waiting now. */
  get waiting(): number {
    return this.backlog.length;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.backlog.length = 0;
  }

  private drain(): void {
    this.timer = undefined;
    while (this.backlog.length > 0 && this.timer === undefined && !this.stopped) {
      const [data, isBinary] = this.backlog.shift()!;
      this.handle(data, isBinary);
    }
    if (this.timer === undefined && !this.stopped) this.socket.resume();
  }
}
