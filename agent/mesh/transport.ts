/**
 * How the agent reaches the collector: `wss://HOST:PORT` over TCP, or `unix:/abs/path.sock`
 * (TLS over a Unix socket, for agents in another network namespace on the same host). Either
 * way TLS 1.3, the mesh CA as the only trust anchor, and the collector's certificate checked
 * against the name `palisade-collector`.
 */
import type { IncomingMessage } from 'node:http';
import * as path from 'node:path';
import * as tls from 'node:tls';
import WebSocket from 'ws';
import { errorCode, invalidArgument, PalisadeError, type PalisadeErrorCode } from '../../common/errors';
import { AGENT_PATH, COLLECTOR_SERVERNAME, MAX_COLLECTOR_FRAME_BYTES, WIRE_ERROR_CODES } from '../../common/mesh-protocol';

export type CollectorEndpoint = { kind: 'tcp'; hostPort: string } | { kind: 'unix'; path: string };

export interface SocketOptions {
  endpoint: CollectorEndpoint;
  caPem: string;
  /** Node credentials (node session); absent for a join session. */
  cert?: { certPem: string; keyPem: string };
  /** Join token (join session), sent as `Authorization: Bearer …`. */
  joinToken?: string;
  handshakeTimeoutMs?: number;
}

export function parseCollectorUrl(url: string): CollectorEndpoint {
  if (typeof url === 'string' && url.startsWith('unix:')) {
    const p = url.slice('unix:'.length);
    if (path.isAbsolute(p) && !p.includes('\0')) return { kind: 'unix', path: p };
  } else if (typeof url === 'string' && /^wss:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}\/?$/.test(url)) {
    return { kind: 'tcp', hostPort: url.slice('wss://'.length).replace(/\/$/, '') };
  }
  throw invalidArgument(`invalid collector URL ${JSON.stringify(String(url).slice(0, 256))}: use wss://HOST:PORT or unix:/absolute/path.sock`);
}

/** Open (not yet open: wait for 'open') a WebSocket to the collector's agent endpoint. */
export function openCollectorSocket(opts: SocketOptions): WebSocket {
  const tlsOptions: { servername: string; ca: string[]; minVersion: tls.SecureVersion; cert?: string; key?: string } = {
    servername: COLLECTOR_SERVERNAME,
    ca: [opts.caPem],
    minVersion: 'TLSv1.3',
    ...(opts.cert ? { cert: opts.cert.certPem, key: opts.cert.keyPem } : {}),
  };
  const wsOptions: WebSocket.ClientOptions = {
    maxPayload: MAX_COLLECTOR_FRAME_BYTES,
    handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
    perMessageDeflate: false,
    // RFC 6455 masks client frames so a plaintext proxy cannot be fooled into caching them; inside
    // TLS, between two ends that are both ours, it only costs an XOR over every flow batch. An
    // all-zero key keeps the frame valid (the MASK bit is set) and ws then skips the XOR.
    generateMask: zeroMask,
    headers: opts.joinToken !== undefined ? { authorization: `Bearer ${opts.joinToken}` } : {},
  };
  if (opts.endpoint.kind === 'tcp') {
    return new WebSocket(`wss://${opts.endpoint.hostPort}${AGENT_PATH}`, { ...wsOptions, ...tlsOptions });
  }
  const socketPath = opts.endpoint.path;
  return new WebSocket(`wss://${COLLECTOR_SERVERNAME}${AGENT_PATH}`, {
    ...wsOptions,
    createConnection: () => tls.connect({ ...tlsOptions, path: socketPath }),
  });
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** Errors that mean "this is not our collector" (wrong CA, wrong name), not "it is down". */
export function isTlsVerifyError(err: Error): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|SIGNATURE/.test(errorCode(err) ?? '');
}

/**
 * The collector's HTTP refusal of an upgrade (`{code, message}` JSON body) as a PalisadeError;
 * `fallback` is the code when the body names none we know.
 */
export function readRefusal(res: IncomingMessage, fallback: PalisadeErrorCode): Promise<PalisadeError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      let code: PalisadeErrorCode = fallback;
      let message = `HTTP ${res.statusCode ?? '?'}`;
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { code?: unknown; message?: unknown };
        if (typeof body.message === 'string') message = body.message.replace(/[\r\n]+/g, ' ').slice(0, 512);
        if ((WIRE_ERROR_CODES as readonly unknown[]).includes(body.code)) code = body.code as PalisadeErrorCode;
      } catch {
        // not our JSON: keep the status line
      }
      resolve(new PalisadeError(code, message));
    };
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 16 * 1024) chunks.push(c);
    });
    res.once('end', done);
    res.once('error', done);
    res.once('close', done);
  });
}
