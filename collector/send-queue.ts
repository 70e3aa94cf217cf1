/**
 * Sending big frames to agents without holding the event loop: a message larger than
 * SLICE_BYTES goes out as a fragmented WebSocket message, one slice at a time, and what is sent
 * to the same session meanwhile waits behind it (a fragmented message cannot be interleaved with
 * another). One pump serves every session's queue in turn, SLICE_MS of sending per event-loop
 * turn, so a policies frame to many agents is encrypted a slice at a time, not 13–27 ms per agent.
 */
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';

/** Bytes of a big message sent (and encrypted) at once. */
export const SLICE_BYTES = 64 * 1024;
/** How long one event-loop turn spends sending queued slices. */
const SLICE_MS = 2;

interface Queued {
  data: Buffer | string;
  /** Bytes of `data` sent so far (Buffer messages only are sliced). */
  offset: number;
}

class SendQueue {
  readonly items: Queued[] = [];
  afterDrain: (() => void) | undefined;

  constructor(readonly ws: WebSocket) {}

  /** Send the next slice (or the next small message whole); false when nothing is left. */
  step(): boolean {
    const item = this.items[0];
    if (!item) return false;
    if (this.ws.readyState !== this.ws.OPEN) {
      this.items.length = 0;
      return false;
    }
    if (typeof item.data === 'string' || (item.offset === 0 && item.data.length <= SLICE_BYTES)) {
      this.ws.send(item.data, { binary: false });
      this.items.shift();
    } else {
      const end = Math.min(item.data.length, item.offset + SLICE_BYTES);
      const fin = end === item.data.length;
      this.ws.send(item.data.subarray(item.offset, end), { binary: false, fin });
      item.offset = end;
      if (fin) this.items.shift();
    }
    return this.items.length > 0;
  }
}

const queues = new WeakMap<WebSocket, SendQueue>();
/** Queues with something left to send, served in turn. */
const active: SendQueue[] = [];
let pumping = false;

/** Whether `ws` has queued sends (anything sent to it now must queue too). */
export function isQueued(ws: WebSocket): boolean {
  return (queues.get(ws)?.items.length ?? 0) > 0;
}

/** Queue `data` for `ws` behind what it already has queued. */
export function enqueue(ws: WebSocket, data: Buffer | string): void {
  let q = queues.get(ws);
  if (!q) queues.set(ws, (q = new SendQueue(ws)));
  if (q.items.length === 0) active.push(q);
  q.items.push({ data, offset: 0 });
  if (!pumping) {
    pumping = true;
    setImmediate(pump);
  }
}

/** Run `fn` once what `ws` has queued is sent (at once when nothing is): a close after the last frame. */
export function afterQueued(ws: WebSocket, fn: () => void): void {
  const q = queues.get(ws);
  if (!q || q.items.length === 0) return fn();
  const prev = q.afterDrain;
  q.afterDrain = () => {
    prev?.();
    fn();
  };
}

function pump(): void {
  const start = performance.now();
  let i = 0;
  while (active.length > 0 && performance.now() - start < SLICE_MS) {
    if (i >= active.length) i = 0;
    const q = active[i]!;
    if (q.step()) i++;
    else {
      active.splice(i, 1);
      const done = q.afterDrain;
      q.afterDrain = undefined;
      done?.();
    }
  }
  if (active.length > 0) setImmediate(pump);
  else pumping = false;
}
