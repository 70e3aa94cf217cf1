/**
 * SPIFFE identities of workloads: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
 *
 * `parseSpiffeId` is used on peer certificates' URI SANs, so it accepts exactly the shape that
 * `spiffeId` produces and nothing else: no normalization, no percent-decoding, no URL parser.
 */
import { invalidArgument, PalisadeError } from './errors';

export interface SpiffeIdParts {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const SCHEME = 'spiffe://';
/** SPIFFE ID spec: a SPIFFE ID is at most 2048 bytes, its trust domain at most 255. */
const MAX_SPIFFE_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;
const MAX_DNS_LABEL_LENGTH = 63;

const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** SPIFFE trust domain name: lowercase letters, digits, '.', '-', '_'; 1..255 characters. */
export function isTrustDomain(value: string): boolean {
  return value.length <= MAX_TRUST_DOMAIN_LENGTH && TRUST_DOMAIN_RE.test(value);
}

/** DNS-1123 label (Kubernetes namespace / service account names): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤63. */
export function isDnsLabel(value: string): boolean {
  return value.length <= MAX_DNS_LABEL_LENGTH && DNS_LABEL_RE.test(value);
}

/** Build the SPIFFE ID of a workload; throws on parts that `parseSpiffeId` would not accept back. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const invalid = (what: string, value: string): PalisadeError =>
    invalidArgument(`invalid ${what} ${JSON.stringify(value)} for a SPIFFE ID`);
  if (!isTrustDomain(trustDomain)) throw invalid('trust domain', trustDomain);
  if (!isDnsLabel(namespace)) throw invalid('namespace', namespace);
  if (!isDnsLabel(serviceAccount)) throw invalid('service account', serviceAccount);
  return `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/**
 * Parse `spiffe://<td>/ns/<ns>/sa/<sa>`; undefined for anything else. The scheme must be exactly
 * lowercase `spiffe://`; the authority is a bare trust domain (so no port, userinfo or IP-literal);
 * the path is exactly four segments with DNS-1123 labels for namespace and service account (so no
 * empty or dot segments, no percent-encoding, no query or fragment, no trailing slash).
 */
export function parseSpiffeId(uri: string): SpiffeIdParts | undefined {
  if (typeof uri !== 'string' || uri.length > MAX_SPIFFE_ID_LENGTH || !uri.startsWith(SCHEME)) return undefined;
  const segments = uri.slice(SCHEME.length).split('/');
  if (segments.length !== 5) return undefined;
  const [trustDomain, nsKeyword, namespace, saKeyword, serviceAccount] = segments;
  if (nsKeyword !== 'ns' || saKeyword !== 'sa') return undefined;
  if (!isTrustDomain(trustDomain) || !isDnsLabel(namespace) || !isDnsLabel(serviceAccount)) return undefined;
  return { trustDomain, namespace, serviceAccount };
}
