/**
 * A TLS server's key and certificate for tests, issued by a CA of its own (in a temp directory):
 * `ca` is what a client trusts, and `files` the same three PEMs written out for a fixture process.
 * And a mesh workload's certificate, as an agent holds it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { IdentityCert } from '../../agent/identity/manager';
import { CertificateAuthority } from '../../collector/mesh-ca';
import { generateKeyPair } from '../../common/pki';
import { tempDir } from './agent';

export interface TlsIdentity {
  key: string;
  cert: string;
  ca: string;
  files: { key: string; cert: string; ca: string };
}

export async function tlsIdentity(dnsName: string): Promise<TlsIdentity> {
  const dir = tempDir('tls-identity');
  const ca = CertificateAuthority.loadOrCreate(dir, 'cluster.local');
  const key = await generateKeyPair();
  const cert = ca.issue(key.publicKeyPem, { ips: [], dnsNames: [dnsName], ttlSeconds: 24 * 3600, usage: 'server' });
  const files = { key: path.join(dir, 'server.key'), cert: path.join(dir, 'server.crt'), ca: path.join(dir, 'ca.crt') };
  fs.writeFileSync(files.key, key.privateKeyPem, { mode: 0o600 });
  fs.writeFileSync(files.cert, cert);
  fs.writeFileSync(files.ca, ca.certPem);
  return { key: key.privateKeyPem, cert, ca: ca.certPem, files };
}

/** A workload certificate from the mesh CA `ca`, as the agent's IdentityManager holds it (valid 1 h). */
export async function workloadIdentity(ca: CertificateAuthority, identity: string): Promise<IdentityCert> {
  const k = await generateKeyPair();
  const certPem = ca.issue(k.publicKeyPem, { uri: identity, ttlSeconds: 3600, usage: 'workload' });
  const now = new Date();
  return {
    identity,
    certPem,
    keyPem: k.privateKeyPem,
    caPem: ca.certPem,
    notBefore: now,
    notAfter: new Date(now.getTime() + 3600_000),
    receivedAt: Date.now(),
    context: tls.createSecureContext({ key: k.privateKeyPem, cert: certPem, ca: ca.certPem, minVersion: 'TLSv1.3' }),
  };
}
