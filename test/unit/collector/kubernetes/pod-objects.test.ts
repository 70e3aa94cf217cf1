import { strict as assert } from 'node:assert';
import { podPlacement, type PodObject } from '../../../../collector/kubernetes/pod-objects';

const meta = { uid: 'u1', namespace: 'shop', name: 'web-1' };

describe('podPlacement', () => {
  const cases: Array<[string, PodObject, ReturnType<typeof podPlacement>]> = [
    [
      'a running pod: its node, namespace, service account and IPv4 address',
      { metadata: meta, spec: { nodeName: 'node-a', serviceAccountName: 'web' }, status: { phase: 'Running', podIP: '10.0.1.11', podIPs: [{ ip: '10.0.1.11' }, { ip: 'fd00::11' }] } },
      { uid: 'u1', node: 'node-a', pod: { namespace: 'shop', serviceAccount: 'web', name: 'web-1', ip: '10.0.1.11' } },
    ],
    [
      'no address yet (the kubelet sets it after CNI ADD): claimed by service account alone',
      { metadata: meta, spec: { nodeName: 'node-a', serviceAccountName: 'web' }, status: { phase: 'Pending' } },
      { uid: 'u1', node: 'node-a', pod: { namespace: 'shop', serviceAccount: 'web', name: 'web-1' } },
    ],
    [
      'dual stack with the IPv6 address first: the IPv4 one',
      { metadata: meta, spec: { nodeName: 'node-a', serviceAccountName: 'web' }, status: { podIP: 'fd00::11', podIPs: [{ ip: 'fd00::11' }, { ip: '10.0.1.11' }] } },
      { uid: 'u1', node: 'node-a', pod: { namespace: 'shop', serviceAccount: 'web', name: 'web-1', ip: '10.0.1.11' } },
    ],
    [
      'no service account named: default (as the API server fills it in)',
      { metadata: meta, spec: { nodeName: 'node-a' } },
      { uid: 'u1', node: 'node-a', pod: { namespace: 'shop', serviceAccount: 'default', name: 'web-1' } },
    ],
    [
      'terminating (deletionTimestamp): still runs, still claimed until the object is gone',
      { metadata: { ...meta, deletionTimestamp: '2026-12-07T08:00:00Z' } as PodObject['metadata'], spec: { nodeName: 'node-a', serviceAccountName: 'web' }, status: { phase: 'Running' } },
      { uid: 'u1', node: 'node-a', pod: { namespace: 'shop', serviceAccount: 'web', name: 'web-1' } },
    ],
    ['not scheduled yet: no node may claim it', { metadata: meta, spec: { serviceAccountName: 'web' } }, undefined],
    ['on the host network: never in the mesh', { metadata: meta, spec: { nodeName: 'node-a', serviceAccountName: 'kube-proxy', hostNetwork: true } }, undefined],
    ['ended (Succeeded)', { metadata: meta, spec: { nodeName: 'node-a', serviceAccountName: 'web' }, status: { phase: 'Succeeded', podIP: '10.0.1.11' } }, undefined],
    ['ended (Failed)', { metadata: meta, spec: { nodeName: 'node-a', serviceAccountName: 'web' }, status: { phase: 'Failed' } }, undefined],
    ['without a uid', { metadata: { namespace: 'shop', name: 'web-1' }, spec: { nodeName: 'node-a' } }, undefined],
  ];
  for (const [what, obj, want] of cases) {
    it(what, () => assert.deepEqual(podPlacement(obj), want));
  }
});
