/**
 * The mesh CA from a Kubernetes Secret (collector/kubernetes/ca-secret.ts) against the API double,
 * through the real client-node: two collectors starting at once on an empty cluster agree on one
 * CA; a Secret that exists is used; a Secret that cannot be a CA is refused in one line; a
 * collector started with `caSecret` signs with the Secret's CA and keeps no CA key on disk.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startCollector } from '../../../collector/collector';
import { caFromSecret } from '../../../collector/kubernetes/ca-secret';
import { newCaPem } from '../../../collector/mesh-ca';
import { PalisadeError } from '../../../common/errors';
import { KubeClient } from '../../../common/kube/client';
import { silentLogger } from '../../../common/log';
import { tempDir } from '../../harness/agent';
import { KubeApiDouble } from '../../harness/kube-api-double';

const REF = { namespace: 'palisade-system', name: 'palisade-ca' };

describe('collector: the mesh CA from a Kubernetes Secret (API double)', function () {
  this.timeout(60_000);
  let api: KubeApiDouble;
  let dir: string;
  let kubeconfig: string;

  const client = (): Promise<KubeClient> => KubeClient.connect({ kubeconfig });
  const secret = (): { data?: Record<string, string>; immutable?: boolean } | undefined =>
    api.get('v1/secrets', REF.namespace, REF.name) as { data?: Record<string, string>; immutable?: boolean } | undefined;
  const put = (data: Record<string, string>): void => {
    api.create('v1/secrets', { metadata: { ...REF }, type: 'Opaque', data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) });
  };
  const refusal = async (trustDomain: string): Promise<PalisadeError> => {
    const err = await caFromSecret({ client: await client(), ref: REF, trustDomain, log: silentLogger() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof PalisadeError, `refused, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), 'one line');
    return err;
  };

  beforeEach(async function () {
    api = await KubeApiDouble.start({ token: 'collector' });
    api.create('v1/namespaces', { metadata: { name: REF.namespace } });
    dir = tempDir('k8s-ca');
    kubeconfig = path.join(dir, 'kubeconfig');
    api.writeKubeconfig(kubeconfig);
  });

  afterEach(async function () {
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('two collectors starting at once on an empty cluster create one CA and both sign with it', async function () {
    const [a, b] = await Promise.all([client(), client()]);
    const first = await caFromSecret({ client: a, ref: REF, trustDomain: 'cluster.local', log: silentLogger() });
    // The second looked before the first created it (its read answered 404), so it creates too: 409.
    api.addFault({ method: 'GET', path: /\/secrets\/palisade-ca$/, status: 404, reason: 'NotFound', times: 1 });
    const second = await caFromSecret({ client: b, ref: REF, trustDomain: 'cluster.local', log: silentLogger() });
    assert.equal(second.certPem, first.certPem, 'one CA');
    const creates = api.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/secrets'));
    assert.equal(creates.length, 2, 'both created; the second was answered 409 and read the winner\'s');
    const stored = secret();
    assert.equal(Buffer.from(stored!.data!['ca.crt']!, 'base64').toString(), first.certPem, 'the Secret holds it');
    assert.ok(Buffer.from(stored!.data!['ca.key']!, 'base64').toString().includes('PRIVATE KEY'));
    assert.equal(stored!.immutable, true);
    const together = await Promise.all([client(), client()].map(async (c) => caFromSecret({ client: await c, ref: REF, trustDomain: 'cluster.local', log: silentLogger() })));
    assert.deepEqual(together.map((ca) => ca.certPem), [first.certPem, first.certPem], 'later starts, at once, read the same');
  });

  it('uses the CA a Secret already holds', async function () {
    const pem = newCaPem('cluster.local');
    put({ 'ca.crt': pem.certPem, 'ca.key': pem.keyPem });
    const ca = await caFromSecret({ client: await client(), ref: REF, trustDomain: 'cluster.local', log: silentLogger() });
    assert.equal(ca.certPem, pem.certPem);
  });

  it('refuses, in one line naming the Secret, one without ca.key, a mismatched pair, another trust domain', async function () {
    const pem = newCaPem('cluster.local');
    put({ 'ca.crt': pem.certPem });
    const missing = await refusal('cluster.local');
    assert.equal(missing.code, 'PALISADE_ERR_CONFIG_INVALID');
    assert.match(missing.message, /secret palisade-system\/palisade-ca has no ca\.key/);

    api.delete('v1/secrets', REF.namespace, REF.name);
    put({ 'ca.crt': pem.certPem, 'ca.key': newCaPem('cluster.local').keyPem });
    assert.match((await refusal('cluster.local')).message, /are not a matching key and certificate/);

    api.delete('v1/secrets', REF.namespace, REF.name);
    put({ 'ca.crt': pem.certPem, 'ca.key': pem.keyPem });
    assert.match((await refusal('example.org')).message, /the CA in secret palisade-system\/palisade-ca was created for trust domain cluster\.local, not example\.org/);
    assert.equal(Buffer.from(secret()!.data!['ca.crt']!, 'base64').toString(), pem.certPem, 'a refused Secret is left as it was');
  });

  it('a collector with caSecret signs with the Secret\'s CA and keeps no CA key in its data directory', async function () {
    const pem = newCaPem('cluster.local');
    put({ 'ca.crt': pem.certPem, 'ca.key': pem.keyPem });
    const dataDir = path.join(dir, 'data');
    fs.mkdirSync(dataDir, { mode: 0o700 });
    const running = await startCollector({ dataDir, log: silentLogger(), listen: '127.0.0.1:0', kubernetes: { kubeconfig, caSecret: REF } });
    try {
      assert.equal(running.ca.certPem, pem.certPem);
      assert.ok(!fs.existsSync(path.join(dataDir, 'ca.key')), 'no CA key on the volume');
    } finally {
      await running.stop();
    }
  });
});
