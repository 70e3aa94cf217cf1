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
  /** what went out, kept to be sent again (keep()); undefined when not kept or past the limit */
  private copy: Buffer[] | undefined;
  private copyBytes = 0;
  private copyLimit = 0;
  /** the request head, held back until the first piece of the body (or its end), as Node's client did */
  private head: Buffer | undefined;

  push(chunk: Buffer): void {
    (this.held ??= []).push(chunk);
    this.heldBytes += chunk.length;
  }

  /** What is held now (before anything went upstream: the whole body so far). */
  heldPieces(): readonly Buffer[] {
    return this.held ?? [];
  }

  /** Forget what is held (the request is refused, or no longer wanted). */
  drop(): void {
    this.held = undefined;
    this.heldBytes = 0;
  }

  /** Keep a copy of up to `limit` body bytes, so that rewind() can send the request again. */
  keep(limit: number): void {
    this.copyLimit = limit;
    this.copy = limit > 0 ? [] : undefined;
  }

  /** Everything of the body that went out can be sent again: a copy of it is kept, or nothing went. */
  get replayable(): boolean {
    return this.copy !== undefined || (this.bytesSent === 0 && !this.sent);
  }

  /** Send it again (when replayable): what went out is held once more, before what is held; the head goes first. */
  rewind(): void {
    const again = [...(this.copy ?? []), ...(this.held ?? [])];
    this.held = again.length > 0 ? again : undefined;
    this.heldBytes += this.copyBytes;
    if (this.copy !== undefined) this.copy = [];
    this.copyBytes = 0;
    this.sent = false;
    this.bytesSent = 0;
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
      if (this.copy !== undefined) {
        this.copyBytes += body.length;
        if (this.copyBytes > this.copyLimit) this.copy = undefined;
        else this.copy.push(body);
      }
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
