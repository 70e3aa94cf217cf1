import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { nodeCertPath, nodeKeyPath } from '../../../agent/mesh/node-identity';
import { openCollectorSocket, parseCollectorUrl } from '../../../agent/mesh/transport';
import type { RunningCollector } from '../../../collector/collector';
import { TokenStore } from '../../../collector/tokens';
import { PalisadeError } from '../../../common/errors';
import { certInfo, createCsr, generateKeyPair, nodeSpiffeId } from '../../../common/pki';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import {
  client,
  collector,
  LogCapture,
  refusal,
  tamper,
  token,
  useCollectorSuite,
} from './helpers';

const refusedJoin = (re: RegExp) => (err: unknown) =>
  err instanceof PalisadeError && err.code === 'PALISADE_ERR_JOIN_REFUSED' && re.test(err.message) && !err.message.includes('\n');

describe('collector: joining', () => {
  const { dirs, stack, dataDir } = useCollectorSuite();
  let logs: LogCapture;
  let data: string;
  let col: RunningCollector;

  beforeEach(async () => {
    logs = new LogCapture();
    data = dataDir();
    col = await collector(stack, { dataDir: data, log: logs.logger });
  });

  it('gives a node with a valid token a node certificate, persisted 0600 in its data dir', async () => {
    const agentDir = path.join(dirs.make(), 'agent');
    const secret = token(data, 'node-a');
    const c = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: agentDir, joinToken: secret });
    const first = await c.start();
    assert.equal(c.connected, true);
    assert.deepEqual(first.nodes.map((n) => [n.node, n.online]), [['node-a', true]]);
    assert.equal(fs.statSync(nodeKeyPath(agentDir)).mode & 0o777, 0o600);
    const pem = fs.readFileSync(nodeCertPath(agentDir), 'utf8');
    const info = certInfo(pem);
    assert.deepEqual(info.uris, [nodeSpiffeId('cluster.local', 'node-a')]);
    assert.ok(new X509Certificate(pem).checkIssued(new X509Certificate(col.ca.certPem)));
    const days = (info.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days < 30.1, `node cert lives 30 days, got ${days}`);
    assert.ok(logs.find('node joined', { node: 'node-a' }));
    assert.ok(!logs.text.some((l) => l.includes(secret.split('.')[1])), 'the token secret is never logged');
  });

  it('refuses the same token a second time: already used', async () => {
    const secret = token(data, 'node-a');
    await client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dirs.make(), joinToken: secret }).start();
    const again = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', dataDir: dirs.make(), joinToken: secret });
    await assert.rejects(again.start(), refusedJoin(/^join refused: token already used$/));
    assert.ok(logs.find('agent refused', { reason: 'token already used' }));
  });

  const badTokens: [string, (dataDir: string) => string, RegExp][] = [
    ['a wrong secret', (d) => `${token(d, 'node-a').split('.')[0]}.${'A'.repeat(32)}`, /wrong token secret/],
    ['an unknown token', () => `plt_00000000.${'A'.repeat(32)}`, /unknown token/],
    ['a malformed token', () => 'hunter2', /malformed token/],
    ['an expired token', (d) => new TokenStore(d).create({ node: 'node-a', scopes: [] }, 1, new Date(Date.now() - 60_000)).token, /token expired/],
  ];
  for (const [what, make, reason] of badTokens) {
    it(`refuses ${what} with a one-line reason and writes nothing`, async () => {
      const agentDir = path.join(dirs.make(), 'agent');
      const c = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: agentDir, joinToken: make(data) });
      await assert.rejects(c.start(), refusedJoin(reason));
      assert.ok(!fs.existsSync(nodeKeyPath(agentDir)) && !fs.existsSync(nodeCertPath(agentDir)));
      assert.ok(logs.lines.some((l) => l.msg === 'agent refused' && reason.test(String(l.reason))), 'the refusal is logged with its reason');
    });
  }

  it('refuses a join whose CSR is garbage and leaves the token usable', async () => {
    const secret = token(data, 'node-a');
    const ws = openCollectorSocket({ endpoint: parseCollectorUrl(col.url), caPem: col.ca.certPem, joinToken: secret });
    stack.push(() => ws.terminate());
    const reply = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
    const closedWith = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await new Promise((r) => ws.once('open', r));
    const key = await generateKeyPair();
    const csr = createCsr(key, { commonName: 'node-a' });
    ws.send(JSON.stringify({ type: 'join', node: 'node-a', csr: tamper(csr) }));
    const answer = await reply;
    assert.match(JSON.parse(answer).message, /^join refused: CSR/, answer);
    assert.equal(await closedWith, 4001);
    await client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dirs.make(), joinToken: secret }).start();
  });

  it('restarts from its data dir without a token', async () => {
    const agentDir = dirs.make();
    const first = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: agentDir, joinToken: token(data, 'node-a') });
    await first.start();
    await first.close();
    const again = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: agentDir });
    const snap = await again.start();
    assert.deepEqual(snap.nodes.map((n) => [n.node, n.online]), [['node-a', true]]);
  });

  it('refuses to start without a node certificate or a token, in one line', async () => {
    const agentDir = dirs.make();
    const c = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: agentDir });
    await assert.rejects(c.start(), (err: unknown) => err instanceof PalisadeError && err.message === `no node certificate in ${agentDir} and no --join-token`);
  });

  it('does not let a node certificate act for another node', async () => {
    const agentDir = dirs.make();
    await client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: agentDir, joinToken: token(data, 'node-a') }).start();
    const c = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', dataDir: agentDir });
    await assert.rejects(c.start(), /unusable \(node\.crt is for node node-a\) and no --join-token$/);
  });

  it('refuses to join a collector whose certificate does not chain to the given CA', async () => {
    const other = CertificateAuthority.loadOrCreate(dirs.make(), 'cluster.local', pino({ level: 'silent' }));
    const c = client(stack, { url: col.url, caPem: other.certPem, node: 'node-a', dataDir: dirs.make(), joinToken: token(data, 'node-a') });
    await assert.rejects(c.start(), (err: unknown) => err instanceof PalisadeError && err.code === 'PALISADE_ERR_UNAUTHENTICATED' && /^cannot verify the collector: /.test(err.message));
  });

  describe('unauthenticated upgrades', () => {
    it('answers 401 to no certificate and no token', async () => {
      const ws = openCollectorSocket({ endpoint: parseCollectorUrl(col.url), caPem: col.ca.certPem });
      const r = await refusal(ws);
      assert.equal(r.status, 401);
      assert.equal(r.body.code, 'PALISADE_ERR_UNAUTHENTICATED');
      assert.ok(logs.find('agent refused', { reason: 'no client certificate and no join token' }));
    });

    it('answers 401 to a node certificate from another CA', async () => {
      const otherDir = dirs.make();
      const other = CertificateAuthority.loadOrCreate(otherDir, 'cluster.local', pino({ level: 'silent' }));
      const key = await generateKeyPair();
      const certPem = other.issue(key.publicKeyPem, { uri: nodeSpiffeId('cluster.local', 'node-a'), ttlSeconds: 600, usage: 'node' });
      const ws = openCollectorSocket({ endpoint: parseCollectorUrl(col.url), caPem: col.ca.certPem, cert: { certPem, keyPem: key.privateKeyPem } });
      const r = await refusal(ws);
      assert.equal(r.status, 401);
      assert.match(String(r.body.message), /client certificate not trusted/);
      assert.ok(logs.lines.some((l) => l.msg === 'agent refused' && /not trusted/.test(String(l.reason))));
    });
  });
});
