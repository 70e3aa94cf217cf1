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
import type { Workload } from '../workloads';
import { stripMapped } from '../ipv4-mapped';
import { FORWARDED_HEADER, HBONE_PORT, parseAuthority, parseForwarded, sniFor, spiffeIdOfPeer } from './hbone';
import type { IdentitySource } from './hbone-pool';
import { errorCode } from './connect';
import type { DestinationAuthz, AuthzContext } from './destination-authz';

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
}

export type InboundRefusal =
  | 'not-connect'
  | 'no-peer-identity'
  | 'bad-authority'
  | 'not-a-local-workload'
  | 'unknown-source'
  | 'identity-mismatch'
  | 'peer-certificate-expired'
  | 'wrong-source-node'
  | 'upstream-failed'
  | 'denied-by-policy';

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
  readonly counters = { accepted: 0, refused: 0, tlsErrors: 0 };

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
    try {
      session.setLocalWindowSize(SESSION_WINDOW);
    } catch {
      /* session already closing */
    }
  }

  private refuse(stream: http2.ServerHttp2Stream, status: number, reason: InboundRefusal, fields: Record<string, unknown>): void {
    this.counters.refused += 1;
    this.log.warn({ event: 'refused', reason, ...fields }, 'inbound stream refused');
    if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': status }, { endStream: true });
    else stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const session = stream.session;
    const peerAddress = session?.socket?.remoteAddress;
    const peer = session ? this.peers.get(session) : undefined;
    const peerIdentity = peer?.identity;
    stream.on('error', () => undefined);
    if (headers[':method'] !== 'CONNECT') return this.refuse(stream, 405, 'not-connect', { peerAddress });
    if (!peer) return this.refuse(stream, 401, 'no-peer-identity', { peerAddress });
    // A long-lived connection does not outlive the certificate it was opened with.
    if (!(peer.validTo > Date.now())) {
      stream.session?.close();
      return this.refuse(stream, 401, 'peer-certificate-expired', { peerAddress, peerIdentity });
    }
    const dst = parseAuthority(headers[':authority']);
    if (!dst) return this.refuse(stream, 400, 'bad-authority', { peerAddress, authority: headers[':authority'] });
    const target = this.inputs.local.byIp(dst.ip);
    if (!target) return this.refuse(stream, 404, 'not-a-local-workload', { peerAddress, peerIdentity, destination: dst });
    const srcIp = parseForwarded(headers[FORWARDED_HEADER]);
    const src = srcIp ? this.inputs.mesh.byIp(srcIp) : undefined;
    if (!src) return this.refuse(stream, 403, 'unknown-source', { peerAddress, peerIdentity, claimed: headers[FORWARDED_HEADER] });
    if (src.identity !== peerIdentity) {
      return this.refuse(stream, 403, 'identity-mismatch', { peerAddress, peerIdentity, expected: src.identity, source: srcIp });
    }
    if (src.nodeAddress !== stripMapped(peerAddress ?? '')) {
      return this.refuse(stream, 403, 'wrong-source-node', { peerAddress, expected: src.nodeAddress, source: srcIp });
    }
    const ctx: AuthzContext = {
      mtls: true,
      source: { ip: src.ip, workload: src.name, namespace: src.namespace, identity: peer.identity },
      destination: { ip: dst.ip, port: dst.port, workload: target },
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
      refuse: (why) => {
        if (why.reason === 'denied-by-policy') this.refuse(stream, 403, why.reason, { source: ctx.source, destination: dst, policy: why.verdict.policy });
        else this.refuse(stream, 503, why.reason, { source: ctx.source, destination: dst, error: errorCode(why.error) });
      },
      failed: (err) => {
        this.log.error({ err }, 'inbound delivery failed');
        stream.destroy();
      },
    });
  }
}
