/**
 * Sending to agents without holding the event loop or growing the collector's memory. Per
 * session, three things wait to be sent, in this order:
 * - the message being sent now: a frame larger than SLICE_BYTES goes out as a fragmented
 *   WebSocket message, one slice at a time, and nothing may go between its slices;
 * - `items`, in order (answers, errors, policies frames);
 * - frames pulled from the session's `FrameSource` (registry snapshots and deltas, as text or
 *   deflated as binary messages) only when nothing else waits: the source is asked for its next
 *   frame at the moment it can be sent, so a session that falls behind gets what is current
 *   then, not every frame it missed queued.
 * A session hands its socket at most HIGH_WATER_BYTES not yet written out (counted by ws's write
 * callbacks); past that it waits for the socket to drain, so what a slow agent has not read stays
 * unsent (and unencrypted) here instead of piling up in the socket. A pulled frame of BULK_BYTES
 * or more (a whole snapshot) needs one of MAX_BULK slots shared by every session: a mass connect
 * sends a few snapshots at full speed rather than a thousand at once, each pinning its version.
 * One pump serves every session with something to send in turn, SLICE_MS per event-loop turn.
 */
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';

/** Bytes of a big message sent (and encrypted) at once. */
export const SLICE_BYTES = 64 * 1024;
/** How long one event-loop turn spends sending queued slices. */
const SLICE_MS = 2;
/** Bytes handed to a session's socket and not yet written out, past which the session waits. */
export const HIGH_WATER_BYTES = 256 * 1024;
/** A pulled frame at least this big needs a bulk slot. */
export const BULK_BYTES = 1024 * 1024;
/** Sessions sending a bulk frame at once. */
export const MAX_BULK = 4;

/** A frame as a binary WebSocket message (a deflated registry frame: shared-frame.ts). */
export interface BinaryFrame {
  binary: Buffer;
}

/** Frames computed when they can be sent (the registry's, for one session). */
export interface FrameSource {
  /** The next frame, or undefined when there is none now; the same one until `take`. */
  peek(): Buffer | string | BinaryFrame | undefined;
  /** The frame `peek` returned is being sent (its first bytes are handed to the socket). */
  take(): void;
}

interface Current {
  data: Buffer;
  offset: number;
  binary: boolean;
  bulk: boolean;
  /** From the source (shared with other sessions), not queued for this one. */
  pulled: boolean;
}

const sizeOf = (data: Buffer | string): number => (typeof data === 'string' ? Buffer.byteLength(data) : data.length);

class SendQueue {
  readonly items: Array<Buffer | string> = [];
  itemBytes = 0;
  current: Current | undefined;
  source: FrameSource | undefined;
  /** The source may have a frame. */
  sourcePending = false;
  /** Holds a bulk slot (granted, or sending a bulk frame). */
  bulkSlot = false;
  waitingBulk = false;
  /** Bytes given to ws.send whose write callback has not run. */
  inFlight = 0;
  scheduled = false;
  afterDrain: (() => void) | undefined;

  constructor(readonly ws: WebSocket) {}

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  /** Something can be sent now (nothing says whether the socket takes it). */
  get hasWork(): boolean {
    return this.current !== undefined || this.items.length > 0 || (this.sourcePending && !this.waitingBulk);
  }

  get blocked(): boolean {
    return this.inFlight >= HIGH_WATER_BYTES;
  }

  write(data: Buffer | string, fin = true, binary = false): void {
    const n = sizeOf(data);
    this.inFlight += n;
    this.ws.send(data, { binary, fin }, () => {
      this.inFlight -= n;
      if (this.inFlight < HIGH_WATER_BYTES / 2) schedule(this);
    });
  }

  /** Send one slice or one small frame; false when nothing more can go now. */
  step(): boolean {
    if (!this.open) {
      this.clear();
      return false;
    }
    if (this.blocked) return false;
    if (!this.current) {
      const next = this.nextFrame();
      if (next === undefined) return false;
      if (next.data.length <= SLICE_BYTES) {
        this.write(next.data, true, next.binary);
        if (next.bulk) releaseBulk(this);
        if (next.pulled) this.source!.take(); // after the write: what `take` sends goes behind it
        return this.hasWork;
      }
      this.current = { data: typeof next.data === 'string' ? Buffer.from(next.data) : next.data, offset: 0, binary: next.binary, bulk: next.bulk, pulled: next.pulled };
      if (next.pulled) this.source!.take();
    }
    const c = this.current;
    const end = Math.min(c.data.length, c.offset + SLICE_BYTES);
    const fin = end === c.data.length;
    this.write(c.data.subarray(c.offset, end), fin, c.binary);
    c.offset = end;
    if (fin) {
      this.current = undefined;
      if (c.bulk) releaseBulk(this);
    }
    return this.hasWork;
  }

  private nextFrame(): { data: Buffer | string; binary: boolean; bulk: boolean; pulled: boolean } | undefined {
    const item = this.items.shift();
    if (item !== undefined) {
      this.itemBytes -= sizeOf(item);
      return { data: item, binary: false, bulk: false, pulled: false };
    }
    if (!this.source || !this.sourcePending || this.waitingBulk) return undefined;
    const peeked = this.source.peek();
    if (peeked === undefined) {
      this.sourcePending = false;
      if (this.bulkSlot) releaseBulk(this);
      return undefined;
    }
    const binary = typeof peeked !== 'string' && !Buffer.isBuffer(peeked);
    const frame = binary ? peeked.binary : peeked;
    const bulk = frame.length >= BULK_BYTES;
    if (bulk && !this.bulkSlot && !acquireBulk(this)) return undefined;
    if (!bulk && this.bulkSlot) releaseBulk(this);
    return { data: frame, binary, bulk, pulled: true };
  }

  clear(): void {
    this.items.length = 0;
    this.itemBytes = 0;
    this.sourcePending = false;
    if (this.current?.bulk || this.bulkSlot) releaseBulk(this);
    this.current = undefined;
    const i = bulkWaiters.indexOf(this);
    if (i >= 0) bulkWaiters.splice(i, 1);
    this.waitingBulk = false;
  }
}

const queues = new WeakMap<WebSocket, SendQueue>();
/** Queues with something to send, served in turn. */
const active: SendQueue[] = [];
let pumping = false;
let bulkInUse = 0;
/** Sessions waiting for a bulk slot, in order. */
const bulkWaiters: SendQueue[] = [];

function queueOf(ws: WebSocket): SendQueue {
  let q = queues.get(ws);
  if (!q) queues.set(ws, (q = new SendQueue(ws)));
  return q;
}

function acquireBulk(q: SendQueue): boolean {
  if (bulkInUse < MAX_BULK) {
    bulkInUse += 1;
    q.bulkSlot = true;
    return true;
  }
  q.waitingBulk = true;
  bulkWaiters.push(q);
  return false;
}

function releaseBulk(q: SendQueue): void {
  if (!q.bulkSlot) return;
  q.bulkSlot = false;
  bulkInUse -= 1;
  while (bulkInUse < MAX_BULK && bulkWaiters.length > 0) {
    const next = bulkWaiters.shift()!;
    next.waitingBulk = false;
    if (!next.open || !next.sourcePending) continue;
    bulkInUse += 1;
    next.bulkSlot = true;
    schedule(next);
  }
}

function schedule(q: SendQueue): void {
  if (q.scheduled || !q.hasWork || q.blocked) return;
  q.scheduled = true;
  active.push(q);
  if (!pumping) {
    pumping = true;
    setImmediate(pump);
  }
}

/** Whether `ws` has frames waiting (anything sent to it now goes behind them). */
export function isQueued(ws: WebSocket): boolean {
  const q = queues.get(ws);
  return q !== undefined && (q.current !== undefined || q.items.length > 0);
}

/** Bytes queued for `ws` alone (not what it pulls) and waiting in its socket. */
export function queuedBytes(ws: WebSocket): number {
  const q = queues.get(ws);
  const current = q?.current && !q.current.pulled ? q.current.data.length - q.current.offset : 0;
  return (q?.itemBytes ?? 0) + current + ws.bufferedAmount;
}

/** Send `data` to `ws` now when nothing waits before it and the socket takes it, else queue it (before pulled frames). */
export function enqueue(ws: WebSocket, data: Buffer | string): void {
  const q = queueOf(ws);
  if (!q.current && q.items.length === 0 && !q.blocked && sizeOf(data) <= SLICE_BYTES) return q.write(data);
  q.items.push(data);
  q.itemBytes += sizeOf(data);
  schedule(q);
}

/** Pull frames for `ws` from `source` whenever `wake` says it may have some. */
export function pullFrom(ws: WebSocket, source: FrameSource): void {
  queueOf(ws).source = source;
}

/** The source of `ws` may have a frame: ask it when the session can send. */
export function wake(ws: WebSocket): void {
  const q = queues.get(ws);
  if (!q?.source || !q.open) return;
  q.sourcePending = true;
  schedule(q);
}

/** Run `fn` once what `ws` has queued (not what it may pull) is handed to its socket, at once when nothing is: a close after the last frame. */
export function afterQueued(ws: WebSocket, fn: () => void): void {
  const q = queues.get(ws);
  if (!q || (!q.current && q.items.length === 0)) return fn();
  const prev = q.afterDrain;
  q.afterDrain = () => {
    prev?.();
    fn();
  };
}

/** Bulk slots taken, for tests. */
export function bulkSlotsInUse(): number {
  return bulkInUse;
}

function pump(): void {
  const start = performance.now();
  let i = 0;
  while (active.length > 0 && performance.now() - start < SLICE_MS) {
    if (i >= active.length) i = 0;
    const q = active[i]!;
    const more = q.step();
    if (!q.current && q.items.length === 0 && q.afterDrain) {
      const done = q.afterDrain;
      q.afterDrain = undefined;
      done();
    }
    if (more) {
      i++;
      continue;
    }
    active.splice(i, 1);
    q.scheduled = false;
  }
  if (active.length > 0) setImmediate(pump);
  else pumping = false;
}
