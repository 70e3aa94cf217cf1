/**
 * SPIFFE identities of workloads: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
 *
 * `parseSpiffeId` is used on peer certificates' URI SANs, so it accepts exactly the shape that
 * `spiffeId` produces and nothing else: no normalization, no percent-decoding, no URL parser.
 */
import { invalidArgument, PalisadeError } from './errors';

/** The SPIFFE trust domain of a mesh that names none (the collector's --trust-domain default). */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

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
const MAX_OBJECT_NAME_LENGTH = 253;

const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const OBJECT_NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** SPIFFE trust domain name: lowercase letters, digits, '.', '-', '_'; 1..255 characters. */
export function isTrustDomain(value: string): boolean {
  return value.length <= MAX_TRUST_DOMAIN_LENGTH && TRUST_DOMAIN_RE.test(value);
}

/** DNS-1123 label (Kubernetes namespace / service account names): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤63. */
export function isDnsLabel(value: string): boolean {
  return value.length <= MAX_DNS_LABEL_LENGTH && DNS_LABEL_RE.test(value);
}

/** Kubernetes object name (DNS-1123 subdomain): `[a-z0-9]([-a-z0-9.]*[a-z0-9])?`, ≤253. */
export function isObjectName(value: string): boolean {
  return value.length <= MAX_OBJECT_NAME_LENGTH && OBJECT_NAME_RE.test(value);
}

/**
 * A reference to a namespaced Kubernetes object: `namespace/name` (a DNS-1123 label, then an
 * object name), or with `bare: true` also a plain `name` (the namespace left to the reader).
 */
export function isObjectRef(value: string, opts: { bare: boolean }): boolean {
  const parts = value.split('/');
  if (parts.length === 1) return opts.bare && isObjectName(value);
  return parts.length === 2 && isDnsLabel(parts[0]!) && isObjectName(parts[1]!);
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
