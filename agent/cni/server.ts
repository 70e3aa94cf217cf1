/**
 * The agent's CNI endpoint: the Unix socket palisade-cni talks to (protocol: ./protocol.ts). Each
 * connection carries one request, read whole within size and time limits, checked at the boundary
 * (./request.ts), then handed to the agent's `CniEnroller`. Operations on one sandbox (container
 * id) run one at a time in arrival order, so a DEL sent after an ADD the plugin gave up on cannot
 * overtake it and leave the pod enrolled. Every refusal is logged once and counted.
 */
import * as net from 'node:net';
import { describeCause } from '../../common/errors';
import { KeyedQueue } from '../../common/keyed-queue';
import type { Logger } from '../../common/log';
import { listenPrivateSocket, type PrivateSocket } from '../../common/unix-socket';
import {
  CniErrorCode,
  CniRefusal,
  errorResponse,
  MAX_REQUEST_BYTES,
  okResponse,
  type CniCommand,
  type CniEnroller,
  type CniRequest,
  type CniResponse,
} from './protocol';
import { parseCniRequest } from './request';

export interface CniServerLimits {
  /** Largest request read; a larger one is refused. */
  maxRequestBytes: number;
  /** How long a plugin may take to send its whole request. */
  requestTimeoutMs: number;
  /** How long an enroll/unenroll/check may take before the plugin is told to try again later. */
  operationTimeoutMs: number;
  /** Connections served at once; more are told to try again later without being read. */
  maxConnections: number;
}

export const DEFAULT_CNI_SERVER_LIMITS: CniServerLimits = {
  maxRequestBytes: MAX_REQUEST_BYTES,
  requestTimeoutMs: 2000,
  operationTimeoutMs: 30_000,
  maxConnections: 64,
};

export interface CniServerOptions {
  socketPath: string;
  enroller: CniEnroller;
  log: Logger;
  limits?: Partial<CniServerLimits>;
  /** Replace a live socket at the path (the agent taking the node over from its predecessor). */
  takeOver?: boolean;
}

export interface CniServerStats {
  /** Requests that passed the boundary, by command. */
  requests: Record<CniCommand, number>;
  /** Operations the enroller completed. */
  succeeded: number;
  /** Operations the enroller refused or failed. */
  failed: number;
  /** Requests refused at the boundary (malformed, hostile, oversized, too slow to arrive). */
  refused: number;
  /** Connections turned away because maxConnections were being served. */
  busy: number;
  /** Operations answered "try again later" because they outlasted operationTimeoutMs. */
  timedOut: number;
  /** Plugins that hung up before their answer was ready. */
  abandoned: number;
  /** Connections being served now. */
  open: number;
}

export class CniServer {
  private readonly limits: CniServerLimits;
  private readonly log: Logger;
  private readonly server: net.Server;
  private readonly open = new Set<net.Socket>();
  /** Operations per sandbox (container id), one at a time in arrival order. */
  private readonly queue = new KeyedQueue();
  private readonly counters: CniServerStats = {
    requests: { ADD: 0, DEL: 0, CHECK: 0 },
    succeeded: 0,
    failed: 0,
    refused: 0,
    busy: 0,
    timedOut: 0,
    abandoned: 0,
    open: 0,
  };
  private socket: PrivateSocket | undefined;

  private constructor(private readonly opts: CniServerOptions) {
    this.limits = { ...DEFAULT_CNI_SERVER_LIMITS, ...opts.limits };
    this.log = opts.log.child({ component: 'cni' });
    this.server = net.createServer({ allowHalfOpen: true }, (conn) => this.accept(conn));
  }

  /** Listen on `socketPath` (mode 0600). */
  static async start(opts: CniServerOptions): Promise<CniServer> {
    const s = new CniServer(opts);
    s.socket = await listenPrivateSocket(s.server, opts.socketPath, 'CNI socket', { takeOver: opts.takeOver === true });
    s.log.info({ socket: opts.socketPath }, 'CNI endpoint listening');
    return s;
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  stats(): CniServerStats {
    return { ...this.counters, requests: { ...this.counters.requests }, open: this.open.size };
  }

  /** Stop listening, remove the socket and hang up on every connection (plugins see "try again"). */
  async close(): Promise<void> {
    for (const conn of this.open) conn.destroy();
    await this.socket?.close();
  }

  private accept(conn: net.Socket): void {
    if (this.open.size >= this.limits.maxConnections) {
      this.counters.busy++;
      this.log.warn({ served: this.open.size }, 'CNI request turned away: too many at once');
      conn.on('error', () => undefined);
      conn.end(encode(errorResponse(CniErrorCode.TRY_AGAIN_LATER, `the agent is serving ${this.open.size} CNI requests already`)));
      setTimeout(() => conn.destroy(), this.limits.requestTimeoutMs).unref();
      return;
    }
    this.open.add(conn);
    const started = Date.now();
    const chunks: Buffer[] = [];
    let size = 0;
    let state: 'reading' | 'working' | 'answered' = 'reading';
    let request: CniRequest | undefined; // once it passed the boundary
    const answer = (response: CniResponse): void => {
      if (state === 'answered') return;
      state = 'answered';
      clearTimeout(readTimer);
      if (conn.destroyed) return;
      conn.end(encode(response));
      // A peer that never closes its side (it was refused mid-request) is not kept open.
      lingerTimer = setTimeout(() => conn.destroy(), this.limits.requestTimeoutMs);
    };
    let lingerTimer: NodeJS.Timeout | undefined;
    const refuse = (code: number, reason: string): void => {
      this.counters.refused++;
      this.log.warn({ code, reason }, 'CNI request refused');
      answer(errorResponse(code, reason));
    };
    const readTimer = setTimeout(() => {
      if (state === 'reading') refuse(CniErrorCode.PROTOCOL, `request not complete within ${this.limits.requestTimeoutMs} ms`);
    }, this.limits.requestTimeoutMs);
    conn.on('data', (chunk: Buffer) => {
      if (state !== 'reading') return;
      size += chunk.length;
      if (size > this.limits.maxRequestBytes) return refuse(CniErrorCode.PROTOCOL, `request larger than ${this.limits.maxRequestBytes} bytes`);
      chunks.push(chunk);
    });
    conn.on('end', () => {
      if (state !== 'reading') return;
      state = 'working';
      clearTimeout(readTimer);
      const parsed = parseCniRequest(Buffer.concat(chunks));
      if (!parsed.ok) return refuse(parsed.code, parsed.reason);
      request = parsed.request;
      void this.serve(parsed.request, started).then(answer);
    });
    // A plugin that gave up and closed: its answer finds no reader (EPIPE). Counted once.
    conn.on('error', () => {
      if (request === undefined) return;
      this.counters.abandoned++;
      this.log.warn({ ...describe(request), ms: Date.now() - started }, 'palisade-cni hung up before the answer');
      request = undefined;
    });
    conn.on('close', () => {
      clearTimeout(readTimer);
      clearTimeout(lingerTimer);
      this.open.delete(conn);
    });
  }

  /** Run the request after any earlier operation on the same sandbox, within the operation timeout. */
  private serve(request: CniRequest, started: number): Promise<CniResponse> {
    const { command, sandbox } = request;
    this.counters.requests[command]++;
    const work = this.queue.run(sandbox.containerId, () => this.operate(request));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.limits.operationTimeoutMs);
    });
    return Promise.race([work, timeout]).then(
      (outcome) => {
        clearTimeout(timer);
        const fields = { ...describe(request), ms: Date.now() - started };
        if (outcome === 'timeout') {
          this.counters.timedOut++;
          this.log.warn(fields, `CNI ${command} not done within ${this.limits.operationTimeoutMs} ms`);
          return errorResponse(CniErrorCode.TRY_AGAIN_LATER, `the agent did not finish ${command} within ${this.limits.operationTimeoutMs} ms`);
        }
        this.counters.succeeded++;
        this.log.info(fields, `CNI ${command} done`);
        return okResponse();
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.counters.failed++;
        const code = err instanceof CniRefusal ? err.cniCode : command === 'CHECK' ? CniErrorCode.NOT_ENROLLED : CniErrorCode.ENROLL_FAILED;
        this.log.warn({ ...describe(request), ms: Date.now() - started, code, err }, `CNI ${command} failed`);
        return errorResponse(code, describeCause(err));
      },
    );
  }

  private operate({ command, sandbox }: CniRequest): Promise<void> {
    const enroller = this.opts.enroller;
    if (command === 'ADD') return enroller.enroll(sandbox);
    if (command === 'DEL') return enroller.unenroll(sandbox);
    return enroller.check(sandbox);
  }
}

function encode(response: CniResponse): string {
  return JSON.stringify(response);
}

/** The log fields of a request (no prevResult: addresses are enough). */
function describe({ command, sandbox }: CniRequest): Record<string, unknown> {
  const pod = sandbox.pod ? `${sandbox.pod.namespace}/${sandbox.pod.name}` : undefined;
  return { command, pod, containerId: sandbox.containerId, netns: sandbox.netns || undefined, ips: sandbox.ips.map((ip) => ip.address) };
}
