/**
 * Runs one generated case through a front, in memory: the client and the upstream are the far
 * ends of stream pairs (a close on one end closes the other, as TCP would), the upstream answers
 * every request it parses with a small response (101 to an upgrade, no body to HEAD) and keeps
 * every byte it was sent. The outcome is what the differential test compares.
 */
import type { Duplex } from 'node:stream';
import { duplexPair } from 'node:stream';
import type { HttpRecord, HttpSession } from '../../../../agent/proxy/http';
import { methodName, Parser, type ParserHandlers } from '../../../../agent/proxy/http/llhttp';
import { parseResponses } from '../../../harness/raw-http';
import type { Case } from './generate';

export interface Front {
  handle(conn: Duplex, head?: Buffer, session?: HttpSession): void;
}

export interface Outcome {
  /** statuses the client read, in order */
  statuses: number[];
  /** what each record said */
  records: Array<Pick<HttpRecord, 'method' | 'path' | 'host' | 'status' | 'rejected' | 'bytesSent' | 'bytesReceived'> & { allowed: boolean | undefined }>;
  /** every upstream connection's bytes, in the order they were opened (chunked bodies as one chunk: see unchunked) */
  upstream: string[];
  /** the case did not settle in time */
  hung: boolean;
}

/** Two connected ends; closing either closes the other. */
function pair(): [Duplex, Duplex] {
  const [a, b] = duplexPair();
  a.once('close', () => b.destroy());
  b.once('close', () => a.destroy());
  a.on('error', () => undefined);
  b.on('error', () => undefined);
  return [a, b];
}

interface FakeUpstream {
  socket: Duplex;
  head: boolean;
  upgraded: boolean;
}

const UPSTREAM_OK = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok', 'latin1');
const UPSTREAM_HEAD = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n', 'latin1');
const UPSTREAM_101 = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'latin1');

const upstreamHandlers: ParserHandlers<FakeUpstream> = {
  onMessageBegin() {},
  onHeaders() {},
  onHeadersComplete(_a, _b, _h, method, _u, _s, _m, upgrade) {
    this.owner.head = methodName(method) === 'HEAD';
    if (upgrade) {
      this.owner.upgraded = true;
      this.owner.socket.write(UPSTREAM_101);
      this.owner.socket.end();
      return 2;
    }
    return 0;
  },
  onBody() {},
  onMessageComplete() {
    const u = this.owner;
    if (!u.upgraded) u.socket.write(u.head ? UPSTREAM_HEAD : UPSTREAM_OK);
  },
};

/** An upstream at the far end of a pair: keeps the bytes, answers each request. */
function fakeUpstream(chunks: Buffer[]): Duplex {
  const [near, far] = pair();
  const u: FakeUpstream = { socket: far, head: false, upgraded: false };
  const parser = new Parser('request', 1 << 20, u, upstreamHandlers);
  far.on('data', (c: Buffer) => {
    chunks.push(c);
    if (!u.upgraded) parser.execute(c);
  });
  far.on('end', () => far.end());
  far.on('close', () => parser.close());
  return near;
}

/**
 * An upstream byte stream with each chunked body written as one chunk: where a body's chunks
 * begin and end follows how its bytes arrived (and, in the oracle, how Node's streams buffered
 * them), not the request. Heads, Content-Length bodies and everything else stay byte for byte.
 */
export function unchunked(stream: string): string {
  let out = '';
  let at = 0;
  while (at < stream.length) {
    const end = stream.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = stream.slice(at, end + 4);
    out += head;
    at = end + 4;
    const cl = /\r\nContent-Length: (\d+)\r\n/i.exec(head);
    if (/\r\nUpgrade: /i.test(head)) break; // the rest is the tunnel's
    if (cl) {
      out += stream.slice(at, at + Number(cl[1]));
      at += Number(cl[1]);
    } else if (/\r\nTransfer-Encoding: chunked\r\n/i.test(head)) {
      let body = '';
      let complete = false;
      for (;;) {
        const le = stream.indexOf('\r\n', at);
        if (le < 0) break;
        const size = parseInt(stream.slice(at, le), 16);
        if (Number.isNaN(size) || le + 2 + size + 2 > stream.length) break;
        at = le + 2 + size + 2;
        if (size === 0) {
          complete = true;
          break;
        }
        body += stream.slice(le + 2, le + 2 + size);
      }
      out += `<chunked ${body.length}${complete ? '' : ', cut'}>${body}</chunked>`;
    }
  }
  return out + stream.slice(at);
}

export function runCase(front: Front, c: Case, authorize: HttpSession['authorize'], timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const records: Outcome['records'] = [];
    const upstreams: Buffer[][] = [];
    const fromServer: Buffer[] = [];
    const [client, server] = pair();
    let settled = false;
    const finish = (hung: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.destroy();
      resolve({
        statuses: parseResponses(Buffer.concat(fromServer).toString('latin1')).map((r) => r.status),
        records,
        upstream: upstreams.map((u) => unchunked(Buffer.concat(u).toString('latin1'))),
        hung,
      });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    client.on('data', (d: Buffer) => fromServer.push(d));
    // Settled when the front has closed the connection and a few turns passed for stragglers.
    client.on('close', () => setTimeout(() => finish(false), 5));
    const session: HttpSession = {
      authorize,
      connect: () => {
        const chunks: Buffer[] = [];
        upstreams.push(chunks);
        return Promise.resolve(fakeUpstream(chunks));
      },
      setHeaders: { 'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/default/sa/web;URI=spiffe://cluster.local/ns/default/sa/client' },
      onRecord: (r) =>
        records.push({ method: r.method, path: r.path, host: r.host, status: r.status, rejected: r.rejected, bytesSent: r.bytesSent, bytesReceived: r.bytesReceived, allowed: r.decision?.allowed }),
    };
    front.handle(server, undefined, session);
    let i = 0;
    const writeNext = (): void => {
      if (client.destroyed) return;
      if (i < c.pieces.length) {
        client.write(c.pieces[i++]);
        setImmediate(writeNext);
      } else client.end();
    };
    writeNext();
  });
}
