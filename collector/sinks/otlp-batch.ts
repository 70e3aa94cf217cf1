/**
 * One OTLP sink batch: the agents' frames as pieces, encoded and POSTed (otlp-sink-worker.ts in
 * the worker thread; the sink itself in tests). Shared by the sink and its worker.
 */

/** A receiver's answer: its HTTP status (0: no answer) and Retry-After in ms when it sent one. */
export interface PostResult {
  status: number;
  retryAfterMs?: number;
  error?: string;
  /** the answer came before the body was all handed to the OS: its bytes may still be read */
  bodyHeld?: boolean;
}

/** Flows `skip`…`skip + count - 1` of an agent's JSON frame (its `flows` array), stored at `storedMs`. */
export interface FlowPiece {
  frame: Uint8Array;
  skip: number;
  count: number;
  storedMs: number;
}

/**
 * How a batch's pieces become one request body: `begin`, each piece, then `request`. The body's
 * bytes stay the encoder's (no copy) and are written over by the next batch, unless `release`d.
 */
export interface FlowEncoder {
  begin(): void;
  /** The piece's flows as log_records fields, after the last piece's; throws (having added nothing) when the frame cannot be read. */
  piece(p: FlowPiece): void;
  /** The body: the request's head, then the pieces added since `begin`, in order. */
  request(): Uint8Array[];
  /** The last body may still be read (by a socket): the next is written elsewhere. */
  release(): void;
}

/** A batch sent: the receiver's answer, and the flows left out because they could not be encoded. */
export interface SendResult extends PostResult {
  unencoded: number;
  encodeError?: string;
}

/** Encodes and POSTs one batch (in the worker thread; in this thread in tests). */
export type SendBatch = (pieces: readonly FlowPiece[]) => Promise<SendResult>;

/** Encode the pieces (a piece that cannot be read is left out and counted) and POST what is left. */
export async function encodeAndPost(encoder: FlowEncoder, pieces: readonly FlowPiece[], post: (body: readonly Uint8Array[]) => Promise<PostResult>): Promise<SendResult> {
  let encoded = 0;
  let unencoded = 0;
  let encodeError: string | undefined;
  encoder.begin();
  for (const p of pieces) {
    try {
      encoder.piece(p);
      encoded++;
    } catch (err) {
      unencoded += p.count;
      encodeError ??= String((err as Error)?.message ?? err);
    }
  }
  const r: PostResult = encoded === 0 ? { status: 200 } : await post(encoder.request());
  if (r.bodyHeld) encoder.release();
  const { bodyHeld: _, ...answer } = r;
  return { ...answer, unencoded, ...(encodeError !== undefined && { encodeError }) };
}
