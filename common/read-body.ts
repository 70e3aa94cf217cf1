/**
 * An HTTP message body, read whole up to a limit: what both ends of the collector's API read
 * (the collector a request, the CLI an answer). Over the limit it stops keeping bytes and says so;
 * the caller decides whether to drain the rest (a server that still answers) or cut the connection.
 */
import type { IncomingMessage } from 'node:http';

export class BodyTooLarge extends Error {
  constructor(readonly max: number) {
    super(`body larger than ${max} bytes`);
  }
}

export function readBody(msg: IncomingMessage, max: number, onTooLarge: 'drain' | 'destroy'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | undefined): void => {
      if (done) return;
      done = true;
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    msg.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size <= max) return void chunks.push(c);
      finish(new BodyTooLarge(max));
      if (onTooLarge === 'destroy') msg.destroy();
    });
    msg.on('end', () => finish(undefined));
    msg.on('error', (err) => finish(err));
    msg.on('aborted', () => finish(Object.assign(new Error('the connection closed mid-body'), { code: 'ECONNRESET' })));
  });
}
