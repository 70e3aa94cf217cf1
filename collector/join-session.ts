/**
 * A join session: an agent without a node certificate, authenticated at upgrade by a join
 * token that was valid then. Its only message is `join {node, csr}`. The node records decide
 * (nodes/node-records.ts): a node that has already joined is refused, the token must be bound
 * to this node; only then is it consumed, the node certificate issued and recorded with the
 * token's binding. The certificate goes back and the session closes with 1000. Any refusal is an
 * `error` then close 4001, one warn line and an audit record.
 */
import type WebSocket from 'ws';
import { isPalisadeError, PalisadeError } from '../common/errors';
import type { Logger } from '../common/log';
import { CloseCode, JOIN_REQUESTS, parseMessage, type JoinMessage } from '../common/mesh-protocol';
import { nodeSpiffeId, readCsr } from '../common/pki';
import type { TrustRefusals } from './audit/trust-refusals';
import type { CertificateAuthority } from './mesh-ca';
import type { NodeRecords } from './nodes/node-records';
import { closeWith, refuseFrame, sendTo } from './session-io';
import type { JoinTokens, TokenVerdict } from './tokens';

export interface JoinSessionDeps {
  ca: CertificateAuthority;
  tokens: JoinTokens;
  nodes: NodeRecords;
  refusals: TrustRefusals;
  nodeCertTtlSeconds: number;
  log: Logger;
  /** The peer's address, for refusal records. */
  remote: string;
}

/** An agent that opened a join session and said nothing is closed after this long. */
export const JOIN_IDLE_MS = 10_000;

export function runJoinSession(ws: WebSocket, token: string, tokenId: string, deps: JoinSessionDeps): void {
  const log = deps.log.child({ session: 'join', tokenId });
  let done = false;
  const idle = setTimeout(() => {
    log.warn({ reason: 'no join message' }, 'join session timed out');
    deps.refusals.refused({ event: 'join', remote: deps.remote, reason: 'no join message', detail: { tokenId } });
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
      if (!isPalisadeError(err)) throw err;
      deps.refusals.refused({ event: 'protocol', remote: deps.remote, reason: err.message, detail: { tokenId } });
      return refuseFrame(ws, err, log);
    }
    void join(ws, token, message, deps, log);
  });
}

async function join(ws: WebSocket, token: string, message: JoinMessage, deps: JoinSessionDeps, log: Logger): Promise<void> {
  const { node } = message;
  const refuse = (reason: string): void => {
    log.warn({ node, reason }, 'join refused');
    deps.refusals.refused({ event: 'join', node, remote: deps.remote, reason });
    sendTo(ws, { type: 'error', code: 'PALISADE_ERR_JOIN_REFUSED', message: `join refused: ${reason}` }, log);
    closeWith(ws, CloseCode.JOIN_REFUSED, 'join refused');
  };
  let publicKeyPem: string;
  try {
    publicKeyPem = readCsr(message.csr).publicKeyPem;
  } catch (err) {
    return refuse(isPalisadeError(err) ? err.message : 'unreadable CSR');
  }
  let outcome;
  try {
    // A token spent through the API is spent first (a node that may not join does not spend it);
    // one in tokens.json is spent under the node records' lock.
    let spent: TokenVerdict | undefined;
    if (deps.tokens.spend) {
      const refusal = deps.nodes.joinRefusal(node);
      if (refusal) return refuse(refusal);
      spent = await deps.tokens.spend(token, node);
    }
    outcome = deps.nodes.join(node, {
      consumeToken: () => spent ?? deps.tokens.consume?.(token, node) ?? { ok: false, reason: 'this collector cannot spend join tokens' },
      issue: () =>
        deps.ca.issue(publicKeyPem, { uri: nodeSpiffeId(deps.ca.trustDomain, node), commonName: node, usage: 'node', ttlSeconds: deps.nodeCertTtlSeconds }),
    });
  } catch (err) {
    log.error({ err, node }, 'join failed: cannot update the token store or node records, or issue the node certificate');
    sendTo(ws, { type: 'error', code: 'PALISADE_ERR_INTERNAL', message: 'join failed: the collector cannot record this join' }, log);
    return closeWith(ws, 1011, 'internal error');
  }
  if (!outcome.ok) return refuse(outcome.reason);
  const cert = outcome.certPem;
  log.info({ node, nodeCidr: outcome.binding.nodeCidr, scopes: outcome.binding.scopes }, 'node joined');
  sendTo(ws, { type: 'joined', cert, ca: deps.ca.certPem }, log);
  closeWith(ws, CloseCode.NORMAL, 'joined');
}
