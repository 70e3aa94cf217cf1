import { strict as assert } from 'node:assert';
import { meshMembership, podView, workloadFromPod, type PodView } from '../../../../agent/workload-sources/kubernetes/pod-workload';
import { podFixture, POD_UID } from './pod-fixture';

const UID = POD_UID;
const pod = podFixture;

describe('pod-workload', function () {
  describe('meshMembership', function () {
    const cases: Array<[string, Partial<PodView>, Record<string, string>, boolean]> = [
      ['a pod of a namespace labelled palisade.dev/mesh=enabled', {}, { 'palisade.dev/mesh': 'enabled' }, true],
      ['a pod of a namespace without the label', {}, {}, false],
      ['a pod of a namespace labelled with another value', {}, { 'palisade.dev/mesh': 'true' }, false],
      ['a pod annotated enabled in a namespace without the label', { annotations: { 'palisade.dev/mesh': 'enabled' } }, {}, true],
      ['a pod annotated disabled in a meshed namespace', { annotations: { 'palisade.dev/mesh': 'disabled' } }, { 'palisade.dev/mesh': 'enabled' }, false],
      ['a pod with an unknown annotation value (its namespace decides)', { annotations: { 'palisade.dev/mesh': 'yes' } }, { 'palisade.dev/mesh': 'enabled' }, true],
      ['a host-network pod, even annotated enabled', { hostNetwork: true, annotations: { 'palisade.dev/mesh': 'enabled' } }, { 'palisade.dev/mesh': 'enabled' }, false],
    ];
    for (const [what, over, nsLabels, member] of cases) {
      it(`${what}: ${member ? 'in' : 'not in'} the mesh`, function () {
        const m = meshMembership(pod(over), nsLabels);
        assert.equal(m.member, member);
        assert.ok(m.why.length > 0);
      });
    }
  });

  describe('workloadFromPod', function () {
    const where = { netns: '/var/run/netns/cni-1', ip: '10.22.0.5' };

    it('names the workload after the pod, its identity after the service account, and labels it palisade.dev/workload', function () {
      const r = workloadFromPod(pod({ labels: { app: 'web', 'palisade.dev/workload': 'spoofed' } }), where, 'cluster.local');
      assert.ok(r.ok);
      assert.deepEqual(r.workload, {
        name: 'web-1',
        namespace: 'shop',
        serviceAccount: 'web',
        netns: where.netns,
        ip: where.ip,
        strict: false,
        labels: { app: 'web', 'palisade.dev/workload': 'web-1' },
        identity: 'spiffe://cluster.local/ns/shop/sa/web',
      });
    });

    it('is strict with the annotation palisade.dev/strict: "true"', function () {
      const r = workloadFromPod(pod({ annotations: { 'palisade.dev/strict': 'true' } }), where, 'example.org');
      assert.ok(r.ok && r.workload.strict && r.workload.identity === 'spiffe://example.org/ns/shop/sa/web');
    });

    const refused: Array<[string, Partial<PodView>, RegExp]> = [
      ['a pod name with a dot', { name: 'web.v2' }, /pod shop\/web\.v2: the mesh names workloads by DNS-1123 label .*"web\.v2" is not one/],
      ['a service account with a dot', { serviceAccount: 'web.sa' }, /service account "web\.sa" is not a DNS-1123 label/],
      ['64 labels of its own', { labels: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`l${i}`, 'x'])) }, /64 labels is more than the mesh carries \(at most 63/],
    ];
    for (const [what, over, problem] of refused) {
      it(`refuses ${what} with one line`, function () {
        const r = workloadFromPod(pod(over), where, 'cluster.local');
        assert.ok(!r.ok);
        assert.match(r.problem, problem);
        assert.ok(!r.problem.includes('\n'));
      });
    }

    it('takes 63 labels of its own', function () {
      const r = workloadFromPod(pod({ labels: Object.fromEntries(Array.from({ length: 63 }, (_, i) => [`l${i}`, 'x'])) }), where, 'cluster.local');
      assert.ok(r.ok && Object.keys(r.workload.labels).length === 64);
    });
  });

  describe('podView', function () {
    it('reads what it needs of a Pod object, defaults the service account, lowercases the uid', function () {
      const v = podView({ metadata: { uid: UID.toUpperCase(), namespace: 'shop', name: 'web-1' }, spec: { nodeName: 'node-1' }, status: {} });
      assert.deepEqual(v, { ...pod({ labels: {}, podIp: undefined, phase: undefined }), serviceAccount: 'default' });
    });

    it('is undefined for an object without uid, name or namespace', function () {
      assert.equal(podView({ metadata: { name: 'x', namespace: 'y' } }), undefined);
    });
  });
});
