/**
 * Proof before identity (issue #15, item 1), each attack as it was reproduced against the demo:
 * a second join as an existing node, a node registering workloads outside its scope or range,
 * a certificate for a service account the node does not run, a session takeover without the
 * node key. Real collector, real TLS, real agents' client.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import pino from 'pino';
import type { CollectorClient } from '../../../agent/mesh/collector-client';
import { nodeKeyPath } from '../../../agent/mesh/node-identity';
import { openCollectorSocket, parseCollectorUrl } from '../../../agent/mesh/transport';
import type { RunningCollector } from '../../../collector/collector';
import type { PodOnNode } from '../../../collector/nodes/node-pods';
import type { CliDeps } from '../../../cli/deps';
import { run } from '../../../cli/program';
import type { AuditRecord } from '../../../common/control-api';
import { PalisadeError } from '../../../common/errors';
import { encodeMessage } from '../../../common/mesh-protocol';
import { createCsr, generateKeyPair, nodeSpiffeId, type KeyPair } from '../../../common/pki';
import { client, closed, collector, joinedNodeDir, LogCapture, opened, rawNodeSocket, refusal, snapshotWhere, token, useCollectorSuite, waitFor, workload } from './helpers';

const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
const WEB = 'spiffe://cluster.local/ns/default/sa/web';

const refused = (code: string, re: RegExp) => (err: unknown) => err instanceof PalisadeError && err.code === code && re.test(err.message) && !err.message.includes('\n');

function trustRecords(col: RunningCollector): AuditRecord[] {
  return col.audit.list({ kind: 'trust-refusal' });
}

function cliDeps(): { deps: CliDeps; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const logger = pino({ level: 'silent' });
  return { out, err, deps: { stdout: (t) => out.push(t), stderr: (t) => err.push(t), logger: () => logger, waitForStop: () => new Promise(() => undefined) } };
}

/** The next `collector-error` the client reports. */
const nextError = (c: CollectorClient): Promise<PalisadeError> => new Promise((resolve) => c.once('collector-error', resolve));

describe('collector: proof before identity', () => {
  const { dirs, stack, dataDir } = useCollectorSuite();
  let logs: LogCapture;
  let data: string;
  let col: RunningCollector;
  let key: KeyPair;

  before(async () => {
    key = await generateKeyPair();
  });

  beforeEach(async () => {
    logs = new LogCapture();
    data = dataDir();
    // A superseded session may deliver its last flows for this long, then it is closed (4409).
    col = await collector(stack, { dataDir: data, log: logs.logger, supersededGraceMs: 300 });
  });

  describe('joining', () => {
    it('refuses a second join of a node that has joined, with a new token (bug: it issued a second node-a certificate and replaced the real node\'s session)', async () => {
      const real = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dirs.make(), joinToken: token(data, 'node-a') });
      real.setWorkloads([workload('web', '10.0.1.11')]);
      await real.start();
      const attacker = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', nodeAddress: '192.168.50.66', dataDir: dirs.make(), joinToken: token(data, 'node-a') });
      await assert.rejects(attacker.start(), refused('PALISADE_ERR_JOIN_REFUSED', /^join refused: node node-a has already joined \(its certificate is valid until .*\): revoke it first \(palisade collector node revoke node-a\)$/));
      assert.equal(real.connected, true, 'the real node keeps its session');
      const snap = col.snapshot();
      assert.deepEqual(snap.nodes.map((n) => [n.node, n.nodeAddress, n.online]), [['node-a', '192.168.50.1', true]]);
      assert.ok(logs.find('join refused', { node: 'node-a' }));
      assert.ok(trustRecords(col).some((r) => r.data.event === 'join' && r.actor === 'node:node-a' && /already joined/.test(String(r.data.reason))));
    });

    it('refuses a token made for another node and leaves it usable for its own', async () => {
      const forB = token(data, 'node-b');
      const a = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dirs.make(), joinToken: forB });
      await assert.rejects(a.start(), refused('PALISADE_ERR_JOIN_REFUSED', /^join refused: token is for node node-b, not node-a$/));
      const b = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', nodeAddress: '192.168.50.2', dataDir: dirs.make(), joinToken: forB });
      await b.start();
      assert.equal(b.connected, true);
    });

    it('after node revoke: the node\'s certificate is refused, its session closed, its workloads gone; it can join again with a new token', async () => {
      const a = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dirs.make(), joinToken: token(data, 'node-a') });
      const agentDir = dirs.make();
      const b = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', nodeAddress: '192.168.50.2', dataDir: agentDir, joinToken: token(data, 'node-b') });
      a.setWorkloads([workload('web', '10.0.1.11')]);
      b.setWorkloads([workload('db', '10.0.2.11')]);
      await Promise.all([a.start(), b.start()]);
      await snapshotWhere(a, (s) => s.workloads.length === 2);

      const listed = cliDeps();
      assert.equal(await run(['collector', 'node', 'list', '--data', data, '-o', 'json'], listed.deps), 0);
      const nodes = (JSON.parse(listed.out.join('')) as { nodes: Array<{ node: string; status: string }> }).nodes;
      assert.deepEqual(nodes.map((n) => [n.node, n.status]), [['node-a', 'joined'], ['node-b', 'joined']]);

      const revoked = cliDeps();
      assert.equal(await run(['collector', 'node', 'revoke', 'node-b', '--data', data], revoked.deps), 0);
      assert.match(revoked.out.join(''), /^node node-b revoked: 1 certificate refused from now on; to join it again: palisade collector token create --node node-b\n$/);

      // The running collector notices within a second: session closed, node and workloads gone for everyone.
      const s = await snapshotWhere(a, (x) => !x.nodes.some((n) => n.node === 'node-b'), 5_000);
      assert.deepEqual(s.workloads.map((w) => w.node), ['node-a']);
      await waitFor(() => !b.connected, 5_000, 'node-b disconnected');
      // Its certificate is refused at the upgrade from now on.
      const ws = rawNodeSocket(stack, col.url, col.ca.certPem, agentDir);
      const r = await refusal(ws);
      assert.equal(r.status, 401);
      assert.match(String(r.body.message), /^node node-b's certificate was revoked at /);
      assert.ok(trustRecords(col).some((x) => x.data.event === 'node-certificate' && x.data.node === 'node-b'));

      // A new token joins it again.
      await b.close();
      const again = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', nodeAddress: '192.168.50.2', dataDir: dirs.make(), joinToken: token(data, 'node-b') });
      await again.start();
      assert.equal(again.connected, true);
    });

    it('node revoke of a node that never joined fails in one line and changes nothing', async () => {
      const c = cliDeps();
      assert.equal(await run(['collector', 'node', 'revoke', 'node-x', '--data', data], c.deps), 1);
      assert.deepEqual(c.err, ['palisade: node node-x has not joined (palisade collector node list shows the nodes)\n']);
    });
  });

  describe('registering', () => {
    it('refuses workloads outside the node\'s scope and addresses outside its pod range (bug: a new node registered default/client and 8.8.8.8)', async () => {
      const dir = await joinedNodeDir(dirs, col, data, 'rogue-1', { nodeCidr: '10.0.9.0/24', scopes: ['default/web'] });
      const rogue = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'rogue-1', nodeAddress: '192.168.50.9', dataDir: dir });
      await rogue.start();
      const err = nextError(rogue);
      rogue.setWorkloads([workload('web', '10.0.9.5'), workload('client', '10.0.9.6'), workload('web-2', '8.8.8.8', 'web')]);
      const e = await err;
      assert.equal(e.code, 'PALISADE_ERR_REGISTRATION_REFUSED');
      const s = await snapshotWhere(rogue, (x) => x.workloads.length > 0);
      assert.deepEqual(s.workloads.map((w) => `${w.name}@${w.ip}`), ['web@10.0.9.5'], 'only the workload in scope and range');
      const line = logs.lines.find((l) => l.msg === 'workloads refused' && l.node === 'rogue-1');
      assert.deepEqual(line?.refused, [
        "default/client: service account default/client is outside node rogue-1's scope (default/web)",
        "default/web-2: ip 8.8.8.8 is outside node rogue-1's pod range 10.0.9.0/24",
      ]);
      const rec = trustRecords(col).find((r) => r.data.event === 'registration' && r.actor === 'node:rogue-1');
      assert.ok(rec, 'an audit record');
      assert.equal(rec.data.reason, "2 of 3 workloads refused: default/client: service account default/client is outside node rogue-1's scope (default/web) (and 1 more)");
    });

    it('refuses another node\'s address as a workload IP (bug: a node could steer traffic for any address into its tunnel)', async () => {
      const [dirA, dirB] = await Promise.all([joinedNodeDir(dirs, col, data, 'node-a'), joinedNodeDir(dirs, col, data, 'node-b')]);
      const a = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', nodeAddress: '192.168.50.1', dataDir: dirA });
      const b = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', nodeAddress: '192.168.50.2', dataDir: dirB });
      await Promise.all([a.start(), b.start()]);
      const err = nextError(b);
      b.setWorkloads([workload('evil', '192.168.50.1')]);
      assert.match((await err).message, /default\/evil: ip 192\.168\.50\.1 is already registered by node node-a, as its node address/);
      assert.deepEqual(col.snapshot().workloads, []);
    });
    it('refuses a node whose node address is another node\'s workload (peers would tunnel its traffic to that pod)', async () => {
      const [dirA, dirB] = await Promise.all([joinedNodeDir(dirs, col, data, 'node-a'), joinedNodeDir(dirs, col, data, 'node-b')]);
      const a = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', nodeAddress: '192.168.50.1', dataDir: dirA });
      a.setWorkloads([workload('web', '10.0.1.11')]);
      await a.start();
      await snapshotWhere(a, (s) => s.workloads.length === 1);
      const b = rawNodeSocket(stack, col.url, col.ca.certPem, dirB);
      await opened(b);
      const end = closed(b);
      b.send(encodeMessage({ type: 'hello', node: 'node-b', nodeAddress: '10.0.1.11', agentVersion: 'test' }));
      assert.equal((await end).code, 4403);
      assert.ok(logs.find('session refused', { node: 'node-b', reason: 'node address 10.0.1.11 is the address of a workload of node node-a' }));
      assert.deepEqual(col.snapshot().nodes.map((n) => [n.node, n.nodeAddress]), [['node-a', '192.168.50.1'], ['node-b', '192.168.50.1']], 'node-b as it joined, not at the pod\'s address');
    });
  });

  describe('workload certificates', () => {
    it('signs no certificate for a service account outside the node\'s scope, even one it tried to register (bug: rogue-1 got spiffe://…/sa/client)', async () => {
      const dir = await joinedNodeDir(dirs, col, data, 'rogue-1', { scopes: ['default/web'] });
      const rogue = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'rogue-1', nodeAddress: '192.168.50.9', dataDir: dir });
      rogue.setWorkloads([workload('web', '10.0.9.5'), workload('client', '10.0.9.6')]);
      await rogue.start();
      await assert.rejects(rogue.requestCertificate(CLIENT, createCsr(key, { commonName: 'client', uri: CLIENT })), refused('PALISADE_ERR_CSR_REFUSED', /not the identity of a workload registered on node rogue-1/));
      const { certPem } = await rogue.requestCertificate(WEB, createCsr(key, { commonName: 'web', uri: WEB }));
      assert.ok(certPem.startsWith('-----BEGIN CERTIFICATE-----'));
      assert.ok(trustRecords(col).some((r) => r.data.event === 'csr' && r.actor === 'node:rogue-1'));
    });

    it('with a pod authority: no certificate for a service account no pod on the node runs, and none once the pod has left', async () => {
      // A fake of the Kubernetes source: which pods run on which node, changed by the test.
      const pods = new Map<string, PodOnNode[]>([['node-a', [{ namespace: 'default', serviceAccount: 'web', ip: '10.0.1.11', name: 'web-1' }]]]);
      const ownData = dataDir();
      const col = await collector(stack, { dataDir: ownData, log: logs.logger, nodePods: { podsOn: (n) => pods.get(n) ?? [] } });
      const dir = await joinedNodeDir(dirs, col, ownData, 'node-a');
      const a = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dir });
      await a.start();
      const err = nextError(a);
      a.setWorkloads([workload('web', '10.0.1.11'), workload('client', '10.0.1.12')]);
      assert.match((await err).message, /default\/client: no pod of service account default\/client at 10\.0\.1\.12 runs on node node-a/);
      await snapshotWhere(a, (s) => s.workloads.length === 1);
      await assert.rejects(a.requestCertificate(CLIENT, createCsr(key, { commonName: 'client', uri: CLIENT })), refused('PALISADE_ERR_CSR_REFUSED', /./));
      await a.requestCertificate(WEB, createCsr(key, { commonName: 'web', uri: WEB }));
      pods.set('node-a', []); // the pod moved to another node
      await assert.rejects(a.requestCertificate(WEB, createCsr(key, { commonName: 'web', uri: WEB })), refused('PALISADE_ERR_CSR_REFUSED', /no pod of service account default\/web runs on node node-a/));
    });
  });

  describe('sessions', () => {
    it('refuses a session with a node-a certificate the node records do not know (bug: any node-a certificate took the session over)', async () => {
      const dir = await joinedNodeDir(dirs, col, data, 'node-a');
      const real = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dir });
      await real.start();
      // A certificate for node-a under another key, as a second join issued before this fix.
      const other = await generateKeyPair();
      const certPem = col.ca.issue(other.publicKeyPem, { uri: nodeSpiffeId('cluster.local', 'node-a'), commonName: 'node-a', usage: 'node', ttlSeconds: 3600 });
      const ws = openCollectorSocket({ endpoint: parseCollectorUrl(col.url), caPem: col.ca.certPem, cert: { certPem, keyPem: other.privateKeyPem } });
      const r = await refusal(ws);
      assert.equal(r.status, 401);
      assert.equal(r.body.message, 'this certificate is not one the collector issued to node node-a at its join or a renewal');
      assert.equal(real.connected, true);
      assert.ok(trustRecords(col).some((x) => x.data.event === 'node-certificate' && x.data.node === 'node-a'));
    });

    it('a newer session with the same node key takes over; after a renewal the older key cannot take the node back', async () => {
      const dir = await joinedNodeDir(dirs, col, data, 'node-a');
      const oldKeyPem = fs.readFileSync(nodeKeyPath(dir), 'utf8');
      const oldCertPem = fs.readFileSync(`${dir}/node.crt`, 'utf8');
      const first = rawNodeSocket(stack, col.url, col.ca.certPem, dir);
      await opened(first);
      const hello = encodeMessage({ type: 'hello', node: 'node-a', nodeAddress: '192.168.50.1', agentVersion: 'test' });
      first.send(hello);
      await waitFor(() => col.snapshot().nodes.some((n) => n.online), 5_000, 'node-a online');
      // Same key: the newer session supersedes the older one, which is closed (4409) after its grace.
      const second = rawNodeSocket(stack, col.url, col.ca.certPem, dir);
      await opened(second);
      const firstEnd = closed(first);
      second.send(hello);
      assert.equal((await firstEnd).code, 4409);
      // Renew to a new key over the current session.
      const renewedKey = await generateKeyPair();
      const uri = nodeSpiffeId('cluster.local', 'node-a');
      const answer = new Promise<{ cert: string }>((resolve) => second.on('message', (d) => {
        const m = JSON.parse(d.toString()) as { type: string; cert: string };
        if (m.type === 'cert') resolve(m);
      }));
      second.send(encodeMessage({ type: 'csr', id: 'r1', identity: uri, csr: createCsr(renewedKey, { commonName: 'node-a', uri }) }));
      const renewed = (await answer).cert;
      const third = openCollectorSocket({ endpoint: parseCollectorUrl(col.url), caPem: col.ca.certPem, cert: { certPem: renewed, keyPem: renewedKey.privateKeyPem } });
      stack.push(() => third.terminate());
      await opened(third);
      const secondEnd = closed(second);
      third.send(hello);
      assert.equal((await secondEnd).code, 4409, 'the renewed key takes over');
      // The old key is still a valid certificate, but older than the session it would replace.
      const fourth = openCollectorSocket({ endpoint: parseCollectorUrl(col.url), caPem: col.ca.certPem, cert: { certPem: oldCertPem, keyPem: oldKeyPem } });
      stack.push(() => fourth.terminate());
      await opened(fourth);
      const fourthEnd = closed(fourth);
      fourth.send(hello);
      assert.equal((await fourthEnd).code, 4403);
      assert.equal(third.readyState, third.OPEN, 'the current session stays');
      assert.ok(logs.find('session refused', { node: 'node-a', reason: 'the new session holds an older key of this node than the current one' }));
      assert.ok(trustRecords(col).some((x) => x.data.event === 'takeover'));
    });
  });
});
