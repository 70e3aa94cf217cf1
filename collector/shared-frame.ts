/**
 * A frame many sessions send as it is (a registry delta or snapshot, encoded once), and its
 * deflated form for agents that take registry frames deflated (hello `accepts`
 * `registry-deflate`: common/mesh-protocol.ts). The deflated bytes are made once and then shared
 * by every session: a snapshot's on libuv's thread pool (a 24 MB one takes ~100 ms to deflate:
 * never on the event loop), a delta's at once (`ASYNC_DEFLATE_BYTES`). JSON of workloads deflates ~6× (keys and names repeat), so a pod churn
 * sends each agent a sixth of the bytes — what a collector with 1,000 agents spends most on is
 * writing (encrypting, copying) the same change a thousand times.
 */
import * as zlib from 'node:zlib';

/** Frames smaller than this go as text: a lone small delta gains little. */
export const DEFLATE_MIN_BYTES = 1024;
/**
 * Frames this big or bigger (snapshots) are deflated on the thread pool, the sessions that want
 * them waiting; smaller ones (deltas, merged ones at most 256 KiB) at once on the event loop:
 * waiting for the pool — its results come back through the event loop, a round trip per 16 KiB —
 * held every session a publication behind the next under a pod churn.
 */
const ASYNC_DEFLATE_BYTES = 1024 * 1024;

export class SharedFrame {
  private deflated: Buffer | undefined;
  /** Sessions waiting for the deflated bytes (undefined: none being made). */
  private waiting: Array<() => void> | undefined;
  /** Deflating failed: the frame goes as text. */
  private failed = false;

  constructor(readonly bytes: Buffer) {}

  get length(): number {
    return this.bytes.length;
  }

  toString(): string {
    return this.bytes.toString();
  }

  /**
   * What a session that takes deflated frames sends: the text bytes when the frame is small (or
   * deflating failed), the deflated bytes once made; undefined while they are being made — then
   * `ready` is called once they are.
   */
  forDeflating(ready: () => void): { data: Buffer; binary: boolean } | undefined {
    if (this.failed || this.bytes.length < DEFLATE_MIN_BYTES) return { data: this.bytes, binary: false };
    if (this.deflated) return { data: this.deflated, binary: true };
    if (this.bytes.length < ASYNC_DEFLATE_BYTES) {
      // a delta (at most MERGE_BYTES): ~1 ms at level 1, once for every session, at once
      try {
        this.deflated = zlib.deflateRawSync(this.bytes, { level: 1 });
        return { data: this.deflated, binary: true };
      } catch {
        this.failed = true;
        return { data: this.bytes, binary: false };
      }
    }
    if (this.waiting) {
      this.waiting.push(ready);
      return undefined;
    }
    this.waiting = [ready];
    zlib.deflateRaw(this.bytes, { level: 1 }, (err, out) => {
      const waiting = this.waiting ?? [];
      this.waiting = undefined;
      if (err) this.failed = true;
      else this.deflated = out;
      for (const w of waiting) w();
    });
    return undefined;
  }
}
