/**
 * One OTLP sink batch: the agents' frames as pieces, encoded and POSTed (otlp-sink-worker.ts in
 * the worker thread; the sink itself in tests). Shared by the sink and its worker.
 */

/** A receiver's answer: its HTTP status (0: no answer) and Retry-After in ms when it sent one. */
export interface PostResult {
  status: number;
  retryAfterMs?: number;
  error?: string;
}

/** Flows `skip`…`skip + count - 1` of an agent's JSON frame (its `flows` array), stored at `storedMs`. */
export interface FlowPiece {
  frame: Uint8Array;
  skip: number;
  count: number;
  storedMs: number;
}

/** How a batch's pieces become a request body. */
export interface FlowEncoder {
  /** The piece's flows as log_records fields, one after another; throws when the frame cannot be read. */
  piece(p: FlowPiece): Uint8Array;
  /** One request body carrying these parts in order, as pieces sent one after another. */
  request(parts: readonly Uint8Array[]): Uint8Array[];
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
  const parts: Uint8Array[] = [];
  let unencoded = 0;
  let encodeError: string | undefined;
  for (const p of pieces) {
    try {
      parts.push(encoder.piece(p));
    } catch (err) {
      unencoded += p.count;
      encodeError ??= String((err as Error)?.message ?? err);
    }
  }
  const r: PostResult = parts.length === 0 ? { status: 200 } : await post(encoder.request(parts));
  return { ...r, unencoded, ...(encodeError !== undefined && { encodeError }) };
}
