/**
 * A connection as the stream nghttp2 reads: bytes the proxy already read from it (or writes in
 * itself) go first, then the connection's own, each passed through `take`. nghttp2 reads a
 * socket's own handle, past anything unshifted into its JavaScript buffer, so the bytes go
 * through a stream of their own. Writes, end and destroy go to the connection.
 */
import { Duplex } from 'node:stream';

export type Push = (d: Buffer) => void;

export function joinedStream(conn: Duplex, first: Buffer, take: (d: Buffer, push: Push) => void = (d, push) => push(d), flush: (push: Push) => void = () => undefined): Duplex {
  const joined = new Duplex({
    read() {
      conn.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (conn.destroyed) return cb(new Error('connection closed'));
      conn.write(chunk, cb);
    },
    final(cb) {
      conn.end();
      cb();
    },
    destroy(err, cb) {
      conn.destroy(err ?? undefined);
      cb(err);
    },
  });
  const push: Push = (d) => {
    if (d.length > 0 && !joined.push(d)) conn.pause();
  };
  if (first.length > 0) take(first, push);
  conn.on('data', (d: Buffer) => take(d, push));
  conn.once('end', () => {
    flush(push);
    joined.push(null);
  });
  conn.once('close', () => joined.destroy());
  conn.on('error', (err) => joined.destroy(err));
  return joined;
}
