/**
 * The Kubernetes API double's coordination.k8s.io/v1 Leases (test/harness/kube-api-double/leases.ts),
 * driven by the real @kubernetes/client-node: what a lease holder relies on — create, renew at the
 * resourceVersion read (409 when stale, 422 without one), validation, and the watch.
 */
import { strict as assert } from 'node:assert';
import { ApiException, CoordinationV1Api, KubeConfig, V1MicroTime, Watch, type V1Lease } from '@kubernetes/client-node';
import { KubeApiDouble } from '../../harness/kube-api-double';
import { waitFor } from '../../harness/wait';

async function refusal(p: Promise<unknown>): Promise<{ code: number; reason: string; message: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ApiException, `an ApiException, got ${String(err)}`);
    return JSON.parse(String(err.body)) as { code: number; reason: string; message: string };
  }
  assert.fail('expected the API to refuse');
}

const lease = (name: string, renew: Date, extra: Partial<V1Lease['spec']> = {}): V1Lease => ({
  metadata: { name },
  spec: { holderIdentity: name, leaseDurationSeconds: 15, renewTime: new V1MicroTime(renew.getTime()), ...extra },
});

describe('Kubernetes API double: Leases (coordination.k8s.io/v1), driven by @kubernetes/client-node', function () {
  this.timeout(30_000);
  let api: KubeApiDouble;
  let kc: KubeConfig;
  let leases: CoordinationV1Api;

  beforeEach(async () => {
    api = await KubeApiDouble.start({ token: 't' });
    kc = new KubeConfig();
    kc.loadFromOptions(api.kubeConfig());
    leases = kc.makeApiClient(CoordinationV1Api);
  });
  afterEach(async () => api?.close());

  it('creates, renews at the resourceVersion read, and a stale or missing resourceVersion is refused', async () => {
    const created = await leases.createNamespacedLease({ namespace: 'default', body: lease('r1', new Date()) });
    assert.match(String(created.spec!.renewTime), /\.\d{6}Z$/, 'a MicroTime, six fractional digits');
    const renewed = await leases.replaceNamespacedLease({ namespace: 'default', name: 'r1', body: { ...created, spec: { ...created.spec, renewTime: new V1MicroTime(Date.now() + 1000) } } });
    assert.ok(Number(renewed.metadata!.resourceVersion) > Number(created.metadata!.resourceVersion));
    const stale = await refusal(leases.replaceNamespacedLease({ namespace: 'default', name: 'r1', body: created }));
    assert.deepEqual([stale.code, stale.reason], [409, 'Conflict']);
    const { resourceVersion: _rv, ...meta } = renewed.metadata!;
    const unconditional = await refusal(leases.replaceNamespacedLease({ namespace: 'default', name: 'r1', body: { ...renewed, metadata: meta } }));
    assert.deepEqual([unconditional.code, unconditional.reason], [422, 'Invalid']);
    assert.match(unconditional.message, /resourceVersion.*must be specified for an update/);
    const exists = await refusal(leases.createNamespacedLease({ namespace: 'default', body: lease('r1', new Date()) }));
    assert.equal(exists.code, 409);
    const noNs = await refusal(leases.createNamespacedLease({ namespace: 'ghost', body: lease('r2', new Date()) }));
    assert.equal(noNs.code, 404);
  });

  it('refuses a renewTime that is not a MicroTime and a duration that is not positive', async () => {
    const millis = await refusal(leases.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'r1' }, spec: { renewTime: new Date() as V1MicroTime } } }));
    assert.equal(millis.code, 400, 'a Date with milliseconds only cannot be decoded as a MicroTime');
    const zero = await refusal(leases.createNamespacedLease({ namespace: 'default', body: lease('r1', new Date(), { leaseDurationSeconds: 0 }) }));
    assert.deepEqual([zero.code, zero.reason], [422, 'Invalid']);
    assert.equal(api.list('coordination.k8s.io/v1/leases', 'default').length, 0, 'nothing created');
  });

  it('a watch sees each renewal and the deletion', async () => {
    const seen: string[] = [];
    const watch = new Watch(kc);
    const req = await watch.watch('/apis/coordination.k8s.io/v1/namespaces/default/leases', {}, (phase, obj: V1Lease) => seen.push(`${phase} ${obj.metadata?.name} ${String(obj.spec?.renewTime)}`), () => undefined);
    try {
      const first = new Date('2026-12-07T18:00:00.000Z');
      const created = await leases.createNamespacedLease({ namespace: 'default', body: lease('r1', first) });
      await leases.replaceNamespacedLease({ namespace: 'default', name: 'r1', body: { ...created, spec: { ...created.spec, renewTime: new V1MicroTime(first.getTime() + 5000) } } });
      await leases.deleteNamespacedLease({ namespace: 'default', name: 'r1' });
      await waitFor(() => seen.length === 3, 5_000, { what: 'three events' });
      assert.deepEqual(seen, ['ADDED r1 2026-12-07T18:00:00.000000Z', 'MODIFIED r1 2026-12-07T18:00:05.000000Z', 'DELETED r1 2026-12-07T18:00:05.000000Z']);
    } finally {
      req.abort();
    }
  });
});
