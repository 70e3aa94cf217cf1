/**
 * A join session: an agent without a node certificate, authenticated at upgrade by a join
 * token that was valid then. Its only message is `join {node, csr}`; the token is consumed
 * only when everything else checks out, then the node certificate goes back and the session
 * closes with 1000. Any refusal is an `error` then close 4001.
 */
import type WebSocket from 'ws';
import { isPalisadeError, PalisadeError } from '../common/errors';
import type { Logger } from '../common/log';
import { CloseCode, JOIN_REQUESTS, parseMessage, type JoinMessage } from '../common/mesh-protocol';
import { nodeSpiffeId, readCsr } from '../common/pki';
import type { CertificateAuthority } from './mesh-ca';
import { closeWith, refuseFrame, sendTo } from './session-io';
import type { TokenStore } from './tokens';

export interface JoinSessionDeps {
  ca: CertificateAuthority;
  tokens: TokenStore;
  nodeCertTtlSeconds: number;
  log: Logger;
}

/** An agent that opened a join session and said nothing is closed after this long. */
export const JOIN_IDLE_MS = 10_000;

export function runJoinSession(ws: WebSocket, token: string, tokenId: string, deps: JoinSessionDeps): void {
  const log = deps.log.child({ session: 'join', tokenId });
  let done = false;
  const idle = setTimeout(() => {
    log.warn({ reason: 'no join message' }, 'join session timed out');
    closeWith(ws, CloseCode.JOIN_REFUSED, 'no join message');
  }, JOIN_IDLE_MS);
  ws.on('close', () => clearTimeout(idle));
  ws.on('error', (err: Error & { code?: string }) => log.warn({ reason: err.message, code: err.code }, 'session error'));
  ws.on('message', (data, isBinary) => {
    if (done) return;
    done = true;
    clearTimeout(idle);
    let message: JoinMessage;
    try {
      if (isBinary) throw new PalisadeError('PALISADE_ERR_PROTOCOL', 'binary frames are not accepted');
      message = parseMessage(data as Buffer, JOIN_REQUESTS);
    } catch (err) {
      if (isPalisadeError(err)) return refuseFrame(ws, err, log);
      throw err;
    }
    join(ws, token, message, deps, log);
  });
}

function join(ws: WebSocket, token: string, message: JoinMessage, deps: JoinSessionDeps, log: Logger): void {
  const { node } = message;
  const refuse = (reason: string): void => {
    log.warn({ node, reason }, 'join refused');
    sendTo(ws, { type: 'error', code: 'PALISADE_ERR_JOIN_REFUSED', message: `join refused: ${reason}` }, log);
    closeWith(ws, CloseCode.JOIN_REFUSED, 'join refused');
  };
  let publicKeyPem: string;
  try {
    publicKeyPem = readCsr(message.csr).publicKeyPem;
  } catch (err) {
    return refuse(isPalisadeError(err) ? err.message : 'unreadable CSR');
  }
  let verdict;
  try {
    verdict = deps.tokens.consume(token, node);
  } catch (err) {
    log.error({ err, node }, 'join failed: token store');
    sendTo(ws, { type: 'error', code: 'PALISADE_ERR_INTERNAL', message: 'join failed: collector cannot update its token store' }, log);
    return closeWith(ws, 1011, 'internal error');
  }
  if (!verdict.ok) return refuse(verdict.reason);
  let cert: string;
  try {
    cert = deps.ca.issue(publicKeyPem, {
      uri: nodeSpiffeId(deps.ca.trustDomain, node),
      commonName: node,
      usage: 'node',
      ttlSeconds: deps.nodeCertTtlSeconds,
    });
  } catch (err) {
    log.error({ err, node }, 'join failed: cannot issue the node certificate (the token is spent)');
    sendTo(ws, { type: 'error', code: 'PALISADE_ERR_INTERNAL', message: 'join failed: the collector cannot issue a node certificate' }, log);
    return closeWith(ws, 1011, 'internal error');
  }
  log.info({ node }, 'node joined');
  sendTo(ws, { type: 'joined', cert, ca: deps.ca.certPem }, log);
  closeWith(ws, CloseCode.NORMAL, 'joined');
}
