/**
 * The collector's agent endpoint: HTTPS (TLS 1.3 minimum) on a TCP address and, optionally, a
 * Unix socket, with the same TLS and the same `/v1/agent` WebSocket handler on both. Client
 * certificates are requested but not required at the TLS layer; each upgrade is authenticated
 * before it is accepted: a node certificate from our CA that the node records still stand behind
 * (not revoked, issued to that node: nodes/node-trust.ts) → node session; otherwise a join token
 * → join session; otherwise HTTP 401 with a JSON `{code, message}` body, one warn line and an
 * audit record. When the node records change (a revocation), sessions whose certificate is no
 * longer accepted are closed and a revoked node leaves the registry.
 *
 * The same listener serves the HTTP API (collector/api/handler.ts): every plain request, and
 * upgrades for the API's follow path, go to it; without an API, plain requests get 404.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { PalisadeErrorCode } from '../common/errors';
import type { Logger } from '../common/log';
import { AGENT_PATH, MAX_FRAME_BYTES } from '../common/mesh-protocol';
import { parseNodeSpiffeId, spiffeIdOfCert } from '../common/pki';
import type { CertificateAuthority } from './mesh-ca';
import { NodeSession, type FlowIngest, type NodeSessionDeps, type NodeSessionHub } from './agent-session';
import type { CollectorApi } from './api/handler';
import type { TrustRefusals } from './audit/trust-refusals';
import { runJoinSession } from './join-session';
import type { NodePods } from './nodes/node-pods';
import { presentedKey, type NodeRecords } from './nodes/node-records';
import { takeoverRefusal, type PresentedKey } from './nodes/node-trust';
import type { WorkloadRegistry } from './registry';
import { closeAllGracefully } from './session-io';
import type { JoinTokens } from './tokens';

export interface ServingIdentity {
  keyPem: string;
  certPem: string;
}

export interface AgentServerOptions {
  ca: CertificateAuthority;
  tokens: JoinTokens;
  registry: WorkloadRegistry;
  /** Each node's binding and certificates, and the revocation list. */
  nodes: NodeRecords;
  /** Where refusals are recorded (the audit log). */
  refusals: TrustRefusals;
  /** Which pods run on which node, when the collector has such an authority (Kubernetes). */
  pods?: NodePods;
  serving: ServingIdentity;
  workloadCertTtlSeconds: number;
  nodeCertTtlSeconds: number;
  log: Logger;
  /** Ping every agent this often (default 10 s)… */
  pingIntervalMs?: number;
  /** How long a superseded node session may still deliver flows (agent-session.ts). */
  supersededGraceMs?: number;
  /** …and cut one off when it has not answered for this long (default 30 s). */
  deadAfterMs?: number;
  /** The current `policies` frame for a node that just said hello. */
  policiesFrame?: () => string | undefined;
  /** An agent says which policy version it enforces. */
  policyStatus?: NodeSessionDeps['policyStatus'];
  /** Where node sessions store flow batches (the flow store). */
  flows?: FlowIngest;
  /** The HTTP API on the same listener. */
  api?: Pick<CollectorApi, 'handleRequest' | 'handleUpgrade' | 'ownsUpgrade'>;
}

type Auth =
  | { kind: 'node'; node: string; key: PresentedKey }
  | { kind: 'join'; token: string; tokenId: string }
  | { kind: 'refused'; code: PalisadeErrorCode; reason: string; tokenId?: string; node?: string; unknownToken?: string };

/**
 * Budgets for a connection before it is an authenticated session: the TLS handshake, the request
 * head and a whole request (bodies are at most 4 MiB) each have a deadline, and the head at most
 * 64 headers; past them Node closes the connection (a slow client cannot hold one open for minutes).
 */
const CONNECTION_LIMITS: https.ServerOptions = { handshakeTimeout: 10_000, headersTimeout: 10_000, requestTimeout: 60_000 };
const MAX_HEADERS = 64;
/** How long one event-loop turn may spend sending broadcast frames. */
const BROADCAST_SLICE_MS = 2;
/** Connections the listener holds at most (agents, API clients, followers); more are refused by Node. */
const MAX_CONNECTIONS = 10_000;
/**
 * Registry changes are published to sessions at most this often (a lone change at once). A pod
 * churn of 1,000 changes/s is then 10 publications a second: every session at the last one pulls
 * the same merged delta (encoded once), instead of each pulling a frame of its own per change.
 */
export const PUBLISH_MS = 100;


export class AgentServer implements NodeSessionHub {
  private readonly wss: WebSocketServer;
  private readonly servers: https.Server[] = [];
  private readonly current = new Map<string, NodeSession>();
  /** Every open node session, current or not (a revocation closes them all). */
  private readonly sessions = new Set<NodeSession>();
  private readonly lastPong = new WeakMap<WebSocket, number>();
  private readonly keepalive: NodeJS.Timeout;
  private readonly stopWatching: () => void;
  private readonly stopPods: () => void;
  private readonly log: Logger;
  /** Broadcast frames waiting for their session, in order: a few milliseconds of sending per event-loop turn. */
  private readonly outbox: Array<() => void> = [];
  private draining = false;
  private publishTimer: NodeJS.Timeout | undefined;
  private lastPublished = -Infinity;

  constructor(private readonly opts: AgentServerOptions) {
    this.log = opts.log;
    // One message per event-loop turn (not every frame of a TCP read at once): a session's
    // frames interleave with everyone else's work.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, clientTracking: true, allowSynchronousEvents: false });
    const interval = opts.pingIntervalMs ?? 10_000;
    this.keepalive = setInterval(() => this.ping(opts.deadAfterMs ?? 30_000), interval);
    this.keepalive.unref();
    this.stopWatching = opts.nodes.watch(() => {
      try {
        this.recheckNodes();
      } catch (err) {
        this.log.error({ err }, 'cannot re-check node sessions against the node records');
      }
    });
    // The pod authority changed its mind about some nodes: their registrations are decided again.
    this.stopPods =
      opts.pods?.onChange?.((change) => {
        for (const [node, session] of this.current) if (change === 'all' || change.has(node)) session.readmit();
      }) ?? (() => undefined);
  }

  /** A new HTTPS server with our TLS settings and handlers; the caller listens on it. */
  createServer(): https.Server {
    const server = https.createServer({ ...this.tlsOptions(this.opts.serving), ...CONNECTION_LIMITS });
    server.maxConnections = MAX_CONNECTIONS;
    server.maxHeadersCount = MAX_HEADERS;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (this.opts.api) return this.opts.api.handleRequest(req, res);
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"PALISADE_ERR_NOT_FOUND","message":"not found"}}\n');
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    server.on('tlsClientError', (err: Error) => this.log.debug({ reason: err.message }, 'tls handshake failed'));
    this.servers.push(server);
    return server;
  }

  /** Swap the serving certificate on every server (new connections only). */
  setServingIdentity(serving: ServingIdentity): void {
    for (const s of this.servers) s.setSecureContext(this.tlsOptions(serving));
  }

  /**
   * Send one frame (policies) to every node session that said hello. A policies frame can be
   * megabytes, and each send encrypts it for one agent: it is encoded to bytes once, and the sends
   * are spread over event-loop turns (`drain`), in the order they were broadcast.
   */
  broadcast(frame: string | Buffer): void {
    const bytes = typeof frame === 'string' ? Buffer.from(frame) : frame;
    for (const session of this.current.values()) this.outbox.push(() => session.push(bytes));
    if (!this.draining) {
      this.draining = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    const start = performance.now();
    while (this.outbox.length > 0 && performance.now() - start < BROADCAST_SLICE_MS) this.outbox.shift()!();
    if (this.outbox.length > 0) setImmediate(() => this.drain());
    else this.draining = false;
  }

  /**
   * The registry changed: within PUBLISH_MS of the last publication (at once after a quiet spell)
   * every node session sends its agent what it misses up to the version then, as its socket takes
   * it (send-queue.ts).
   */
  broadcastRegistry(): void {
    if (this.publishTimer !== undefined) return;
    const wait = Math.max(0, this.lastPublished + PUBLISH_MS - performance.now());
    this.publishTimer = setTimeout(() => this.publishRegistry(), wait);
    this.publishTimer.unref();
  }

  private publishRegistry(): void {
    this.publishTimer = undefined;
    this.lastPublished = performance.now();
    this.opts.registry.publish();
    for (const session of this.current.values()) session.registryChanged();
  }

  takeoverRefusal(node: string, session: NodeSession): string | undefined {
    const current = this.current.get(node);
    if (current === undefined || current === session) return undefined;
    return takeoverRefusal(this.opts.nodes.record(node), current.key, session.key);
  }

  claim(node: string, session: NodeSession): NodeSession | undefined {
    const previous = this.current.get(node);
    this.current.set(node, session);
    return previous === session ? undefined : previous;
  }

  release(node: string, session: NodeSession): boolean {
    if (this.current.get(node) !== session) return false;
    this.current.delete(node);
    return true;
  }

  /** Close every session (1001), then every server. */
  async close(): Promise<void> {
    clearInterval(this.keepalive);
    clearTimeout(this.publishTimer);
    this.stopWatching();
    this.stopPods();
    await closeAllGracefully(this.wss, 'collector stopping');
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }

  private tlsOptions(serving: ServingIdentity): https.ServerOptions {
    return {
      key: serving.keyPem,
      cert: serving.certPem,
      ca: [this.opts.ca.certPem],
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    };
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const tlsSocket = req.socket as TLSSocket;
    const remote = tlsSocket.remoteAddress ?? 'unix';
    const path = (req.url ?? '').split('?')[0];
    if (path !== AGENT_PATH && this.opts.api?.ownsUpgrade(path)) return this.opts.api.handleUpgrade(req, socket, head);
    if (path !== AGENT_PATH) {
      this.log.warn({ remote, path: path.slice(0, 256), reason: 'unknown path' }, 'upgrade refused');
      return respond(socket, 404, { code: 'PALISADE_ERR_NOT_FOUND', message: `no endpoint ${path.slice(0, 256)}` });
    }
    const auth = this.authenticate(req, tlsSocket);
    if (auth.kind === 'refused' && auth.unknownToken !== undefined && this.opts.tokens.lookUp) {
      // Published by another replica a moment ago? Read it once, then decide again if it was found.
      void this.opts.tokens.lookUp(auth.unknownToken).then((found) => this.admit(req, socket, head, remote, found ? this.authenticate(req, tlsSocket) : auth));
      return;
    }
    this.admit(req, socket, head, remote, auth);
  }

  private admit(req: IncomingMessage, socket: Duplex, head: Buffer, remote: string, auth: Auth): void {
    if (auth.kind === 'refused') {
      this.log.warn({ remote, node: auth.node, reason: auth.reason, tokenId: auth.tokenId }, 'agent refused');
      const event = auth.code === 'PALISADE_ERR_JOIN_REFUSED' ? 'join' : 'node-certificate';
      this.opts.refusals.refused({ event, remote, reason: auth.reason, ...(auth.node === undefined ? {} : { node: auth.node }) });
      return respond(socket, 401, { code: auth.code, message: auth.reason });
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.lastPong.set(ws, Date.now());
      ws.on('pong', () => this.lastPong.set(ws, Date.now()));
      if (auth.kind === 'node') {
        const session = new NodeSession(ws, auth.node, auth.key, { ...this.opts, hub: this, remote, log: this.log.child({ remote }) });
        this.sessions.add(session);
        ws.on('close', () => this.sessions.delete(session));
      } else {
        runJoinSession(ws, auth.token, auth.tokenId, { ...this.opts, remote, log: this.log.child({ remote }) });
      }
    });
  }

  /** The node records changed: close sessions whose certificate is no longer accepted; revoked nodes leave the registry. */
  private recheckNodes(): void {
    for (const session of this.sessions) {
      const why = this.opts.nodes.certRefusal(session.node, session.key);
      if (why === undefined) continue;
      this.opts.refusals.refused({ event: 'node-certificate', node: session.node, reason: why });
      session.revoke(why);
    }
    for (const n of this.opts.registry.snapshot().nodes) {
      if (this.opts.nodes.record(n.node) === undefined) this.opts.registry.removeNode(n.node);
    }
  }

  private authenticate(req: IncomingMessage, socket: TLSSocket): Auth {
    const peer = socket.getPeerX509Certificate();
    if (peer && socket.authorized) {
      const id = spiffeIdOfCert(peer.toString());
      const parsed = id === undefined ? undefined : parseNodeSpiffeId(id);
      if (parsed && parsed.trustDomain === this.opts.ca.trustDomain) {
        const key = presentedKey(peer);
        let why: string | undefined;
        try {
          why = this.opts.nodes.certRefusal(parsed.node, key);
        } catch (err) {
          this.log.error({ err }, 'node records unreadable');
          why = 'collector cannot read its node records';
        }
        if (why === undefined) return { kind: 'node', node: parsed.node, key };
        return { kind: 'refused', code: 'PALISADE_ERR_UNAUTHENTICATED', reason: why, node: parsed.node };
      }
    }
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer ([\x21-\x7e]{1,256})$/.exec(header);
      if (!m) return { kind: 'refused', code: 'PALISADE_ERR_JOIN_REFUSED', reason: 'malformed authorization header' };
      let verdict;
      try {
        verdict = this.opts.tokens.check(m[1]);
      } catch (err) {
        this.log.error({ err }, 'token store unreadable');
        return { kind: 'refused', code: 'PALISADE_ERR_JOIN_REFUSED', reason: 'collector cannot read its token store' };
      }
      if (verdict.ok) return { kind: 'join', token: m[1], tokenId: verdict.id };
      return { kind: 'refused', code: 'PALISADE_ERR_JOIN_REFUSED', reason: verdict.reason, tokenId: verdict.id, ...(verdict.unknown && { unknownToken: m[1] }) };
    }
    let reason = 'no client certificate and no join token';
    if (peer && !socket.authorized) reason = `client certificate not trusted (${String(socket.authorizationError)})`;
    else if (peer) reason = 'client certificate is not a node identity of this trust domain';
    return { kind: 'refused', code: 'PALISADE_ERR_UNAUTHENTICATED', reason };
  }

  private ping(deadAfterMs: number): void {
    const now = Date.now();
    for (const ws of this.wss.clients) {
      if (now - (this.lastPong.get(ws) ?? now) > deadAfterMs) {
        this.log.warn({ reason: 'no pong', silentMs: now - (this.lastPong.get(ws) ?? now) }, 'session terminated');
        ws.terminate();
      } else if (ws.readyState === ws.OPEN) {
        ws.ping();
      }
    }
  }
}

function respond(socket: Duplex, status: 401 | 404, body: { code: string; message: string }): void {
  const text = JSON.stringify(body);
  const reason = status === 401 ? 'Unauthorized' : 'Not Found';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}
