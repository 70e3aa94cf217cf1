/**
 * Whether an HBONE CONNECT stream may go on to destination-side authorization: a pure decision
 * over what the stream says (method, :authority, the Forwarded source), who the TLS peer is (its
 * SPIFFE ID and certificate expiry, read once per session), and what the registries know (the
 * local workload at the destination, the mesh workload at the claimed source). inbound.ts acts on
 * it; every branch is in test/unit/agent/proxy/inbound-admission.test.ts.
 */
import type { MeshWorkload } from '../mesh/mesh-registry';
import type { Workload } from '../workloads';
import { stripMapped } from '../ipv4-mapped';
import { parseAuthority, parseForwarded } from './hbone';

export type StreamRefusal =
  | 'not-connect'
  | 'no-peer-identity'
  | 'peer-certificate-expired'
  | 'bad-authority'
  | 'not-a-local-workload'
  | 'unknown-source'
  | 'identity-mismatch'
  | 'wrong-source-node';

export interface StreamRequest {
  method: string | undefined;
  authority: string | undefined;
  /** the Forwarded header as sent (`for="10.0.1.10"`) */
  forwarded: string | string[] | undefined;
  /** the TLS peer's address (its node) */
  peerAddress: string | undefined;
  /** the TLS peer: its verified SPIFFE ID and when its certificate ends (ms); undefined without one */
  peer: { identity: string; validTo: number } | undefined;
  now: number;
}

export interface StreamRegistries {
  local: { byIp(ip: string): Workload | undefined };
  mesh: { byIp(ip: string): MeshWorkload | undefined };
}

export type StreamAdmission =
  | { ok: true; destination: { ip: string; port: number; workload: Workload }; source: MeshWorkload; peerIdentity: string }
  | {
      ok: false;
      status: number;
      reason: StreamRefusal;
      fields: Record<string, unknown>;
      /** what the stream named, as far as it got: the destination asked for, the mesh workload it claimed to come from */
      named?: { destination: { ip: string; port: number }; source?: MeshWorkload };
    };

function refuse(status: number, reason: StreamRefusal, fields: Record<string, unknown>, named?: { destination: { ip: string; port: number }; source?: MeshWorkload }): StreamAdmission {
  return named ? { ok: false, status, reason, fields, named } : { ok: false, status, reason, fields };
}

export function streamAdmission(r: StreamRequest, reg: StreamRegistries): StreamAdmission {
  const peerAddress = r.peerAddress;
  if (r.method !== 'CONNECT') return refuse(405, 'not-connect', { peerAddress });
  const peer = r.peer;
  if (!peer) return refuse(401, 'no-peer-identity', { peerAddress });
  const peerIdentity = peer.identity;
  // A long-lived connection does not outlive the certificate it was opened with.
  if (!(peer.validTo > r.now)) return refuse(401, 'peer-certificate-expired', { peerAddress, peerIdentity });
  const dst = parseAuthority(r.authority);
  if (!dst) return refuse(400, 'bad-authority', { peerAddress, authority: r.authority });
  const workload = reg.local.byIp(dst.ip);
  if (!workload) return refuse(404, 'not-a-local-workload', { peerAddress, peerIdentity }, { destination: dst });
  const srcIp = parseForwarded(r.forwarded);
  const src = srcIp ? reg.mesh.byIp(srcIp) : undefined;
  if (!src) return refuse(403, 'unknown-source', { peerAddress, peerIdentity, claimed: r.forwarded }, { destination: dst });
  if (src.identity !== peerIdentity) return refuse(403, 'identity-mismatch', { peerAddress, peerIdentity, expected: src.identity }, { destination: dst, source: src });
  if (src.nodeAddress !== stripMapped(peerAddress ?? '')) return refuse(403, 'wrong-source-node', { peerAddress, expected: src.nodeAddress }, { destination: dst, source: src });
  return { ok: true, destination: { ip: dst.ip, port: dst.port, workload }, source: src, peerIdentity };
}
