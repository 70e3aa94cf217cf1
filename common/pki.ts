/**
 * X.509 for the mesh, as every component needs it: key pairs (node:crypto), CSRs (node-forge, RSA
 * only — node-forge cannot do EC), node identities, and reading certificates back (node:crypto
 * X509Certificate). The mesh CA that signs certificates is the collector's (collector/mesh-ca.ts).
 */
import { generateKeyPair as generateKeyPairCb, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { invalidArgument, PalisadeError } from './errors';
import { isTrustDomain, parseSpiffeId } from './identity';

export interface KeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
}

export const RSA_BITS = 2048;

/** A fresh RSA-2048 key pair (PKCS#8 / SPKI PEM), generated off the event loop. */
export function generateKeyPair(): Promise<KeyPair> {
  return new Promise((resolve, reject) => {
    generateKeyPairCb(
      'rsa',
      {
        modulusLength: RSA_BITS,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      },
      (err, publicKeyPem, privateKeyPem) => (err ? reject(err) : resolve({ privateKeyPem, publicKeyPem })),
    );
  });
}

/** A PEM CSR signed with `key`, subject CN, and a URI SAN when `uri` is given. */
export function createCsr(key: KeyPair, subject: { commonName: string; uri?: string }): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem);
  csr.setSubject([{ name: 'commonName', value: subject.commonName }]);
  if (subject.uri !== undefined) {
    csr.setAttributes([
      { name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: subject.uri }] }] },
    ]);
  }
  csr.sign(forge.pki.privateKeyFromPem(key.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

export interface CsrInfo {
  commonName: string | undefined;
  uris: string[];
  dnsNames: string[];
  /** The SPKI PEM of the key the CSR is for. */
  publicKeyPem: string;
}

/**
 * Parse a PEM CSR and verify its self-signature; throws PALISADE_ERR_CSR_REFUSED with a short
 * reason for anything unusable (not PEM, not RSA, bad signature).
 */
export function readCsr(csrPem: string): CsrInfo {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    if (typeof csrPem !== 'string' || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) throw new Error('not PEM');
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_CSR_REFUSED', 'CSR is not a PEM PKCS#10 request with an RSA key', { cause: err });
  }
  let valid = false;
  try {
    valid = csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new PalisadeError('PALISADE_ERR_CSR_REFUSED', 'CSR signature does not verify');
  const cn = csr.subject.getField('CN') as { value?: unknown } | null;
  const uris: string[] = [];
  const dnsNames: string[] = [];
  const attr = csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: unknown[] } | null;
  for (const ext of (attr?.extensions ?? []) as Array<{ name?: string; altNames?: Array<{ type: number; value: string }> }>) {
    if (ext.name !== 'subjectAltName') continue;
    for (const alt of ext.altNames ?? []) {
      if (alt.type === 6) uris.push(alt.value);
      if (alt.type === 2) dnsNames.push(alt.value);
    }
  }
  return {
    commonName: typeof cn?.value === 'string' ? cn.value : undefined,
    uris,
    dnsNames,
    publicKeyPem: forge.pki.publicKeyToPem(csr.publicKey as forge.pki.rsa.PublicKey),
  };
}

export interface CertInfo {
  notBefore: Date;
  notAfter: Date;
  uris: string[];
  dnsNames: string[];
  ips: string[];
  serialNumber: string;
  fingerprint256: string;
  issuer: string;
  subject: string;
}

/** What a PEM certificate says; throws PALISADE_ERR_INVALID_ARGUMENT when it does not parse. */
export function certInfo(pem: string): CertInfo {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_INVALID_ARGUMENT', 'not a PEM X.509 certificate', { cause: err });
  }
  const sans = parseSubjectAltName(x509.subjectAltName ?? '');
  return {
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    uris: sans.filter((s) => s.type === 'URI').map((s) => s.value),
    dnsNames: sans.filter((s) => s.type === 'DNS').map((s) => s.value),
    ips: sans.filter((s) => s.type === 'IP Address').map((s) => s.value),
    serialNumber: x509.serialNumber,
    fingerprint256: x509.fingerprint256,
    issuer: x509.issuer ?? '',
    subject: x509.subject ?? '',
  };
}

/**
 * Node renders SANs as `TYPE:value, TYPE:value`, JSON-quoting any value that contains a
 * character that would make that ambiguous (`,`, `"`, `\`, control characters...). Values are
 * read back exactly; an entry that does not fit that grammar makes the whole list unreadable.
 */
export function parseSubjectAltName(text: string): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) throw invalidArgument('unreadable subjectAltName');
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (end >= text.length) throw invalidArgument('unreadable subjectAltName');
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      end += 1;
    } else {
      end = text.indexOf(', ', colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    out.push({ type, value });
    if (end === text.length) break;
    if (text.slice(end, end + 2) !== ', ') throw invalidArgument('unreadable subjectAltName');
    i = end + 2;
  }
  return out;
}

/**
 * The SPIFFE ID of a certificate: its one and only URI SAN, when that is a workload ID
 * (`parseSpiffeId`) or a node ID (`parseNodeSpiffeId`). Undefined for anything else, including
 * certificates that do not parse or carry more than one URI SAN.
 */
export function spiffeIdOfCert(pem: string): string | undefined {
  let uris: string[];
  try {
    uris = certInfo(pem).uris;
  } catch {
    return undefined;
  }
  if (uris.length !== 1) return undefined;
  const [uri] = uris;
  return parseSpiffeId(uri) || parseNodeSpiffeId(uri) ? uri : undefined;
}

/** Node names: the agent's rule (`agent/datapath`): lowercase letters, digits, `.`, `-`, `_`, ≤63. */
const NODE_NAME_RE = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const NODE_PATH = '/palisade/node/';

export function isNodeName(value: string): boolean {
  return typeof value === 'string' && NODE_NAME_RE.test(value);
}

/** `spiffe://<trustDomain>/palisade/node/<node>`: the identity in a node certificate. */
export function nodeSpiffeId(trustDomain: string, node: string): string {
  if (!isTrustDomain(trustDomain)) {
    throw invalidArgument(`invalid trust domain ${JSON.stringify(trustDomain)}`);
  }
  if (!isNodeName(node)) throw invalidArgument(`invalid node name ${JSON.stringify(node)}`);
  return `spiffe://${trustDomain}${NODE_PATH}${node}`;
}

/** The exact inverse of `nodeSpiffeId`; undefined for anything else. */
export function parseNodeSpiffeId(uri: string): { trustDomain: string; node: string } | undefined {
  if (typeof uri !== 'string' || uri.length > 2048 || !uri.startsWith('spiffe://')) return undefined;
  const rest = uri.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return undefined;
  const trustDomain = rest.slice(0, slash);
  const path = rest.slice(slash);
  if (!isTrustDomain(trustDomain) || !path.startsWith(NODE_PATH)) return undefined;
  const node = path.slice(NODE_PATH.length);
  return isNodeName(node) ? { trustDomain, node } : undefined;
}

/** True when `ip` is an IPv4/IPv6 literal usable in an IP SAN (not the unspecified address). */
export function isSpecificIp(ip: string): boolean {
  return isIP(ip) !== 0 && ip !== '0.0.0.0' && ip !== '::';
}
