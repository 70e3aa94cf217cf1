/**
 * Forwarding to the node's resolvers: the only servers whose answers the proxy believes (a pod
 * never chooses where its questions go, or it could teach the proxy any address for an allowed
 * name). Over UDP from a connected socket per server (only that server's datagrams arrive), with
 * a random ID per query and a fresh socket, so a fresh source port, every ROTATE_AFTER queries;
 * a truncated answer (TC) is asked again over TCP. An answer must match the query's ID and
 * question and parse strictly, or it is ignored (counted) and the wait goes on. Servers are
 * tried in turn, each for `timeoutMs`; when none answers, the result says so (the caller answers
 * SERVFAIL and serves on). Concurrent queries are bounded.
 */
import { randomFillSync } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { Logger } from '../../common/log';
import { parseResponse, type Query, type Response } from './message';
import { upstreamQuery } from './responses';
import { FrameReader, framed } from './tcp-frames';
import { DnsFormatError, HEADER_SIZE } from './wire';

export interface UpstreamServer {
  ip: string;
  port: number;
}

export interface UpstreamOptions {
  servers: readonly UpstreamServer[];
  /** Per server and attempt (default 2000). */
  timeoutMs?: number;
  /** Queries under way at once (default 1024); past it, `overloaded`. */
  maxInflight?: number;
  log: Logger;
}

export type UpstreamResult =
  | { kind: 'answer'; msg: Buffer; response: Response; server: UpstreamServer; transport: 'udp' | 'tcp' }
  | { kind: 'failed'; reason: 'upstream-timeout' | 'upstream-failed' | 'upstream-overloaded' | 'no-upstream' };

export interface UpstreamStats {
  queries: number;
  timeouts: number;
  /** Datagrams or TCP answers refused: unparsable, or not matching a query under way. */
  badAnswers: number;
  tcpRetries: number;
  inflight: number;
}

const ROTATE_AFTER = 100;
const MAX_TCP_ANSWER = 65_535;

/** Random 16-bit query IDs, drawn from a refilled pool of random bytes. */
class IdSource {
  private pool = Buffer.alloc(2048);
  private at = this.pool.length;

  next(): number {
    if (this.at + 2 > this.pool.length) {
      randomFillSync(this.pool);
      this.at = 0;
    }
    const id = this.pool.readUInt16BE(this.at);
    this.at += 2;
    return id;
  }
}

type Answer = { msg: Buffer; response: Response };
/** An answer, or `truncated`: the server set TC (whatever follows its header: it is asked over TCP). */
type Waiter = (answer: Answer | 'truncated') => void;

const QR_AND_TC = 0x82; // in the third byte of the header

/** One connected UDP socket to one server and the queries waiting on it, by ID. */
class UdpChannel {
  private readonly socket: dgram.Socket;
  private readonly ready: Promise<void>;
  readonly waiting = new Map<number, { waiter: Waiter; question: Query['question'] }>();
  used = 0;
  private closing = false;

  constructor(
    server: UpstreamServer,
    private readonly onBad: () => void,
  ) {
    this.socket = dgram.createSocket('udp4');
    this.socket.on('message', (msg) => this.onMessage(msg));
    this.socket.on('error', () => undefined); // ICMP unreachable and the like: the query times out
    this.ready = new Promise((resolve) => this.socket.connect(server.port, server.ip, () => resolve()));
  }

  async send(id: number, msg: Buffer, question: Query['question'], waiter: Waiter): Promise<void> {
    this.used++;
    this.waiting.set(id, { waiter, question });
    await this.ready;
    this.socket.send(msg);
  }

  forget(id: number): void {
    this.waiting.delete(id);
    if (this.closing && this.waiting.size === 0) this.close();
  }

  /** No new queries: close once those under way are done. */
  retire(): void {
    this.closing = true;
    if (this.waiting.size === 0) this.close();
  }

  close(): void {
    this.closing = true;
    try {
      this.socket.close();
    } catch {
      /* already closed */
    }
  }

  private onMessage(msg: Buffer): void {
    const w = msg.length >= HEADER_SIZE ? this.waiting.get(msg.readUInt16BE(0)) : undefined;
    if (w && (msg[2]! & QR_AND_TC) === QR_AND_TC) return w.waiter('truncated');
    const response = w ? answerTo(msg, w.question) : undefined;
    if (!w || !response) return this.onBad();
    w.waiter({ msg, response });
  }
}

/** `msg` parsed, when it is a response to `question` (same name, type and class). */
function answerTo(msg: Buffer, question: Query['question']): Response | undefined {
  let r: Response;
  try {
    r = parseResponse(msg);
  } catch (err) {
    if (err instanceof DnsFormatError) return undefined;
    throw err;
  }
  const q = r.question;
  if (r.header.opcode !== 0 || q.name !== question.name || q.type !== question.type || q.qclass !== question.qclass) return undefined;
  return r;
}

export class Upstream {
  private readonly servers: readonly UpstreamServer[];
  private readonly timeoutMs: number;
  private readonly maxInflight: number;
  private readonly channels = new Map<UpstreamServer, UdpChannel>();
  private readonly ids = new IdSource();
  private readonly tcpSockets = new Set<net.Socket>();
  /** The server that answered last is asked first. */
  private preferred = 0;
  private inflight = 0;
  private closed = false;
  private readonly counts = { queries: 0, timeouts: 0, badAnswers: 0, tcpRetries: 0 };

  constructor(opts: UpstreamOptions) {
    this.servers = opts.servers;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.maxInflight = opts.maxInflight ?? 1024;
  }

  async resolve(msg: Buffer, query: Query): Promise<UpstreamResult> {
    if (this.servers.length === 0) return { kind: 'failed', reason: 'no-upstream' };
    if (this.inflight >= this.maxInflight || this.closed) return { kind: 'failed', reason: 'upstream-overloaded' };
    this.inflight++;
    this.counts.queries++;
    try {
      let failed = false;
      for (let i = 0; i < this.servers.length; i++) {
        const n = (this.preferred + i) % this.servers.length;
        const server = this.servers[n]!;
        const channel = this.channel(server);
        let id = this.ids.next();
        while (channel.waiting.has(id)) id = this.ids.next();
        const out = upstreamQuery(msg, query, id);
        const udp = await this.overUdp(channel, id, out, query.question);
        if (udp === undefined) continue;
        let answer: Answer | undefined = udp === 'truncated' ? undefined : udp;
        let transport: 'udp' | 'tcp' = 'udp';
        if (answer === undefined) {
          this.counts.tcpRetries++;
          answer = await this.overTcp(server, out, query.question);
          transport = 'tcp';
          if (answer === undefined) {
            failed = true;
            continue;
          }
        }
        this.preferred = n;
        return { kind: 'answer', ...answer, server, transport };
      }
      return { kind: 'failed', reason: failed ? 'upstream-failed' : 'upstream-timeout' };
    } finally {
      this.inflight--;
    }
  }

  stats(): UpstreamStats {
    return { ...this.counts, inflight: this.inflight };
  }

  close(): void {
    this.closed = true;
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
    for (const s of this.tcpSockets) s.destroy();
  }

  private channel(server: UpstreamServer): UdpChannel {
    let c = this.channels.get(server);
    if (c === undefined || c.used >= ROTATE_AFTER) {
      c?.retire();
      c = new UdpChannel(server, () => this.counts.badAnswers++);
      this.channels.set(server, c);
    }
    return c;
  }

  private overUdp(channel: UdpChannel, id: number, out: Buffer, question: Query['question']): Promise<Answer | 'truncated' | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        channel.forget(id);
        this.counts.timeouts++;
        resolve(undefined);
      }, this.timeoutMs);
      channel
        .send(id, out, question, (answer) => {
          clearTimeout(timer);
          channel.forget(id);
          resolve(answer);
        })
        .catch(() => undefined);
    });
  }

  private overTcp(server: UpstreamServer, out: Buffer, question: Query['question']): Promise<Answer | undefined> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: server.ip, port: server.port });
      this.tcpSockets.add(socket);
      const reader = new FrameReader();
      const done = (answer: Answer | undefined): void => {
        clearTimeout(timer);
        this.tcpSockets.delete(socket);
        socket.destroy();
        resolve(answer);
      };
      const timer = setTimeout(() => {
        this.counts.timeouts++;
        done(undefined);
      }, this.timeoutMs);
      socket.on('error', () => done(undefined));
      socket.on('close', () => done(undefined));
      socket.on('connect', () => socket.write(framed(out)));
      socket.on('data', (chunk: Buffer) => {
        if (reader.buffered + chunk.length > 2 + MAX_TCP_ANSWER) return done(undefined);
        for (const msg of reader.push(chunk)) {
          const response = msg.length >= 2 && msg.readUInt16BE(0) === out.readUInt16BE(0) ? answerTo(msg, question) : undefined;
          if (response) return done({ msg, response });
          this.counts.badAnswers++;
          return done(undefined);
        }
      });
    });
  }
}
