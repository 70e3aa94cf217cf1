/**
 * HTTP/2 with prior knowledge starts with the client connection preface (RFC 9113 §3.4). The
 * proxy tells it from HTTP/1.1 on the first bytes: `prefaceMatch` is pure and table-tested,
 * `readPreface` reads just enough of a connection to decide and hands the bytes back.
 */
import type { Duplex } from 'node:stream';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** 'yes' once the whole preface is there, 'no' at the first byte that differs, else 'more'. */
export function prefaceMatch(head: Buffer): 'yes' | 'no' | 'more' {
  const n = Math.min(head.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== H2_PREFACE[i]) return 'no';
  return head.length >= H2_PREFACE.length ? 'yes' : 'more';
}

/** What the first bytes are: HTTP/2's preface, an HTTP/1.x request line, anything else; 'more' while undecided. */
export type HeadKind = 'h2' | 'http' | 'other';
export type HeadClassifier = (head: Buffer) => HeadKind | 'more';

/** The default classifier: the preface or not (HTTP/1.1 and anything else are both 'other'). */
export const prefaceKind: HeadClassifier = (head) => {
  const m = prefaceMatch(head);
  return m === 'yes' ? 'h2' : m === 'no' ? 'other' : 'more';
};

export interface PrefaceRead {
  kind: HeadKind | 'closed' | 'timeout';
  /** every byte read, to be parsed first by whoever serves the connection */
  head: Buffer;
}

/**
 * Read `conn` (after `already`, bytes read from it before) until `classify` decides (by default:
 * the preface is there or cannot be); paused after.
 */
export function readPreface(conn: Duplex, timeoutMs: number, already: Buffer = Buffer.alloc(0), classify: HeadClassifier = prefaceKind): Promise<PrefaceRead> {
  const now = already.length > 0 ? classify(already) : 'more';
  if (now !== 'more') return Promise.resolve({ kind: now, head: already });
  return new Promise((resolve) => {
    const chunks: Buffer[] = already.length > 0 ? [already] : [];
    let head = already;
    const done = (kind: PrefaceRead['kind']): void => {
      clearTimeout(timer);
      conn.off('data', onData);
      conn.off('end', onEnd);
      conn.off('close', onEnd);
      conn.off('error', onEnd);
      conn.pause();
      resolve({ kind, head });
    };
    const onData = (d: Buffer): void => {
      chunks.push(d);
      head = chunks.length === 1 ? d : Buffer.concat(chunks);
      const k = classify(head);
      if (k !== 'more') done(k);
    };
    const onEnd = (): void => done('closed');
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    conn.on('data', onData);
    conn.once('end', onEnd);
    conn.once('close', onEnd);
    conn.once('error', onEnd);
    conn.resume();
  });
}
