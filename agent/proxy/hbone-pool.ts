/**
 * Outbound side of HBONE: one HTTP/2-over-mTLS connection per (source identity,
 * destination node, destination identity), reused for every CONNECT stream.
 * The client presents the *source workload's* certificate and checks that the
 * peer presents exactly the destination identity.
 */
import * as http2 from 'node:http2';
import { errorCode, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { IdentityCert } from '../identity/manager';
import { DEFAULT_HBONE_KEEPALIVE, keepSessionAlive, type HboneKeepalive } from './hbone-keepalive';
import { FORWARDED_HEADER, formatForwarded, HBONE_PORT, REFUSAL_HEADER, sniFor, spiffeIdOfPeer } from './hbone';

export interface IdentitySource {
  get(identity: string): IdentityCert | undefined;
}

export interface TunnelTarget {
  srcIdentity: string;
  srcIp: string;
  nodeAddress: string;
  dstIdentity: string;
  dst: { ip: string; port: number };
}

const STREAM_WINDOW = 4 << 20;
const SESSION_WINDOW = 16 << 20;
const IDLE_MS = 60_000;

export class HbonePool {
  private readonly sessions = new Map<string, { session: http2.ClientHttp2Session; cert: IdentityCert }>();
  /** Streams open on each session (the forgotten ones too), for the keepalive. */
  private readonly streams = new WeakMap<http2.ClientHttp2Session, { open: number }>();
  /** Sessions destroyed because their peer did not answer a keepalive PING. */
  keepaliveFailures = 0;
  private readonly log: Logger;
  /** TLS handshakes completed (new pooled connections), for metrics and tests. */
  handshakes = 0;
  /** Streams refused unprocessed by a draining peer and tried again on a new session. */
  retried = 0;

  constructor(
    private readonly identities: IdentitySource,
    log: Logger,
    private readonly port = HBONE_PORT,
    private readonly timeoutMs = 10_000,
    private readonly keepalive: HboneKeepalive = DEFAULT_HBONE_KEEPALIVE,
  ) {
    this.log = log.child({ component: 'hbone-pool' });
  }

  /**
   * Open a CONNECT stream to the destination; resolves once the peer answered 200. A stream the
   * peer refused unprocessed — REFUSED_STREAM, as a draining peer answers streams that crossed
   * its GOAWAY — is tried once more on a fresh session: nothing reached the destination.
   */
  async connect(t: TunnelTarget): Promise<http2.ClientHttp2Stream> {
    try {
      return await this.open(t);
    } catch (err) {
      if (!(err instanceof UnprocessedStream)) throw err;
      this.retried += 1;
      this.log.debug({ peer: t.nodeAddress, dst: t.dstIdentity }, 'stream refused unprocessed (peer draining): retrying on a new session');
      this.forget(t);
      return this.open(t);
    }
  }

  private open(t: TunnelTarget): Promise<http2.ClientHttp2Stream> {
    const session = this.session(t);
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(
          { ':method': 'CONNECT', ':authority': `${t.dst.ip}:${t.dst.port}`, [FORWARDED_HEADER]: formatForwarded(t.srcIp) },
          { endStream: false },
        );
      } catch (err) {
        // A session that is closing (GOAWAY received) takes no new stream: nothing was sent.
        const code = errorCode(err);
        if (code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION') reject(new UnprocessedStream(t, err as Error));
        else reject(new PalisadeError('PALISADE_ERR_HBONE', `cannot open stream to ${t.nodeAddress}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      const count = this.streams.get(session);
      if (count) {
        count.open += 1;
        stream.once('close', () => (count.open -= 1));
      }
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(new PalisadeError('PALISADE_ERR_HBONE', `CONNECT ${t.dst.ip}:${t.dst.port} via ${t.nodeAddress} timed out`));
      }, this.timeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) reject(new UnprocessedStream(t, err));
        else reject(new PalisadeError('PALISADE_ERR_HBONE', `CONNECT via ${t.nodeAddress} failed: ${err.message}`, { cause: err }));
      };
      // Closed with no answer and no error: the peer reset it with NO_ERROR (RST_STREAM, or its
      // close after a GOAWAY that covered it). Nothing went through the tunnel yet: fail now.
      const onClose = (): void => {
        clearTimeout(timer);
        reject(new PalisadeError('PALISADE_ERR_HBONE', `CONNECT ${t.dst.ip}:${t.dst.port} via ${t.nodeAddress}: stream closed before answering (code ${stream.rstCode ?? '?'})`));
      };
      stream.once('error', onError);
      stream.once('close', onClose);
      stream.once('response', (headers) => {
        clearTimeout(timer);
        stream.off('error', onError);
        stream.off('close', onClose);
        const status = Number(headers[':status']);
        if (status === 200) {
          resolve(stream);
          return;
        }
        stream.close(http2.constants.NGHTTP2_CANCEL);
        const refusal = headers[REFUSAL_HEADER];
        reject(
          Object.assign(new PalisadeError('PALISADE_ERR_HBONE', `peer ${t.nodeAddress} refused CONNECT ${t.dst.ip}:${t.dst.port} with ${status}`), {
            peerStatus: status,
            // the peer's word, checked where it is used (agent/traffic/refusal.ts)
            ...(typeof refusal === 'string' && { peerRefusal: refusal }),
          }),
        );
      });
    });
  }

  get size(): number {
    return this.sessions.size;
  }

  close(): void {
    for (const s of this.sessions.values()) s.session.destroy();
    this.sessions.clear();
  }

  private static key(t: TunnelTarget): string {
    return `${t.srcIdentity}|${t.nodeAddress}|${t.dstIdentity}`;
  }

  /** New streams to this target go over a new session (the current one is left to finish). */
  private forget(t: TunnelTarget): void {
    this.sessions.delete(HbonePool.key(t));
  }

  private session(t: TunnelTarget): http2.ClientHttp2Session {
    const key = HbonePool.key(t);
    const cert = this.identities.get(t.srcIdentity);
    const existing = this.sessions.get(key);
    if (!cert) {
      existing?.session.close();
      throw new PalisadeError('PALISADE_ERR_IDENTITY', `no valid certificate for ${t.srcIdentity}: refusing to connect`);
    }
    if (existing && !existing.session.closed && !existing.session.destroyed) {
      if (existing.cert === cert) return existing.session;
      // Renewed: new streams go over a connection made with the new certificate;
      // the old one finishes its streams and closes.
      existing.session.close();
    }
    const session = http2.connect(`https://${t.nodeAddress}:${this.port}`, {
      secureContext: cert.context,
      servername: sniFor(t.dstIdentity),
      minVersion: 'TLSv1.3',
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
      checkServerIdentity: (_host, peer) => {
        const got = spiffeIdOfPeer(peer);
        return got === t.dstIdentity ? undefined : new Error(`peer presented ${got ?? 'no SPIFFE ID'}, expected ${t.dstIdentity}`);
      },
    });
    this.sessions.set(key, { session, cert });
    session.once('connect', () => {
      this.handshakes += 1;
      session.setLocalWindowSize(SESSION_WINDOW);
      this.log.info({ peer: t.nodeAddress, src: t.srcIdentity, dst: t.dstIdentity }, 'hbone connection established');
    });
    const forget = (): void => {
      if (this.sessions.get(key)?.session === session) this.sessions.delete(key);
    };
    session.once('close', forget);
    session.once('goaway', forget);
    session.on('error', (err) => {
      forget();
      this.log.warn({ err, peer: t.nodeAddress, dst: t.dstIdentity }, 'hbone connection failed');
    });
    session.setTimeout(IDLE_MS, () => {
      forget();
      session.close();
    });
    this.keepAlive(session, t, forget);
    return session;
  }

  private keepAlive(session: http2.ClientHttp2Session, t: TunnelTarget, forget: () => void): void {
    const count = { open: 0 };
    this.streams.set(session, count);
    keepSessionAlive(session, this.keepalive, count, `peer ${t.nodeAddress}`, () => {
      this.keepaliveFailures += 1;
      this.log.warn({ peer: t.nodeAddress, dst: t.dstIdentity, streams: count.open }, 'hbone connection: no answer to a keepalive PING; closing it and its streams');
      forget();
    });
  }
}

/** The peer refused a stream before processing it (RFC 9113 §8.7): safe to try again. */
class UnprocessedStream extends PalisadeError {
  constructor(t: TunnelTarget, cause: Error) {
    super('PALISADE_ERR_HBONE', `CONNECT via ${t.nodeAddress} refused unprocessed: ${cause.message}`, { cause });
  }
}
