/**
 * Whether a routed attempt's failed connect is the destination's answer (its policy denied the
 * client, its limits refused it) or a failure to reach the endpoint. A refusal is final: the
 * client gets it (403 denied; 503 for a limit), and it says nothing of the endpoint's health, so
 * nothing is ejected, retried or charged to the retry budget. Only "no connection" (refused,
 * unreachable, timed out, the peer's "pod unreachable") counts against an endpoint. Pure.
 */
import type { AttemptRefusal } from '../proxy/http';

/** What a peer's refusal reason may look like (it is the peer's word, put into flow records). */
const REASON_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

/**
 * The refusal `err` stands for, or undefined when it is a failure to connect. `err` is a rejection
 * of this node's destination authorization (`code`: its refuse reason) or of the HBONE pool
 * (`peerStatus`, and the peer's `peerRefusal` when a policy or a limit refused it).
 */
export function refusalOf(err: unknown): AttemptRefusal | undefined {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; peerStatus?: unknown; peerRefusal?: unknown };
  if (e.code === 'denied-by-policy') return { status: 403, verdict: 'denied', reason: 'denied-by-policy' };
  const peer = e.peerStatus;
  if (typeof peer !== 'number') return undefined;
  const why = typeof e.peerRefusal === 'string' && REASON_RE.test(e.peerRefusal) ? e.peerRefusal : undefined;
  // as an unrouted connection records it (outbound.ts)
  if (peer === 403) return { status: 403, verdict: 'denied', reason: 'denied-by-destination' };
  // an expired or missing identity, too many requests, a limit: the destination's word, not the endpoint's health
  if (peer === 401 || peer === 429 || (peer === 503 && why !== undefined)) return { status: 503, verdict: 'error', reason: why ?? `tunnel-refused-${peer}` };
  return undefined;
}
