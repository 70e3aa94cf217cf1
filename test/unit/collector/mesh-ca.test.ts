import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import forge from 'node-forge';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import { PalisadeError } from '../../../common/errors';
import { certInfo, createCsr, generateKeyPair, nodeSpiffeId, spiffeIdOfCert, type KeyPair } from '../../../common/pki';

const TD = 'cluster.local';
const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';

const refusedWith = (code: string, re: RegExp) => (err: unknown) =>
  err instanceof PalisadeError && err.code === code && re.test(err.message) && !err.message.includes('\n');

describe('CertificateAuthority', () => {
  let root: string;
  let key: KeyPair;
  let ca: CertificateAuthority;
  /** A fresh copy of the CA's data directory, for tests that damage it. */
  let dir: string;

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-pki-'));
    key = await generateKeyPair();
    ca = CertificateAuthority.loadOrCreate(path.join(root, 'ca'), TD);
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(root, 'copy-'));
    fs.cpSync(path.join(root, 'ca'), path.join(dir, 'data'), { recursive: true });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('CertificateAuthority.loadOrCreate', () => {
    it('creates ca.key (0600) and ca.crt: self-signed, CA:true pathLen 0, 10 years', () => {
      const data = path.join(root, 'ca');
      assert.equal(fs.statSync(path.join(data, 'ca.key')).mode & 0o777, 0o600);
      assert.equal(fs.readFileSync(path.join(data, 'ca.crt'), 'utf8'), ca.certPem);
      const x = new X509Certificate(ca.certPem);
      assert.equal(x.ca, true);
      assert.ok(x.checkIssued(x) && x.verify(x.publicKey));
      assert.equal(x.subject, 'CN=Palisade mesh CA cluster.local');
      const years = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / (365.25 * 86_400_000);
      assert.ok(years > 9.9 && years < 10.1, `validity ${years} years`);
      const f = forge.pki.certificateFromPem(ca.certPem);
      const bc = f.getExtension('basicConstraints') as { cA: boolean; pathLenConstraint: number; critical: boolean };
      assert.deepEqual([bc.cA, bc.pathLenConstraint, bc.critical], [true, 0, true]);
      const ku = f.getExtension('keyUsage') as { keyCertSign: boolean; cRLSign: boolean; digitalSignature: boolean };
      assert.deepEqual([ku.keyCertSign, ku.cRLSign, ku.digitalSignature], [true, true, false]);
    });

    it('loads the same CA again', () => {
      const again = CertificateAuthority.loadOrCreate(path.join(dir, 'data'), TD);
      assert.equal(again.certPem, ca.certPem);
    });

    it('refuses a ca.key with mode 0644, in one line', () => {
      fs.chmodSync(path.join(dir, 'data', 'ca.key'), 0o644);
      assert.throws(() => CertificateAuthority.loadOrCreate(path.join(dir, 'data'), TD), refusedWith('PALISADE_ERR_DATA_DIR', /mode 0644/));
    });

    it('refuses a lone ca.key rather than replacing it', () => {
      fs.unlinkSync(path.join(dir, 'data', 'ca.crt'));
      assert.throws(() => CertificateAuthority.loadOrCreate(path.join(dir, 'data'), TD), refusedWith('PALISADE_ERR_DATA_DIR', /ca\.crt is missing/));
      assert.ok(fs.existsSync(path.join(dir, 'data', 'ca.key')));
    });

    it('refuses a CA it created for another trust domain', () => {
      assert.throws(() => CertificateAuthority.loadOrCreate(path.join(dir, 'data'), 'example.org'), refusedWith('PALISADE_ERR_DATA_DIR', /trust domain cluster\.local/));
    });

    it('refuses a key and certificate that do not match', () => {
      fs.writeFileSync(path.join(dir, 'data', 'ca.key'), key.privateKeyPem, { mode: 0o600 });
      assert.throws(() => CertificateAuthority.loadOrCreate(path.join(dir, 'data'), TD), refusedWith('PALISADE_ERR_DATA_DIR', /not a matching/));
    });
  });

  describe('signCsr', () => {
    it('issues a workload certificate with the SAN from the options, not the CSR', () => {
      const csr = createCsr(key, { commonName: 'x', uri: 'spiffe://cluster.local/ns/kube-system/sa/admin' });
      const pem = ca.signCsr(csr, { uri: WEB, ttlSeconds: 30, usage: 'workload' });
      const info = certInfo(pem);
      assert.deepEqual(info.uris, [WEB]);
      assert.deepEqual(info.dnsNames, []);
      const x = new X509Certificate(pem);
      const caX = new X509Certificate(ca.certPem);
      assert.ok(x.checkIssued(caX) && x.verify(caX.publicKey));
      assert.equal(x.ca, false);
      assert.deepEqual([...(x.keyUsage ?? [])].sort(), [EKU_SERVER, EKU_CLIENT].sort());
      const now = Date.now();
      assert.ok(Math.abs(info.notBefore.getTime() - (now - 60_000)) < 5_000, 'notBefore is now - 60 s');
      assert.ok(Math.abs(info.notAfter.getTime() - (now + 30_000)) < 5_000, 'notAfter is now + ttl');
      assert.match(info.serialNumber, /^[0-9A-F]{32}$/);
      assert.equal(spiffeIdOfCert(pem), WEB);
    });

    it('gives every certificate a different serial', () => {
      const csr = createCsr(key, { commonName: 'x', uri: WEB });
      const a = certInfo(ca.signCsr(csr, { uri: WEB, ttlSeconds: 60, usage: 'workload' })).serialNumber;
      const b = certInfo(ca.signCsr(csr, { uri: WEB, ttlSeconds: 60, usage: 'workload' })).serialNumber;
      assert.notEqual(a, b);
    });

    it('issues node (clientAuth) and server (serverAuth, DNS + IP) certificates', () => {
      const nodeId = nodeSpiffeId(TD, 'node-a');
      const nodePem = ca.issue(key.publicKeyPem, { uri: nodeId, commonName: 'node-a', ttlSeconds: 3600, usage: 'node' });
      assert.deepEqual(new X509Certificate(nodePem).keyUsage, [EKU_CLIENT]);
      assert.equal(spiffeIdOfCert(nodePem), nodeId);
      const serverPem = ca.issue(key.publicKeyPem, { dnsNames: ['palisade-collector'], ips: ['127.0.0.1'], ttlSeconds: 3600, usage: 'server' });
      const info = certInfo(serverPem);
      assert.deepEqual([info.dnsNames, info.ips, info.uris], [['palisade-collector'], ['127.0.0.1'], []]);
      assert.deepEqual(new X509Certificate(serverPem).keyUsage, [EKU_SERVER]);
    });

    it('refuses names outside its trust domain and usages that do not fit the identity', () => {
      const csr = createCsr(key, { commonName: 'x' });
      const bad = refusedWith('PALISADE_ERR_INVALID_ARGUMENT', /cannot issue/);
      assert.throws(() => ca.signCsr(csr, { uri: 'spiffe://evil.org/ns/default/sa/web', ttlSeconds: 60, usage: 'workload' }), bad);
      assert.throws(() => ca.signCsr(csr, { uri: nodeSpiffeId(TD, 'n'), ttlSeconds: 60, usage: 'workload' }), bad);
      assert.throws(() => ca.signCsr(csr, { uri: WEB, ttlSeconds: 60, usage: 'node' }), bad);
      assert.throws(() => ca.signCsr(csr, { uri: WEB, ttlSeconds: 0, usage: 'workload' }), bad);
      assert.throws(() => ca.signCsr(csr, { ttlSeconds: 60, usage: 'server' }), bad);
    });

    it('issues certificates that work for TLS 1.3 mutual authentication', async () => {
      const csr = createCsr(key, { commonName: 'x', uri: WEB });
      const cert = ca.signCsr(csr, { uri: WEB, ttlSeconds: 60, usage: 'workload' });
      const ctx = { key: key.privateKeyPem, cert, ca: [ca.certPem], minVersion: 'TLSv1.3' as const };
      const server = tls.createServer({ ...ctx, requestCert: true, rejectUnauthorized: true }, (s) => s.end('ok'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const port = (server.address() as { port: number }).port;
        const got = await new Promise<string>((resolve, reject) => {
          const c = tls.connect({ ...ctx, host: '127.0.0.1', port, checkServerIdentity: () => undefined });
          let data = '';
          c.on('data', (d) => (data += d));
          c.on('end', () => resolve(data));
          c.on('error', reject);
        });
        assert.equal(got, 'ok');
      } finally {
        server.close();
      }
    });
  });
});
