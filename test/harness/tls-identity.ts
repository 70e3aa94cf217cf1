/**
 * A TLS server's key and certificate for tests, issued by a CA of its own (in a temp directory):
 * `ca` is what a client trusts, and `files` the same three PEMs written out for a fixture process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
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
