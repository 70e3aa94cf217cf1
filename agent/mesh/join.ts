/**
 * Joining the mesh: one join session with a token → a node certificate. A refusal (bad, used,
 * expired token; bad CSR) is a one-line `join refused: …` PALISADE_ERR_JOIN_REFUSED; a
 * collector that cannot be reached is PALISADE_ERR_COLLECTOR_UNAVAILABLE (worth retrying).
 */
import { isPalisadeError, PalisadeError } from '../../common/errors';
import { encodeMessage, JOIN_REPLIES, MAX_COLLECTOR_FRAME_BYTES, parseMessage, type JoinedMessage } from '../../common/mesh-protocol';
import { createCsr, generateKeyPair, type KeyPair } from '../../common/pki';
import { isTlsVerifyError, openCollectorSocket, readRefusal, type CollectorEndpoint } from './transport';

export interface JoinResult {
  key: KeyPair;
  certPem: string;
  caPem: string;
}

/** `key`: the node key to join with (default a fresh one; the scale simulator hands in pooled keys). */
export async function joinOnce(
  endpoint: CollectorEndpoint,
  caPem: string,
  node: string,
  joinToken: string,
  timeoutMs = 15_000,
  key?: KeyPair,
): Promise<JoinResult> {
  key ??= await generateKeyPair();
  const csr = createCsr(key, { commonName: node });
  const reply = await new Promise<JoinedMessage>((resolve, reject) => {
    const ws = openCollectorSocket({ endpoint, caPem, joinToken });
    let settled = false;
    const settle = (err: PalisadeError | undefined, joined?: JoinedMessage): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners('message');
      if (ws.readyState !== ws.CLOSED) ws.terminate();
      if (err) reject(err);
      else resolve(joined as JoinedMessage);
    };
    const unavailable = (why: string): PalisadeError => new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `cannot join: ${why}`);
    const timer = setTimeout(() => settle(unavailable(`no answer from the collector within ${timeoutMs} ms`)), timeoutMs);
    ws.on('open', () => ws.send(encodeMessage({ type: 'join', node, csr })));
    ws.on('unexpected-response', (_req, res) => {
      void readRefusal(res, 'PALISADE_ERR_JOIN_REFUSED').then((err) => {
        const refused = err.code === 'PALISADE_ERR_JOIN_REFUSED' || res.statusCode === 401;
        settle(refused ? new PalisadeError('PALISADE_ERR_JOIN_REFUSED', `join refused: ${err.message}`) : unavailable(err.message));
      });
    });
    ws.on('message', (data, isBinary) => {
      try {
        if (isBinary) throw new PalisadeError('PALISADE_ERR_PROTOCOL', 'binary frame from the collector');
        const m = parseMessage(data as Buffer, JOIN_REPLIES, MAX_COLLECTOR_FRAME_BYTES);
        if (m.type === 'joined') return settle(undefined, m);
        const message = m.message.startsWith('join refused') ? m.message : `join refused: ${m.message}`;
        settle(new PalisadeError(m.code === 'PALISADE_ERR_JOIN_REFUSED' ? 'PALISADE_ERR_JOIN_REFUSED' : m.code, message));
      } catch (err) {
        settle(isPalisadeError(err) ? err : new PalisadeError('PALISADE_ERR_PROTOCOL', String(err)));
      }
    });
    ws.on('error', (err: Error & { code?: string }) =>
      settle(isTlsVerifyError(err) ? new PalisadeError('PALISADE_ERR_UNAUTHENTICATED', `cannot verify the collector: ${err.message}`) : unavailable(err.message)),
    );
    ws.on('close', (code) => settle(unavailable(`the collector closed the join session (${code})`)));
  });
  return { key, certPem: reply.cert, caPem: reply.ca };
}
