/**
 * DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766): every message is preceded by its length as
 * two bytes. A reader that turns chunks into whole messages, holding at most one message
 * (65,535 bytes) and the length of the next, and the writer's prefix.
 */

/** A message with its two-byte length prefix. */
export function framed(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

export class FrameReader {
  private pending: Buffer[] = [];
  private size = 0;

  /** Whole messages completed by `chunk`, in order; a zero length is an empty message. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length === 0) return [];
    this.pending.push(chunk);
    this.size += chunk.length;
    const out: Buffer[] = [];
    while (this.size >= 2) {
      const first = this.pending[0]!;
      const len = first.length >= 2 ? first.readUInt16BE(0) : (first[0]! << 8) | this.pending[1]![0]!;
      if (this.size < 2 + len) break; // joined only once whole: no copying per small chunk
      const head = this.pending.length === 1 ? first : Buffer.concat(this.pending, this.size);
      out.push(head.subarray(2, 2 + len));
      const rest = head.subarray(2 + len);
      this.pending = rest.length ? [rest] : [];
      this.size = rest.length;
    }
    return out;
  }

  /** Bytes of a message not yet complete. */
  get buffered(): number {
    return this.size;
  }
}
