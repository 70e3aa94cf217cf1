/**
 * Inbound HBONE listener (:15008): TLS 1.3, a client certificate from the mesh CA
 * is required, and the peer's SPIFFE ID must be the identity the registry gives
 * the source address it claims, coming from that source's node. Presents the
 * destination workload's certificate (chosen by SNI). Delivers to the local pod
 * from PROXY_IP, so strict pods accept it. Nothing reaches a pod before every
 * check has passed.
 */
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Logger } from '../../common/log';
import type { MeshWorkload } from '../mesh/mesh-registry';
import { stripMapped } from '../ipv4-mapped';
import type { Workload } from '../workloads';
import { FORWARDED_HEADER, HBONE_PORT, REFUSAL_HEADER, sniFor, spiffeIdOfPeer } from './hbone';
import { DEFAULT_HBONE_KEEPALIVE, keepSessionAlive, type HboneKeepalive } from './hbone-keepalive';
import { streamAdmission, type StreamRefusal } from './inbound-admission';
import type { IdentitySource } from './hbone-pool';
import type { FlowEndpoint } from '../../common/flow';
import type { DestinationAuthz, AuthzContext } from './destination-authz';
import type { ProxyLimits } from './limits';
import type { LimitReason } from './limits/connection-limits';

export interface InboundInputs {
  node: string;
  /** where :15008 listens (the node's address on the underlay) */
  listenAddress: string;
  proxyIp: string;
  identities: IdentitySource;
  local: { byIp(ip: string): Workload | undefined; all(): Workload[] };
  mesh: { byIp(ip: string): MeshWorkload | undefined };
  log: Logger;
  /** authorization and the connection to the pod */
  authz: DestinationAuthz;
  /** per-source caps on streams, and where refusals are reported */
  limits: Pick<ProxyLimits, 'connections' | 'refusals'>;
  /** PINGs on sessions carrying streams (default: the source side's, DEFAULT_HBONE_KEEPALIVE) */
  keepalive?: HboneKeepalive;
}

export type InboundRefusal = StreamRefusal | LimitReason;

const STREAM_WINDOW = 4 << 20;
const SESSION_WINDOW = 16 << 20;

export class InboundProxy {
  private readonly server: http2.Http2SecureServer;
  private readonly log: Logger;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Peer identity and certificate expiry, read once per TLS session (not per stream). */
  private readonly peers = new WeakMap<http2.Http2Session, { identity: string; validTo: number }>();
  /** SNI name of each local identity, hashed once. */
  private readonly sniNames = new Map<string, string>();
  /** counters for tests and metrics */
  readonly counters = { accepted: 0, refused: 0, tlsErrors: 0, keepaliveFailures: 0 };
  /** the port listened on, for refusals that name no destination */
  private port = HBONE_PORT;

  constructor(private readonly inputs: InboundInputs) {
    this.log = inputs.log.child({ component: 'inbound' });
    this.server = http2.createSecureServer({
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: true,
      allowHTTP1: false,
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
      SNICallback: (name, cb) => this.contextFor(name, cb),
    });
    this.server.on('session', (s) => this.onSession(s));
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.server.on('tlsClientError', (err, socket) => {
      this.counters.tlsErrors += 1;
      this.log.warn({ event: 'refused', reason: 'tls', peer: socket.remoteAddress, error: err.message }, 'inbound TLS handshake refused');
    });
  }

  listen(port = HBONE_PORT): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      // reusePort: a successor agent binds the same port while this one drains (agent/handover.ts).
      this.server.listen({ host: this.inputs.listenAddress, port, backlog: 1024, reusePort: true }, () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * The drain: close the listening socket and send GOAWAY on every session, so peers open new
   * streams elsewhere (on a successor) while the streams in flight finish here.
   */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  /** Sessions still open (each closes once its last stream has ended). */
  get live(): number {
    return this.sessions.size;
  }

  /** End every session left, with `err` as the reason. */
  destroyAll(err: Error): void {
    for (const s of this.sessions) s.destroy(err);
  }

  private contextFor(servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    for (const w of this.inputs.local.all()) {
      let name = this.sniNames.get(w.identity);
      if (name === undefined) this.sniNames.set(w.identity, (name = sniFor(w.identity)));
      if (name !== servername) continue;
      const cert = this.inputs.identities.get(w.identity);
      if (cert) return cb(null, cert.context);
      return cb(new Error(`no valid certificate for ${w.identity}`));
    }
    cb(new Error(`no local identity for server name ${servername}`));
  }

  private onSession(session: http2.ServerHttp2Session): void {
    const socket = session.socket as tls.TLSSocket;
    const cert = socket.getPeerCertificate();
    const peer = spiffeIdOfPeer(cert);
    if (!socket.authorized || !peer) {
      this.counters.refused += 1;
      this.log.warn({ event: 'refused', reason: 'no-peer-identity', peer: socket.remoteAddress }, 'inbound connection refused');
      session.destroy();
      return;
    }
    this.peers.set(session, { identity: peer, validTo: Date.parse(cert.valid_to) });
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err) => this.log.debug({ err }, 'inbound session error'));
    this.keepAlive(session, socket.remoteAddress, peer);
    try {
      session.setLocalWindowSize(SESSION_WINDOW);
    } catch {
      /* session already closing */
    }
  }

  /**
   * A source node that vanished without a FIN or RST would hold its tunnels here, and each its
   * connection to a pod, for ever: PING it while it has streams open, end it when it stops answering.
   */
  private keepAlive(session: http2.ServerHttp2Session, peerAddress: string | undefined, peer: string): void {
    const keepalive = this.inputs.keepalive ?? DEFAULT_HBONE_KEEPALIVE;
    const count = { open: 0 };
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      count.open += 1;
      stream.once('close', () => (count.open -= 1));
    });
    keepSessionAlive(session, keepalive, count, `source node ${peerAddress ?? '?'}`, () => {
      this.counters.keepaliveFailures += 1;
      this.log.warn({ peer: peerAddress, peerIdentity: peer, streams: count.open }, 'inbound hbone connection: no answer to a keepalive PING; closing it and its streams');
    });
  }

  /**
   * Answer a refused stream with `status` and report it to the refusal log (logged and recorded
   * once per kind and interval): `from` is the source as far as it is known, `to` the destination
   * asked for (this listener when it could not be read).
   */
  private refuse(
    stream: http2.ServerHttp2Stream,
    status: number,
    reason: InboundRefusal,
    from: FlowEndpoint & { ip: string },
    to: { ip: string; port: number } | undefined,
    fields: Record<string, unknown>,
  ): void {
    this.answer(stream, status, reason);
    this.inputs.limits.refusals.refuse({
      route: { direction: 'inbound', source: from, destination: to ?? { ip: this.inputs.listenAddress, port: this.port }, protocol: 'tcp', mtls: true },
      outcome: { verdict: 'denied', reason },
      started: Date.now(),
      message: 'inbound stream refused',
      fields,
    });
  }

  /**
   * Refuse a stream with `status` (its refusal is reported by whoever decided it); `refusal`: the
   * policy's or limit's reason, for the source (none when the pod could not be reached).
   */
  private answer(stream: http2.ServerHttp2Stream, status: number, refusal?: string): void {
    this.counters.refused += 1;
    if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': status, ...(refusal !== undefined && { [REFUSAL_HEADER]: refusal }) }, { endStream: true });
    else stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const session = stream.session;
    stream.on('error', () => undefined);
    const peerAddress = session?.socket?.remoteAddress;
    const peer = session ? this.peers.get(session) : undefined;
    const a = streamAdmission(
      { method: headers[':method'], authority: headers[':authority'], forwarded: headers[FORWARDED_HEADER], peerAddress, peer, now: Date.now() },
      this.inputs,
    );
    if (!a.ok) {
      if (a.reason === 'peer-certificate-expired') session?.close();
      // The peer node, as far as it is known: the source until the stream names a mesh workload.
      const claimed = a.named?.source;
      const from = claimed
        ? { ip: claimed.ip, workload: claimed.name, namespace: claimed.namespace, ...(peer ? { identity: peer.identity } : {}) }
        : { ip: stripMapped(peerAddress ?? '') || 'unknown', ...(peer ? { identity: peer.identity } : {}) };
      return this.refuse(stream, a.status, a.reason, from, a.named?.destination, a.fields);
    }
    const dst = { ip: a.destination.ip, port: a.destination.port };
    const src = a.source;
    const source = { ip: src.ip, workload: src.name, namespace: src.namespace, identity: a.peerIdentity };
    // One source pod may hold only its share of the streams this node serves.
    const admitted = this.inputs.limits.connections.admit('inbound', src.ip);
    if (!admitted.ok) return this.refuse(stream, 503, admitted.reason, source, dst, { peerAddress });
    stream.once('close', admitted.release);
    const ctx: AuthzContext = {
      mtls: true,
      source,
      destination: a.destination,
    };
    this.inputs.authz.deliver(ctx, Date.now(), {
      conn: stream,
      accept: () => {
        if (stream.destroyed) return false;
        this.counters.accepted += 1;
        stream.respond({ ':status': 200 });
        this.log.debug({ event: 'inbound', source: ctx.source, destination: dst, mtls: true }, 'inbound connection');
        return true;
      },
      // Already reported by DestinationAuthz (its flow and, once per kind, its line): only answer.
      refuse: (why) => (why.reason === 'denied-by-policy' ? this.answer(stream, 403, why.reason) : this.answer(stream, 503)),
      failed: (err) => {
        this.log.error({ err }, 'inbound delivery failed');
        stream.destroy();
      },
    });
  }
}
