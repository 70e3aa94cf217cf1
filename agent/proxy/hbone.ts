/** HBONE: HTTP/2 CONNECT over mutual TLS 1.3 between node proxies (ztunnel's tunnel, port 15008). */
import { createHash } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { parseSpiffeId } from '../../common/identity';

export const HBONE_PORT = 15008;

/** Header carrying the source workload's address through the tunnel (as ztunnel does). */
export const FORWARDED_HEADER = 'forwarded';
/**
 * On a CONNECT refused by the destination's policy or limits (not on a pod that cannot be reached):
 * why, e.g. `denied-by-policy`, `pod-connection-limit`. A routed request takes it as a final answer.
 */
export const REFUSAL_HEADER = 'x-palisade-refusal';

/**
 * TLS server name that selects the destination identity's certificate on the
 * peer's inbound listener. A hash keeps it a valid DNS name whatever the trust domain.
 */
export function sniFor(identity: string): string {
  return `id-${createHash('sha256').update(identity).digest('hex').slice(0, 40)}.hbone.palisade`;
}

/**
 * The single SPIFFE ID of a peer certificate, or undefined. Node's own hostname
 * check ignores URI SANs, so every caller checks this itself.
 */
export function spiffeIdOfPeer(cert: Pick<PeerCertificate, 'subjectaltname'> | undefined): string | undefined {
  const san = cert?.subjectaltname;
  if (!san) return undefined;
  const uris = san
    .split(', ')
    .filter((e) => e.startsWith('URI:'))
    .map((e) => e.slice(4));
  if (uris.length !== 1) return undefined;
  const uri = uris[0]!;
  return parseSpiffeId(uri) ? uri : undefined;
}

export function formatForwarded(ip: string): string {
  return `for="${ip}"`;
}

/** `for="10.0.1.10"` -> 10.0.1.10; anything else (lists, obfuscated, ports) -> undefined. */
export function parseForwarded(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^for="?(\d{1,3}(?:\.\d{1,3}){3})"?$/.exec(value.trim());
  return m ? m[1] : undefined;
}

/** `10.0.2.10:8080` -> endpoint; IPv4 literal only. */
export function parseAuthority(value: string | undefined): { ip: string; port: number } | undefined {
  if (!value) return undefined;
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(value);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535 || m[1]!.split('.').some((o) => Number(o) > 255)) return undefined;
  return { ip: m[1]!, port };
}
