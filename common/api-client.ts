/**
 * A client of the collector's HTTP API (common/flows-api.ts, common/control-api.ts): HTTPS with
 * the mesh CA as the only trust anchor and the certificate checked for the name
 * `palisade-collector`, the admin token as a bearer token. Every failure is one PalisadeError line a CLI can print as is: unreachable,
 * untrusted, refused token, refused filters, a collector that answers nonsense.
 */
import type { IncomingMessage } from 'node:http';
import * as https from 'node:https';
import WebSocket from 'ws';
import { API, filtersToQuery, type FlowFilters, type FlowsResponse, type StatsResponse, type StoredFlow } from './flows-api';
import { errorCode, invalidArgument, PalisadeError } from './errors';
import { BodyTooLarge, readBody } from './read-body';
import { flowProblem } from './flow';
import { COLLECTOR_SERVERNAME } from './mesh-protocol';
import { isRecord } from './record';

const DEFAULT_TIMEOUT_MS = 15_000;
/** A page of MAX_FLOWS_LIMIT flows with long HTTP paths stays well under this. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
const MAX_FRAME_BYTES = 1024 * 1024;
const MAX_SERVER_MESSAGE = 300;

export interface ApiClientOptions {
  /** `https://host:port` */
  url: string;
  token: string;
  caPem: string;
  /** Where the CA came from, named when the collector's certificate does not verify. */
  caFile?: string;
  /** Per request: connect, TLS, answer. Default 15 s. */
  timeoutMs?: number;
}

export interface FollowHandle {
  close(): void;
}

export interface FollowOptions {
  /** The stream is subscribed: every flow stored from now on will be delivered. */
  onOpen?: () => void;
}

/** Control characters (C0, DEL, C1) made visible, so nothing a peer sends can drive the terminal. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function serverMessage(text: string): string {
  const one = printable(text.replace(/\s+/g, ' ').trim());
  return one.length > MAX_SERVER_MESSAGE ? `${one.slice(0, MAX_SERVER_MESSAGE)}…` : one;
}

/** A StoredFlow, or the reason `v` is not one. */
export function storedFlowProblem(v: unknown): string | undefined {
  if (!isRecord(v)) return 'must be an object';
  const { id, origin, ...record } = v;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) return 'id must be a non-negative integer';
  if (origin !== undefined && (typeof origin !== 'string' || !/^[A-Za-z0-9._-]{1,64}\/\d{1,16}\/\d{1,6}$/.test(origin))) return 'origin must be SESSION/SEQ/INDEX';
  return flowProblem(record);
}

export class ApiClient {
  private readonly url: URL;
  private readonly origin: string;
  private readonly token: string;
  private readonly caPem: string;
  private readonly caFile: string | undefined;
  private readonly timeoutMs: number;

  constructor(opts: ApiClientOptions) {
    this.url = new URL(opts.url);
    this.origin = `https://${this.url.host}`;
    this.token = opts.token;
    this.caPem = opts.caPem;
    this.caFile = opts.caFile;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The newest flows matching `filters`, newest first. */
  async flows(filters: FlowFilters): Promise<FlowsResponse> {
    const body = await this.get(API.flows, filtersToQuery(filters));
    if (!isRecord(body) || !Array.isArray(body.flows) || typeof body.count !== 'number') throw this.malformed(API.flows, 'expected {flows, count}');
    for (const f of body.flows) {
      const problem = storedFlowProblem(f);
      if (problem) throw this.malformed(API.flows, `a flow ${problem}`);
    }
    return body as unknown as FlowsResponse;
  }

  async stats(): Promise<StatsResponse> {
    const body = await this.get(API.stats, '');
    if (!isRecord(body) || typeof body.stored !== 'number' || !isRecord(body.lost) || !isRecord(body.nodes)) {
      throw this.malformed(API.stats, 'expected {stored, lost, nodes}');
    }
    return body as unknown as StatsResponse;
  }

  /**
   * Flows matching `filters` as they are stored (`limit`, `since`, `until` are not sent). After
   * `onError` the stream is closed and nothing more is delivered; `close()` ends it quietly.
   */
  follow(filters: FlowFilters, onFlow: (flow: StoredFlow) => void, onError: (err: PalisadeError) => void, opts: FollowOptions = {}): FollowHandle {
    const { limit: _limit, since: _since, until: _until, ...live } = filters;
    const query = filtersToQuery(live);
    const target = `wss://${this.url.host}${API.follow}${query ? `?${query}` : ''}`;
    let done = false;
    const fail = (err: PalisadeError): void => {
      if (done) return;
      done = true;
      ws.terminate();
      onError(err);
    };
    // TLS options go to tls.connect; ws's own type does not list them.
    const tlsOptions = { ca: [this.caPem], servername: COLLECTOR_SERVERNAME, minVersion: 'TLSv1.3' as const };
    const ws = new WebSocket(target, {
      ...tlsOptions,
      headers: { authorization: `Bearer ${this.token}` },
      handshakeTimeout: this.timeoutMs,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
    });
    ws.on('open', () => {
      if (!done) opts.onOpen?.();
    });
    ws.on('unexpected-response', (_req, res) => {
      void readText(res, 64 * 1024).then(
        (text) => fail(this.refusal(API.follow, res.statusCode ?? 0, text)),
        () => fail(this.refusal(API.follow, res.statusCode ?? 0, '')),
      );
    });
    ws.on('error', (err) => fail(this.transportError(err)));
    ws.on('message', (data, isBinary) => {
      if (done) return;
      let flow: unknown;
      try {
        if (isBinary) throw new Error('binary frame');
        flow = JSON.parse(data.toString());
      } catch {
        fail(this.malformed(API.follow, 'a frame is not JSON text'));
        return;
      }
      const problem = storedFlowProblem(flow);
      if (problem) fail(this.malformed(API.follow, `a flow ${problem}`));
      else onFlow(flow as StoredFlow);
    });
    ws.on('close', (code, reason) => {
      const why = serverMessage(reason.toString());
      fail(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `the collector at ${this.origin} ended the flow stream (${code}${why ? `: ${why}` : ''})`));
    });
    return {
      close: () => {
        if (done) return;
        done = true;
        if (ws.readyState === WebSocket.OPEN) ws.close(1000);
        else ws.terminate();
      },
    };
  }

  /** GET a control endpoint (common/control-api.ts); the answer is parsed JSON, checked by the caller. */
  getJson(path: string, query: Record<string, string | number | boolean | undefined> = {}): Promise<unknown> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.append(k, String(v));
    return this.get(path, q.toString());
  }

  /** POST a JSON body to a control endpoint; the answer is parsed JSON, checked by the caller. */
  postJson(path: string, body: unknown): Promise<unknown> {
    return this.request('POST', path, '', JSON.stringify(body));
  }

  private get(path: string, query: string): Promise<unknown> {
    return this.request('GET', path, query, undefined);
  }

  private request(method: 'GET' | 'POST', path: string, query: string, body: string | undefined): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const req = https.request(
        {
          host: this.url.hostname.replace(/^\[|\]$/g, ''),
          port: this.url.port || 443,
          path: `${path}${query ? `?${query}` : ''}`,
          method,
          ca: [this.caPem],
          servername: COLLECTOR_SERVERNAME,
          minVersion: 'TLSv1.3',
          agent: false,
          timeout: this.timeoutMs,
          headers,
        },
        (res) => {
          readText(res, MAX_RESPONSE_BYTES).then((text) => {
            const status = res.statusCode ?? 0;
            if (status !== 200) {
              reject(this.refusal(path, status, text));
              return;
            }
            try {
              resolve(JSON.parse(text) as unknown);
            } catch {
              reject(this.malformed(path, 'the answer is not JSON'));
            }
          }, (err: Error) => reject(err instanceof PalisadeError ? err : this.transportError(err)));
        },
      );
      req.on('timeout', () => {
        req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }));
      });
      req.on('error', (err) => reject(this.transportError(err)));
      req.end(body);
    });
  }

  /** The collector answered, but not 200: its `{"error":{code,message}}` as one line. */
  private refusal(path: string, status: number, text: string): PalisadeError {
    let message = '';
    try {
      const body = JSON.parse(text) as unknown;
      const e = isRecord(body) && isRecord(body.error) ? body.error : undefined;
      if (e && typeof e.message === 'string') message = serverMessage(e.message);
    } catch {
      // not our error shape: say what status it was
    }
    const at = `the collector at ${this.origin}`;
    if (status === 400) return invalidArgument(message || `${at} refused the request (400)`);
    if (status === 401) {
      return new PalisadeError('PALISADE_ERR_UNAUTHENTICATED', `${at} refused the token (${status}): ${message || 'use the admin token in its data directory (admin.token)'}`);
    }
    if (status === 403) return new PalisadeError('PALISADE_ERR_FORBIDDEN', `${at} refused (403): ${message || 'this needs the admin token'}`);
    if (status === 404 && message && !message.startsWith('no endpoint')) return new PalisadeError('PALISADE_ERR_NOT_FOUND', message);
    if (status === 409) return new PalisadeError('PALISADE_ERR_CONFLICT', message || `${at} refused a conflicting change (409)`);
    if (status === 404) return new PalisadeError('PALISADE_ERR_PROTOCOL', `${at} has no ${path} (404): is it a Palisade collector with this API?`);
    return new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `${at} answered ${status}${message ? `: ${message}` : ''}`);
  }

  private malformed(path: string, what: string): PalisadeError {
    return new PalisadeError('PALISADE_ERR_PROTOCOL', `the collector at ${this.origin} sent a malformed answer to ${path}: ${what}`);
  }

  /** Could not talk to the collector at all: refused, unreachable, untrusted, timed out. */
  private transportError(err: Error): PalisadeError {
    const code = errorCode(err);
    const at = `the collector at ${this.origin}`;
    const unreachable = `cannot reach ${at}`;
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `${at} is not trusted: its certificate is not for ${COLLECTOR_SERVERNAME} (${code})`, { cause: err });
    }
    if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|SIGNATURE/.test(code)) {
      const ca = this.caFile ? `the CA in ${this.caFile}` : 'the mesh CA';
      return new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `${at} is not trusted: its certificate does not verify with ${ca} (${code})`, { cause: err });
    }
    if (code === 'ETIMEDOUT' || /timed out|timeout/i.test(err.message)) {
      return new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `${unreachable}: no answer within ${Math.round(this.timeoutMs / 1000)} s`, { cause: err });
    }
    if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(err.message)) {
      return new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `${unreachable}: it does not speak HTTPS (${code ?? 'EPROTO'})`, { cause: err });
    }
    return new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `${unreachable}: ${code ?? serverMessage(err.message)}`, { cause: err });
  }
}

/** The answer's text; over `max` bytes a one-line protocol error (the connection is cut). */
async function readText(res: IncomingMessage, max: number): Promise<string> {
  try {
    return (await readBody(res, max, 'destroy')).toString('utf8');
  } catch (err) {
    if (err instanceof BodyTooLarge) throw new PalisadeError('PALISADE_ERR_PROTOCOL', `the collector's answer is larger than ${max} bytes`);
    throw err;
  }
}
