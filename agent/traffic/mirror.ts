/**
 * RequestMirror in the source node's proxy: a copy of a routed request goes to one endpoint of the
 * mirror's Service, fire-and-forget — sent once the request's body is whole, its answer read and
 * discarded, never holding up or failing the original (which goes its own way at once). Bounded:
 * at most `inFlight` copies at a time (held bodies included) and a body of at most `bodyBytes`
 * (a copy is made whole before it goes); a copy still unanswered after `timeoutMs` is cut. Every
 * copy is counted by how it ended (exported as palisade_traffic_mirrors_total{outcome}): answered,
 * failed, or dropped and why — none is lost silently. A copy that went is also told to its
 * target (MirrorTarget.done: its request line, status, bytes and duration, for its flow record);
 * one dropped before it went is only counted. HTTP/1.1 copies go on a connection of their own
 * (`Connection: close`), HTTP/2 ones as a stream of the session the routed path shares.
 */
import type * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { RequestEdit } from '../../common/routes/filters';
import type { FlowEndpoint, FlowRecord } from '../../common/flow';
import type { Logger } from '../../common/log';
import { proxyFlow } from '../proxy/proxy-flow';
import { editHeaderObject, editLines, withHost, withPath } from '../proxy/http/header-edit';
import { requestHead } from '../proxy/http/messages';
import { grpcStatusIn } from '../proxy/h2/grpc';
import type { MirrorSource, MirrorTap } from '../proxy/http/types';

export interface MirrorLimits {
  /** copies in flight at once (their held bodies included) */
  readonly inFlight: number;
  /** the largest body a copy carries */
  readonly bodyBytes: number;
  /** a copy not answered by then is cut */
  readonly timeoutMs: number;
}

export const DEFAULT_MIRROR_LIMITS: MirrorLimits = { inFlight: 64, bodyBytes: 64 * 1024, timeoutMs: 10_000 };

export const MIRROR_OUTCOMES = ['answered', 'failed', 'dropped-in-flight-limit', 'dropped-body-too-large', 'dropped-no-endpoint', 'dropped-incomplete'] as const;
export type MirrorOutcome = (typeof MIRROR_OUTCOMES)[number];

/** Where one copy goes: a new connection to the endpoint (HTTP/1.1), or a stream of its shared session (HTTP/2). */
export interface MirrorTarget {
  connect(): Promise<Duplex>;
  session(): Promise<http2.ClientHttp2Session>;
  /** a copy that went ended (answered or failed) */
  done?(copy: MirrorCopy): void;
}

/** A copy that went, as it ended. */
export interface MirrorCopy {
  readonly outcome: 'answered' | 'failed';
  readonly method: string;
  /** the copy's path, without the query */
  readonly path: string;
  /** its Host / :authority */
  readonly host: string;
  /** the answer's status; 0: none came */
  readonly status: number;
  /** a gRPC call's grpc-status, when its answer had one */
  readonly grpcStatus?: number;
  /** the body sent, and the answer's body bytes read (and dropped) */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** from its sending to its end */
  readonly durationMs: number;
}

/** What one copy sends; how it ended. */
interface Sent {
  method: string;
  target: string;
  host: string;
  status: number;
  grpcStatus?: number;
  bytesReceived: number;
}

/** Framing the copy sets itself (its whole body is known, and goes at once: no 100-continue). */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'expect']);
/** The most of an answer's head read for its status line. */
const MAX_HEAD = 16 * 1024;

export class Mirrors {
  readonly counts: Record<MirrorOutcome, number> = Object.fromEntries(MIRROR_OUTCOMES.map((o) => [o, 0])) as Record<MirrorOutcome, number>;
  private inFlight = 0;

  constructor(
    private readonly log: Logger,
    private readonly limits: MirrorLimits = DEFAULT_MIRROR_LIMITS,
  ) {}

  /** A copy of `source` (with `edit`) to `target`, fed the body; undefined when it is dropped at once (counted). */
  tap(source: MirrorSource, edit: RequestEdit | undefined, target: MirrorTarget | undefined): MirrorTap | undefined {
    if (target === undefined) return void this.counts['dropped-no-endpoint']++;
    if (this.inFlight >= this.limits.inFlight) return void this.counts['dropped-in-flight-limit']++;
    this.inFlight++;
    const chunks: Buffer[] = [];
    let bytes = 0;
    let state: 'open' | 'sent' | 'over' = 'open';
    const settle = (outcome: MirrorOutcome): void => {
      this.inFlight--;
      this.counts[outcome]++;
    };
    /** a copy that went: counted, and told to its target */
    const ended = (sent: Sent, outcome: 'answered' | 'failed', since: number, bytesSent: number): void => {
      settle(outcome);
      const q = sent.target.indexOf('?');
      const copy: MirrorCopy = {
        outcome,
        method: sent.method,
        path: q < 0 ? sent.target : sent.target.slice(0, q),
        host: sent.host,
        status: sent.status,
        ...(sent.grpcStatus !== undefined && { grpcStatus: sent.grpcStatus }),
        bytesSent,
        bytesReceived: sent.bytesReceived,
        durationMs: Math.round(performance.now() - since),
      };
      try {
        target.done?.(copy);
      } catch (err) {
        this.log.error({ err }, 'mirrored copy\'s record failed');
      }
    };
    return {
      data: (chunk) => {
        if (state !== 'open') return;
        bytes += chunk.length;
        if (bytes > this.limits.bodyBytes) {
          state = 'over';
          chunks.length = 0;
          return settle('dropped-body-too-large');
        }
        chunks.push(chunk);
      },
      end: () => {
        if (state !== 'open') return;
        state = 'sent';
        const body = Buffer.concat(chunks);
        chunks.length = 0;
        const since = performance.now();
        const copy = source.proto === 'h1' ? copyH1(source, edit, body.length) : copyH2(source, edit);
        const sent = copy.proto === 'h1' ? this.sendH1(copy, body, target) : this.sendH2(copy, body, target);
        sent.then(
          (outcome) => ended(copy.sent, outcome, since, body.length),
          (err: unknown) => {
            this.log.debug({ err }, 'mirrored request failed');
            ended(copy.sent, 'failed', since, body.length);
          },
        );
      },
      abort: () => {
        if (state !== 'open') return;
        state = 'over';
        chunks.length = 0;
        settle('dropped-incomplete');
      },
    };
  }

  private async sendH1(copy: H1Copy, body: Buffer, target: MirrorTarget): Promise<'answered' | 'failed'> {
    const conn = await target.connect();
    const sent = copy.sent;
    return new Promise((resolve) => {
      let head = '';
      let headDone = false;
      const timer = setTimeout(() => conn.destroy(), this.limits.timeoutMs);
      conn.on('data', (d: Buffer) => {
        // the status line is all that is read of the answer; its body is counted and dropped
        if (headDone) return void (sent.bytesReceived += d.length);
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0 && head.length < MAX_HEAD) return;
        headDone = true;
        sent.status = statusOfHead(head);
        if (end >= 0) sent.bytesReceived += head.length - end - 4;
        head = '';
      });
      conn.on('error', () => undefined);
      conn.once('close', () => {
        clearTimeout(timer);
        if (!headDone) sent.status = statusOfHead(head);
        resolve(sent.status > 0 ? 'answered' : 'failed');
      });
      conn.on('end', () => conn.destroy());
      conn.write(body.length > 0 ? Buffer.concat([copy.head, body]) : copy.head);
    });
  }

  private async sendH2(copy: H2Copy, body: Buffer, target: MirrorTarget): Promise<'answered' | 'failed'> {
    const session = await target.session();
    const sent = copy.sent;
    const stream = session.request(copy.headers, { endStream: body.length === 0 });
    return new Promise((resolve) => {
      const timer = setTimeout(() => stream.close(), this.limits.timeoutMs);
      stream.on('response', (h) => {
        sent.status = Number(h[':status']) || 0;
        sent.grpcStatus = grpcStatusIn(h);
      });
      stream.on('trailers', (t) => (sent.grpcStatus = grpcStatusIn(t) ?? sent.grpcStatus));
      stream.on('error', () => undefined);
      // the answer's body is counted and dropped
      stream.on('data', (d: Buffer) => (sent.bytesReceived += d.length));
      stream.once('close', () => {
        clearTimeout(timer);
        resolve(sent.status > 0 ? 'answered' : 'failed');
      });
      if (body.length > 0) stream.end(body);
    });
  }
}

interface H1Copy {
  readonly proto: 'h1';
  readonly head: Buffer;
  readonly sent: Sent;
}
interface H2Copy {
  readonly proto: 'h2';
  readonly headers: http2.OutgoingHttpHeaders;
  readonly sent: Sent;
}

/** An HTTP/1.1 copy: the request with the rule's edit, framed for its whole body of `length` bytes. */
function copyH1(src: Extract<MirrorSource, { proto: 'h1' }>, edit: RequestEdit | undefined, length: number): H1Copy {
  let lines = edit ? editLines(src.lines, edit.request) : src.lines.slice();
  if (edit?.host !== undefined) lines = withHost(lines, edit.host);
  const framed: string[] = [];
  let host: string | undefined;
  for (let i = 0; i < lines.length; i += 2) {
    const name = lines[i]!.toLowerCase();
    if (name === 'host') host ??= lines[i + 1]!;
    if (!FRAMING.has(name)) framed.push(lines[i]!, lines[i + 1]!);
  }
  framed.push('Content-Length', String(length), 'Connection', 'close');
  const target = edit?.path === undefined ? src.target : withPath(src.target, edit.path);
  return { proto: 'h1', head: requestHead(src.method, target, framed), sent: { method: src.method, target, host: host ?? '', status: 0, bytesReceived: 0 } };
}

/** An HTTP/2 copy: the request's headers with the rule's edit, its length left to the stream. */
function copyH2(src: Extract<MirrorSource, { proto: 'h2' }>, edit: RequestEdit | undefined): H2Copy {
  const headers = edit && edit.request.length > 0 ? editHeaderObject(src.headers, edit.request) : { ...src.headers };
  if (edit?.host !== undefined) headers[':authority'] = edit.host;
  if (edit?.path !== undefined) headers[':path'] = withPath(String(headers[':path']), edit.path);
  delete headers['content-length'];
  const sent = { method: String(headers[':method'] ?? ''), target: String(headers[':path'] ?? ''), host: String(headers[':authority'] ?? ''), status: 0, bytesReceived: 0 };
  return { proto: 'h2', headers, sent };
}

/** The status of an HTTP/1.x answer's head (its status line), or 0. */
export function statusOfHead(head: string): number {
  const m = /^HTTP\/1\.[01] ([1-9][0-9]{2})[ \r]/.exec(head);
  return m === null ? 0 : Number(m[1]);
}

/**
 * A mirrored copy's own flow record (reason `mirror`): from the client pod to the endpoint it went
 * to, its request line and the status it got (0: none), `allowed` when answered, else `error`;
 * `traffic` names the route, rule and the mirror's Service. Copies dropped before they went have
 * none (palisade_traffic_mirrors_total counts them).
 */
export function mirrorFlow(node: string, source: FlowEndpoint, destination: FlowEndpoint, mtls: boolean, copy: MirrorCopy, traffic: NonNullable<FlowRecord['traffic']>): FlowRecord {
  const http = { method: copy.method, path: copy.path, status: copy.status, ...(copy.grpcStatus !== undefined && { grpcStatus: copy.grpcStatus }) };
  const outcome = { verdict: copy.outcome === 'answered' ? 'allowed' : 'error', reason: 'mirror' } as const;
  return proxyFlow(node, { direction: 'outbound', source, destination, protocol: 'http', mtls, http }, outcome, copy, undefined, traffic);
}

/** One tap feeding several (a rule's mirrors, its backendRef's). */
export function allOf(taps: readonly MirrorTap[]): MirrorTap | undefined {
  if (taps.length <= 1) return taps[0];
  return {
    data: (c) => taps.forEach((t) => t.data(c)),
    end: () => taps.forEach((t) => t.end()),
    abort: () => taps.forEach((t) => t.abort()),
  };
}
