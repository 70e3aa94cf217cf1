/**
 * The OTLP flow sink's worker thread (started by sink-worker.ts): each message is one batch, the
 * agents' frames it came in, copied into one transferred buffer; the flows are encoded as OTLP
 * log records (otlp-logs.ts) and POSTed over kept-alive connections; the answer goes back. Several
 * batches may be out at once: each is encoded as it arrives (while earlier POSTs wait for their
 * answers) by an encoder no POST in flight still reads, and goes on a connection of its own.
 * Nothing is kept between batches (a retry brings the batch again). docs/architecture.md "Flow sinks".
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';
import { FlowLogEncoder } from './otlp-logs';
import { encodeAndPost, type PostResult, type SendResult } from './otlp-batch';
import type { BatchAnswer, BatchMessage, SinkWorkerInit } from './sink-worker';

/**
 * One POST of an OTLP protobuf body, given in pieces (not copied: see PostResult.bodyHeld); never
 * rejects. Without an agent: a connection of its own.
 */
export function postProtobuf(url: URL, body: readonly Uint8Array[], timeoutMs: number, agent?: http.Agent): Promise<PostResult> {
  return new Promise((resolve) => {
    const mod = url.protocol === 'https:' ? https : http;
    let length = 0;
    for (const b of body) length += b.byteLength;
    const req = mod.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf', 'content-length': length },
      timeout: timeoutMs,
      agent: agent ?? false,
    });
    // settled before the whole body went out (an early answer, an error): the socket may still read its bytes
    const held = (): { bodyHeld?: true } => (req.writableFinished ? {} : { bodyHeld: true });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...retryAfter(res.headers['retry-after']), ...held() }));
      res.on('error', (err) => resolve({ status: 0, error: err.message, ...held() }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 0, error: (err as NodeJS.ErrnoException).code ?? err.message, ...held() }));
    req.cork();
    for (const b of body) req.write(b);
    req.end();
  });
}

/** Retry-After as seconds (HTTP dates are not worth the parse here). */
function retryAfter(v: string | undefined): { retryAfterMs?: number } {
  if (v === undefined || !/^\d{1,6}$/.test(v)) return {};
  return { retryAfterMs: Number(v) * 1000 };
}

if (parentPort !== null && workerData !== null) {
  const port = parentPort;
  const init = workerData as SinkWorkerInit;
  const url = new URL(init.url);
  // encoders whose last body no POST reads any more (the most recently used, warmest, is taken first)
  const idle: FlowLogEncoder[] = [];
  // connections kept open to the receiver: one per batch the sink may have in flight
  const agent = new (url.protocol === 'https:' ? https : http).Agent({ keepAlive: true, maxSockets: Math.max(1, init.maxInFlight ?? 1) });
  const post = (body: readonly Uint8Array[]): Promise<PostResult> => postProtobuf(url, body, init.timeoutMs, agent);
  port.on('message', (m: BatchMessage) => {
    const bytes = new Uint8Array(m.bytes);
    const pieces = m.pieces.map((p) => ({ frame: bytes.subarray(p.start, p.end), skip: p.skip, count: p.count, storedMs: p.storedMs }));
    // the answer gives the frames' buffer back (transferred): the collector copies its next batch into it
    const answer = (r: SendResult): void => {
      const a: BatchAnswer = { ...r, id: m.id, bytes: m.bytes };
      port.postMessage(a, [m.bytes]);
    };
    const encoder = idle.pop() ?? new FlowLogEncoder(init.resource);
    encodeAndPost(encoder, pieces, post)
      .then(answer, (err: unknown) => answer({ status: 0, error: String((err as Error)?.message ?? err), unencoded: 0 }))
      .finally(() => idle.push(encoder));
  });
}
