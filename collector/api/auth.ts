/**
 * Who may use the API: the holder of the admin token (`<data dir>/admin.token`, created at the
 * collector's first start, mode 0600), sent as `Authorization: Bearer pla_…`, or a client
 * presenting a node certificate of our mesh CA and trust domain that the node records still
 * stand behind (checked on every request, so a revoked node's open connection is refused too).
 * Everything else is refused with a reason that is safe to log and to send back (never the token).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import * as path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { writeFileAtomic } from '../../common/atomic-file';
import { PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { parseNodeSpiffeId, spiffeIdOfCert } from '../../common/pki';
import { presentedKey } from '../nodes/node-records';
import type { PresentedKey } from '../nodes/node-trust';

export const ADMIN_TOKEN_FILE = 'admin.token';
const ADMIN_TOKEN_RE = /^pla_[A-Za-z0-9_-]{43}$/;

/** `token`: the first 8 hex digits of the admin token's SHA-256, naming the author of a change without the secret. */
export type ApiCaller = { kind: 'admin'; token: string } | { kind: 'node'; node: string };
export type ApiAuthResult = { ok: true; caller: ApiCaller } | { ok: false; reason: string };

/** The admin token in `dataDir`, created (32 random bytes, base64url, `pla_` prefix) when missing. */
export function loadOrCreateAdminToken(dataDir: string, log?: Logger): string {
  const file = path.join(dataDir, ADMIN_TOKEN_FILE);
  if (existsSync(file)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (!ADMIN_TOKEN_RE.test(text)) {
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${file} does not hold an admin token (pla_…): remove it to have a new one created`);
    }
    return text;
  }
  const token = `pla_${randomBytes(32).toString('base64url')}`;
  writeFileAtomic(file, `${token}\n`, 0o600);
  log?.info({ file }, 'admin token created');
  return token;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export class ApiAuth {
  private readonly tokenDigest: Buffer;
  private readonly tokenName: string;
  /** A TLS connection's certificate chain is checked once, not on every keep-alive request. */
  private readonly byConnection = new WeakMap<TLSSocket, { result: ApiAuthResult; key?: PresentedKey }>();

  constructor(
    adminToken: string,
    private readonly trustDomain: string,
    /** Why the collector no longer accepts a node's certificate (revoked, unknown), or undefined. */
    private readonly nodeRefusal: (node: string, key: PresentedKey) => string | undefined = () => undefined,
  ) {
    this.tokenDigest = sha256(adminToken);
    this.tokenName = this.tokenDigest.toString('hex').slice(0, 8);
  }

  check(req: IncomingMessage): ApiAuthResult {
    const socket = req.socket as TLSSocket;
    const byCert = this.certificate(socket);
    if (byCert.ok) return byCert;
    const header = req.headers.authorization;
    if (header === undefined) return byCert;
    const m = /^Bearer ([\x21-\x7e]{1,256})$/.exec(header);
    if (!m) return { ok: false, reason: 'malformed authorization header' };
    // equal-length digests: the comparison takes the same time whatever was sent
    if (!timingSafeEqual(sha256(m[1]), this.tokenDigest)) return { ok: false, reason: 'wrong token' };
    return { ok: true, caller: { kind: 'admin', token: this.tokenName } };
  }

  private certificate(socket: TLSSocket): ApiAuthResult {
    let checked = this.byConnection.get(socket);
    if (!checked) {
      checked = this.checkCertificate(socket);
      if (typeof socket.getPeerX509Certificate === 'function') this.byConnection.set(socket, checked);
    }
    const { result, key } = checked;
    if (!result.ok || result.caller.kind !== 'node' || key === undefined) return result;
    let why: string | undefined;
    try {
      why = this.nodeRefusal(result.caller.node, key);
    } catch {
      why = 'collector cannot read its node records';
    }
    return why === undefined ? result : { ok: false, reason: why };
  }

  private checkCertificate(socket: TLSSocket): { result: ApiAuthResult; key?: PresentedKey } {
    const peer = typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
    if (!peer) return { result: { ok: false, reason: 'no admin token and no client certificate' } };
    if (!socket.authorized) return { result: { ok: false, reason: `client certificate not trusted (${String(socket.authorizationError)})` } };
    const id = spiffeIdOfCert(peer.toString());
    const parsed = id === undefined ? undefined : parseNodeSpiffeId(id);
    if (!parsed || parsed.trustDomain !== this.trustDomain) {
      return { result: { ok: false, reason: 'client certificate is not a node identity of this trust domain' } };
    }
    return { result: { ok: true, caller: { kind: 'node', node: parsed.node } }, key: presentedKey(peer) };
  }
}
