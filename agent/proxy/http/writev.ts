/** A workaround for Node's Http2Stream writev, applied to every non-socket stream the front reads or writes. */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

type WritevChunk = { chunk: Buffer | string; encoding: BufferEncoding };
type Writev = (this: Duplex, chunks: WritevChunk[], cb: (err?: Error | null) => void) => void;

/**
 * Node 20's Http2Stream `_writev` garbles the batch http's ServerResponse/ClientRequest
 * write when it mixes string chunks with an empty one (seen on an HBONE CONNECT stream as
 * a corrupted status line). For any stream that is not a socket, hand `_writev` Buffers
 * only, and never an empty chunk.
 */
export function writeBuffersOnly(stream: Duplex): void {
  if (stream instanceof net.Socket) return;
  const s = stream as Duplex & { _writev?: Writev | null };
  const inner = s._writev;
  if (typeof inner !== 'function') return;
  s._writev = function writevBuffers(this: Duplex, chunks: WritevChunk[], cb: (err?: Error | null) => void): void {
    const out: WritevChunk[] = [];
    for (const c of chunks) {
      const buf = typeof c.chunk === 'string' ? Buffer.from(c.chunk, c.encoding) : c.chunk;
      if (buf.length > 0) out.push({ chunk: buf, encoding: 'buffer' as BufferEncoding });
    }
    if (out.length === 0) cb();
    else inner.call(this, out, cb);
  };
}
