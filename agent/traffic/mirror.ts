/**
 * RequestMirror in the source node's proxy: a copy of a routed request goes to one endpoint of the
 * mirror's Service, fire-and-forget — sent once the request's body is whole, its answer read and
 * discarded, never holding up or failing the original (which goes its own way at once). Bounded:
 * at most `inFlight` copies at a time (held bodies included) and a body of at most `bodyBytes`
 * (a copy is made whole before it goes); a copy still unanswered after `timeoutMs` is cut. Every
 * copy is counted by how it ended (exported as palisade_traffic_mirrors_total{outcome}): answered,
 * failed, or dropped and why — none is lost silently. HTTP/1.1 copies go on a connection of their
 * own (`Connection: close`), HTTP/2 ones as a stream of the session the routed path shares.
 */
import type * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { RequestEdit } from '../../common/routes/filters';
import type { Logger } from '../../common/log';
import { editHeaderObject, editLines, withHost, withPath } from '../proxy/http/header-edit';
import { requestHead } from '../proxy/http/messages';
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
}

/** Framing the copy sets itself (its whole body is known). */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection']);

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
        const sent = source.proto === 'h1' ? this.sendH1(source, edit, body, target) : this.sendH2(source, edit, body, target);
        sent.then(settle, (err: unknown) => {
          this.log.debug({ err }, 'mirrored request failed');
          settle('failed');
        });
      },
      abort: () => {
        if (state !== 'open') return;
        state = 'over';
        chunks.length = 0;
        settle('dropped-incomplete');
      },
    };
  }

  private async sendH1(src: Extract<MirrorSource, { proto: 'h1' }>, edit: RequestEdit | undefined, body: Buffer, target: MirrorTarget): Promise<MirrorOutcome> {
    let lines = edit ? editLines(src.lines, edit.request) : src.lines.slice();
    if (edit?.host !== undefined) lines = withHost(lines, edit.host);
    const framed: string[] = [];
    for (let i = 0; i < lines.length; i += 2) if (!FRAMING.has(lines[i]!.toLowerCase())) framed.push(lines[i]!, lines[i + 1]!);
    framed.push('Content-Length', String(body.length), 'Connection', 'close');
    const head = requestHead(src.method, edit?.path === undefined ? src.target : withPath(src.target, edit.path), framed);
    const conn = await target.connect();
    return new Promise((resolve) => {
      let answered = false;
      const timer = setTimeout(() => conn.destroy(), this.limits.timeoutMs);
      conn.on('data', (d: Buffer) => {
        // the status line is all that is read of the answer
        if (!answered && d.length >= 5 && d.subarray(0, 5).toString('latin1') === 'HTTP/') answered = true;
      });
      conn.on('error', () => undefined);
      conn.once('close', () => {
        clearTimeout(timer);
        resolve(answered ? 'answered' : 'failed');
      });
      conn.on('end', () => conn.destroy());
      conn.write(body.length > 0 ? Buffer.concat([head, body]) : head);
    });
  }

  private async sendH2(src: Extract<MirrorSource, { proto: 'h2' }>, edit: RequestEdit | undefined, body: Buffer, target: MirrorTarget): Promise<MirrorOutcome> {
    let headers = edit && edit.request.length > 0 ? editHeaderObject(src.headers, edit.request) : { ...src.headers };
    if (edit?.host !== undefined) headers = { ...headers, ':authority': edit.host };
    if (edit?.path !== undefined) headers = { ...headers, ':path': withPath(String(headers[':path']), edit.path) };
    delete headers['content-length'];
    const session = await target.session();
    const stream = session.request(headers, { endStream: body.length === 0 });
    return new Promise((resolve) => {
      let answered = false;
      const timer = setTimeout(() => stream.close(), this.limits.timeoutMs);
      stream.on('response', () => (answered = true));
      stream.on('error', () => undefined);
      stream.resume(); // the answer's body is read and dropped
      stream.once('close', () => {
        clearTimeout(timer);
        resolve(answered ? 'answered' : 'failed');
      });
      if (body.length > 0) stream.end(body);
    });
  }
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
