import { strict as assert } from 'node:assert';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { CollectorClient } from '../../../agent/mesh/collector-client';
import type { RunningCollector } from '../../../collector/collector';
import { PalisadeError } from '../../../common/errors';
import { certInfo, createCsr, generateKeyPair, nodeSpiffeId, type KeyPair } from '../../../common/pki';
import { CaTemplate, client, collector, joinedNodeDir, LogCapture, snapshotWhere, Stack, tamper, TempDirs, workload } from './helpers';

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const DB = 'spiffe://cluster.local/ns/default/sa/db';

const csrRefused = (re: RegExp) => (err: unknown) =>
  err instanceof PalisadeError && err.code === 'PALISADE_ERR_CSR_REFUSED' && re.test(err.message) && !err.message.includes('\n');

describe('collector: workload certificates', () => {
  const suiteDirs = new TempDirs();
  const suite = new Stack();
  let logs: LogCapture;
  let col: RunningCollector;
  let key: KeyPair;
  let a: CollectorClient;

  before(async () => {
    logs = new LogCapture();
    const data = new CaTemplate(suiteDirs).dataDir(suiteDirs);
    col = await collector(suite, { dataDir: data, log: logs.logger, workloadCertTtlSeconds: 30 });
    const [dirA, dirB, k] = await Promise.all([
      joinedNodeDir(suiteDirs, col, data, 'node-a'),
      joinedNodeDir(suiteDirs, col, data, 'node-b'),
      generateKeyPair(),
    ]);
    key = k;
    a = client(suite, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dirA });
    const b = client(suite, { url: col.url, caPem: col.ca.certPem, node: 'node-b', dataDir: dirB });
    a.setWorkloads([workload('web', '10.2.0.1')]);
    b.setWorkloads([workload('db', '10.2.0.2')]);
    await Promise.all([a.start(), b.start()]);
    await snapshotWhere(a, (s) => s.workloads.length === 2);
  });
  after(async () => {
    await suite.unwind();
    suiteDirs.cleanup();
  });

  it('signs its own workload\'s identity: URI SAN, TTL, chains to the CA', async () => {
    const { certPem, caPem } = await a.requestCertificate(WEB, createCsr(key, { commonName: 'web', uri: WEB }));
    assert.equal(caPem, col.ca.certPem);
    const info = certInfo(certPem);
    assert.deepEqual(info.uris, [WEB]);
    const ttl = (info.notAfter.getTime() - Date.now()) / 1000;
    assert.ok(ttl > 25 && ttl <= 31, `30 s TTL, got ${ttl}`);
    const x = new X509Certificate(certPem);
    const ca = new X509Certificate(col.ca.certPem);
    assert.ok(x.checkIssued(ca) && x.verify(ca.publicKey));
    assert.ok(x.checkPrivateKey(createPrivateKey(key.privateKeyPem)));
    assert.ok(logs.find('certificate issued', { node: 'node-a', identity: WEB }));
  });

  it('refuses another node\'s workload identity, and logs who asked', async () => {
    await assert.rejects(a.requestCertificate(DB, createCsr(key, { commonName: 'db', uri: DB })), csrRefused(/not the identity of a workload registered on node node-a/));
    const line = logs.lines.find((l) => l.msg === 'csr refused' && l.identity === DB);
    assert.ok(line && line.node === 'node-a' && typeof line.reason === 'string' && line.level === 40);
  });

  it('refuses a CSR whose SAN is not the requested identity', async () => {
    await assert.rejects(a.requestCertificate(WEB, createCsr(key, { commonName: 'web', uri: DB })), csrRefused(/URI SAN .*sa\/db.* is not spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/));
    await assert.rejects(a.requestCertificate(WEB, createCsr(key, { commonName: 'web' })), csrRefused(/URI SAN "" is not/));
  });

  it('refuses a garbage CSR and one with a broken signature', async () => {
    const garbage = '-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n';
    await assert.rejects(a.requestCertificate(WEB, garbage), csrRefused(/not a PEM PKCS#10/));
    await assert.rejects(a.requestCertificate(WEB, tamper(createCsr(key, { commonName: 'web', uri: WEB }))), csrRefused(/signature does not verify/));
  });

  it('keeps the session usable after refusals', async () => {
    await assert.rejects(a.requestCertificate(DB, createCsr(key, { commonName: 'db', uri: DB })), PalisadeError);
    assert.equal(a.connected, true);
    const { certPem } = await a.requestCertificate(WEB, createCsr(key, { commonName: 'web', uri: WEB }));
    assert.deepEqual(certInfo(certPem).uris, [WEB]);
  });

  it('renews the node\'s own certificate over the node session', async () => {
    const uri = nodeSpiffeId('cluster.local', 'node-a');
    const { certPem } = await a.requestCertificate(uri, createCsr(key, { commonName: 'node-a', uri }));
    assert.deepEqual(certInfo(certPem).uris, [uri]);
    assert.deepEqual(new X509Certificate(certPem).keyUsage, ['1.3.6.1.5.5.7.3.2']);
    const other = nodeSpiffeId('cluster.local', 'node-b');
    await assert.rejects(a.requestCertificate(other, createCsr(key, { commonName: 'node-b', uri: other })), csrRefused(/not the identity/));
  });

  it('refuses to send while disconnected', async () => {
    const c = client(suite, { url: col.url, caPem: col.ca.certPem, node: 'node-c', dataDir: suiteDirs.make() });
    await assert.rejects(c.requestCertificate(WEB, 'x'), (err: unknown) => err instanceof PalisadeError && err.code === 'PALISADE_ERR_COLLECTOR_UNAVAILABLE');
  });
});
