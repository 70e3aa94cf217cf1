/**
 * Node records shared by collector replicas through the Kubernetes API (double), through the real
 * client-node: a join at replica A is accepted at replica B, a renewal at B is accepted at A, a
 * revocation at A is refused at B, and two replicas writing the same node at once (a 409) both
 * end with every certificate either issued.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NodeRecordsShare } from '../../../collector/kubernetes/node-records-share';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import { ANY_SCOPE } from '../../../collector/nodes/node-binding';
import { NodeRecords, presentedKey } from '../../../collector/nodes/node-records';
import { KubeClient } from '../../../common/kube/client';
import { silentLogger } from '../../../common/log';
import { generateKeyPair, nodeSpiffeId } from '../../../common/pki';
import { tempDir } from '../../harness/agent';
import { KubeApiDouble } from '../../harness/kube-api-double';
import { installCrds } from '../../harness/kube-crds';
import { waitFor } from '../../harness/wait';

describe('collector replicas share node records through the API (PalisadeNode objects)', function () {
  this.timeout(60_000);
  let api: KubeApiDouble;
  let dir: string;
  let ca: CertificateAuthority;
  let replicas: Array<{ records: NodeRecords; share: NodeRecordsShare }>;

  const issue = async (node: string): Promise<string> => {
    const key = await generateKeyPair();
    return ca.issue(key.publicKeyPem, { uri: nodeSpiffeId('cluster.local', node), commonName: node, usage: 'node', ttlSeconds: 3600 });
  };
  const join = (records: NodeRecords, node: string, cert: string): void => {
    const outcome = records.join(node, { consumeToken: () => ({ ok: true, id: 'tok-1', binding: { node, scopes: [ANY_SCOPE] } }), issue: () => cert });
    assert.ok(outcome.ok, 'joined');
  };
  const accepted = (records: NodeRecords, node: string, cert: string): boolean => records.certRefusal(node, presentedKey(cert)) === undefined;

  beforeEach(async function () {
    api = await KubeApiDouble.start({ token: 'collector' });
    installCrds(api);
    dir = tempDir('node-share');
    ca = CertificateAuthority.loadOrCreate(path.join(dir, 'ca'), 'cluster.local');
    api.writeKubeconfig(path.join(dir, 'kubeconfig'));
    replicas = [];
    for (const name of ['a', 'b']) {
      const client = await KubeClient.connect({ kubeconfig: path.join(dir, 'kubeconfig') });
      const records = new NodeRecords(path.join(dir, name));
      const share = new NodeRecordsShare({ client, records, log: silentLogger() });
      share.start();
      await share.synced();
      replicas.push({ records, share });
    }
  });

  afterEach(async function () {
    for (const r of replicas) await r.share.stop();
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a join at A is accepted at B; a renewal at B at A; a revocation at A is refused at B', async function () {
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    const first = await issue('node-1');
    assert.equal(accepted(b.records, 'node-1', first), false, 'B does not know the node yet');
    join(a.records, 'node-1', first);
    await waitFor(() => accepted(b.records, 'node-1', first), 5000, { what: 'B accepts the node A let join' });
    const object = api.get('palisade.dev/v1/palisadenodes', '', 'node-1') as unknown as { spec: { record: { tokenId: string } } };
    assert.equal(object.spec.record.tokenId, 'tok-1', 'the token id, never its secret');
    assert.ok(!JSON.stringify(object).includes('BEGIN'), 'no certificate or key in the object');

    const renewed = await issue('node-1');
    b.records.renewed('node-1', renewed);
    await waitFor(() => accepted(a.records, 'node-1', renewed), 5000, { what: 'A accepts the certificate B renewed' });
    assert.deepEqual(a.records.record('node-1')!.keys.map((k) => k.serial), b.records.record('node-1')!.keys.map((k) => k.serial), 'same keys, same order');

    assert.equal(a.records.revoke('node-1'), 2);
    await waitFor(() => !accepted(b.records, 'node-1', renewed) && !accepted(b.records, 'node-1', first), 5000, { what: 'B refuses the revoked node' });
    assert.equal(b.records.record('node-1'), undefined, 'its record gone at B (it may join again)');
    assert.match(b.records.certRefusal('node-1', presentedKey(renewed))!, /revoked/);
  });

  it('two replicas writing one node at once: the 409 loser merges and writes again; both hold both certificates', async function () {
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    const first = await issue('node-2');
    join(a.records, 'node-2', first);
    await waitFor(() => accepted(b.records, 'node-2', first), 5000, { what: 'B knows the node' });
    const [ra, rb] = [await issue('node-2'), await issue('node-2')];
    a.records.renewed('node-2', ra);
    b.records.renewed('node-2', rb);
    await waitFor(() => [a, b].every((r) => accepted(r.records, 'node-2', ra) && accepted(r.records, 'node-2', rb)), 10_000, { what: 'both renewals everywhere' });
    assert.ok(a.share.conflicts + b.share.conflicts > 0, 'one write lost to the other (409)');
    const spec = (api.get('palisade.dev/v1/palisadenodes', '', 'node-2') as unknown as { spec: { record: { keys: unknown[] } } }).spec;
    await waitFor(() => (api.get('palisade.dev/v1/palisadenodes', '', 'node-2') as unknown as { spec: { record: { keys: unknown[] } } }).spec.record.keys.length === 3, 5000, {
      what: `the object holds all three keys (has ${spec.record.keys.length})`,
    });
  });
});
