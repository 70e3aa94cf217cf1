/**
 * A request's body on its way to the upstream, part of its exchange (exchange.ts, the only
 * user): pieces are held while there is nowhere to send them yet, and until the read they came
 * in has been parsed; then they go as one piece, framed as the request declared (chunked
 * bodies re-framed, Content-Length bodies as they are), the request head in front of the first.
 */
import { CRLF, chunkSize, LAST_CHUNK } from './messages';
import type { UpstreamConnection } from './upstream';

export class RequestBody {
  /** the parser saw the end of the request */
  done = false;
  /** the request went to the upstream whole */
  sent = false;
  /** body bytes that went to the upstream */
  bytesSent = 0;
  /** bytes held */
  heldBytes = 0;
  /** re-framed as chunks (the client sent it chunked) */
  chunked = false;
  private held: Buffer[] | undefined;
  /** the request head, held back until the first piece of the body (or its end), as Node's client did */
  private head: Buffer | undefined;

  push(chunk: Buffer): void {
    (this.held ??= []).push(chunk);
    this.heldBytes += chunk.length;
  }

  /** Forget what is held (the request is refused, or no longer wanted). */
  drop(): void {
    this.held = undefined;
    this.heldBytes = 0;
  }

  /** The head goes out with the first piece. */
  headFirst(head: Buffer): void {
    this.head = head;
  }

  /** Whether flush() has something to write. */
  get pending(): boolean {
    return !this.sent && (this.held !== undefined || this.done);
  }

  /** Write what is held, and the end once seen, to `up` in one go. */
  flush(up: UpstreamConnection): void {
    const held = this.held;
    this.held = undefined;
    this.heldBytes = 0;
    const pieces: Array<Buffer | string> = [];
    if (this.head !== undefined) pieces.push(this.head);
    this.head = undefined;
    if (held !== undefined) {
      const body = held.length === 1 ? held[0]! : Buffer.concat(held);
      this.bytesSent += body.length;
      if (this.chunked) pieces.push(chunkSize(body.length), body, CRLF);
      else pieces.push(body);
    }
    if (this.done) {
      this.sent = true;
      if (this.chunked) pieces.push(LAST_CHUNK);
    }
    if (pieces.length === 1) up.write(pieces[0]!);
    else if (pieces.length > 1) up.writeAll(pieces);
  }
}
