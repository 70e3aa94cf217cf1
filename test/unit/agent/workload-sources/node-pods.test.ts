import { strict as assert } from 'node:assert';
import { desiredFor, NodePods } from '../../../../agent/workload-sources/kubernetes/node-pods';
import type { PodView } from '../../../../agent/workload-sources/kubernetes/pod-workload';
import type { SandboxRecord } from '../../../../agent/workload-sources/kubernetes/sandbox-store';
import { podFixture, POD_UID } from './pod-fixture';

const UID = POD_UID;
const POD: PodView = podFixture({ podIp: undefined, phase: 'Pending' });
const SANDBOX: SandboxRecord = { containerId: 'c1', uid: UID, namespace: 'shop', name: 'web-1', netns: '/var/run/netns/cni-1', ip: '10.22.0.5', hostInterface: 'veth1' };
const MESHED = { 'palisade.dev/mesh': 'enabled' };

describe('NodePods', function () {
  describe('desiredFor', function () {
    const cases: Array<[string, PodView | undefined, SandboxRecord | undefined, Record<string, string> | undefined, string]> = [
      ['a member with a sandbox', POD, SANDBOX, MESHED, 'enroll'],
      ['a member without a sandbox on this node', POD, undefined, MESHED, 'leave'],
      ['a sandbox whose pod is not known yet', undefined, SANDBOX, MESHED, 'wait'],
      ['a sandbox whose namespace is not known yet', POD, SANDBOX, undefined, 'wait'],
      ['a non-member with a sandbox', POD, SANDBOX, {}, 'leave'],
      ['a member whose sandbox has no IPv4 address', POD, { ...SANDBOX, ip: undefined }, MESHED, 'refuse'],
      ['a member the mesh cannot name', { ...POD, name: 'web.1' }, SANDBOX, MESHED, 'refuse'],
    ];
    for (const [what, pod, sandbox, ns, kind] of cases) {
      it(`${what}: ${kind}`, function () {
        assert.equal(desiredFor(pod, sandbox, ns, 'cluster.local').kind, kind);
      });
    }

    it('enrolls at the sandbox\'s netns and address, with its host interface', function () {
      const d = desiredFor(POD, SANDBOX, MESHED, 'cluster.local');
      assert.ok(d.kind === 'enroll');
      assert.equal(d.desired.workload.netns, SANDBOX.netns);
      assert.equal(d.desired.workload.ip, SANDBOX.ip);
      assert.equal(d.desired.hostInterface, 'veth1');
    });
  });

  it('keeps one sandbox per pod: a newer one replaces the older, whose container id is forgotten', function () {
    const s = new NodePods();
    s.setSandbox(SANDBOX);
    s.setSandbox({ ...SANDBOX, containerId: 'c2' });
    assert.equal(s.uidOfContainer('c1'), undefined);
    assert.equal(s.uidOfContainer('c2'), UID);
    assert.deepEqual(s.sandboxesIn('shop'), [UID]);
    assert.equal(s.deleteSandbox(UID)?.containerId, 'c2');
    assert.equal(s.uidOfContainer('c2'), undefined);
  });

  it('a pod of the same name with a new uid replaces the old one by name', function () {
    const s = new NodePods();
    assert.equal(s.setPod(POD), undefined);
    const other = '11111111-2222-4333-8444-555555555555';
    assert.equal(s.setPod({ ...POD, uid: other }), UID);
    assert.equal(s.podByName('shop', 'web-1')?.uid, other);
    s.deletePod(UID);
    assert.equal(s.podByName('shop', 'web-1')?.uid, other, 'deleting the old uid leaves the new one named');
  });
});
