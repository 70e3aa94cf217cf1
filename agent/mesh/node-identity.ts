/**
 * The agent's node identity: `node.key` (0600) and `node.crt` in the agent's data directory,
 * obtained once by joining with a token and then reused across restarts. A certificate is
 * usable only if it chains to the mesh CA, names this node, matches the key and has not expired.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file';
import { describeCause, errorCode, PalisadeError } from '../../common/errors';
import type { KeyPair } from '../../common/pki';
import { certInfo, parseNodeSpiffeId } from '../../common/pki';

export interface NodeCredentials {
  keyPem: string;
  certPem: string;
  trustDomain: string;
  notBefore: Date;
  notAfter: Date;
}

/** A certificate this close to expiry is treated as expired. */
const EXPIRY_MARGIN_MS = 60_000;

export const nodeKeyPath = (dataDir: string): string => path.join(dataDir, 'node.key');
export const nodeCertPath = (dataDir: string): string => path.join(dataDir, 'node.crt');

/**
 * This node's credentials from `dataDir`: `{ creds }` when usable, `{ missing: true }` when there
 * are none, `{ unusable: why }` otherwise. A key file others can read is refused (throws).
 */
export function loadNodeCredentials(
  dataDir: string,
  node: string,
  caPem: string,
  now = Date.now(),
): { creds: NodeCredentials } | { missing: true } | { unusable: string } {
  const keyFile = nodeKeyPath(dataDir);
  let keyPem: string;
  let certPem: string;
  try {
    const st = lstatSync(keyFile);
    if (!st.isFile()) throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${keyFile} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${keyFile} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: chmod 600 it`);
    }
    keyPem = readFileSync(keyFile, 'utf8');
    certPem = readFileSync(nodeCertPath(dataDir), 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { missing: true };
    if (err instanceof PalisadeError) throw err;
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot read node credentials in ${dataDir}: ${describeCause(err)}`, { cause: err });
  }
  const why = checkNodeCert(keyPem, certPem, node, caPem, now);
  if (typeof why === 'string') return { unusable: why };
  return { creds: why };
}

function checkNodeCert(keyPem: string, certPem: string, node: string, caPem: string, now: number): NodeCredentials | string {
  let x509: X509Certificate;
  let ca: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
    ca = new X509Certificate(caPem);
  } catch {
    return 'node.crt does not parse';
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(keyPem))) return 'node.key does not match node.crt';
  } catch {
    return 'node.key does not parse';
  }
  if (!x509.checkIssued(ca) || !x509.verify(ca.publicKey)) return 'node.crt was not issued by this mesh CA';
  const info = certInfo(certPem);
  const id = info.uris.length === 1 ? parseNodeSpiffeId(info.uris[0]) : undefined;
  if (!id) return 'node.crt has no node identity';
  if (id.node !== node) return `node.crt is for node ${id.node}`;
  if (info.notAfter.getTime() - EXPIRY_MARGIN_MS <= now) return `node.crt expired at ${info.notAfter.toISOString()}`;
  return { keyPem, certPem, trustDomain: id.trustDomain, notBefore: info.notBefore, notAfter: info.notAfter };
}

/** Persist a freshly issued node certificate and its key; returns them as credentials. */
export function saveNodeCredentials(dataDir: string, node: string, caPem: string, key: KeyPair, certPem: string): NodeCredentials {
  const checked = checkNodeCert(key.privateKeyPem, certPem, node, caPem, Date.now());
  if (typeof checked === 'string') {
    throw new PalisadeError('PALISADE_ERR_PROTOCOL', `the collector sent an unusable node certificate: ${checked}`);
  }
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot create ${dataDir}: ${describeCause(err)}`, { cause: err });
  }
  writeFileAtomic(nodeKeyPath(dataDir), key.privateKeyPem, 0o600);
  writeFileAtomic(nodeCertPath(dataDir), certPem, 0o644);
  return checked;
}
