import { strict as assert } from 'node:assert';
import type { NodeBinding } from '../../../../collector/nodes/node-binding';
import type { PodOnNode } from '../../../../collector/nodes/node-pods';
import { certificateRefusal, registrationRefusal } from '../../../../collector/nodes/workload-admission';
import type { WorkloadRegistration } from '../../../../common/mesh-protocol';

const bound: NodeBinding = { node: 'node-1', nodeCidr: '10.0.1.0/24', scopes: ['default/*', 'prod/api'] };
const open: NodeBinding = { node: 'node-1', scopes: ['*/*'] };
const w = (namespace: string, serviceAccount: string, ip: string): WorkloadRegistration => ({ name: 'x', namespace, serviceAccount, ip, labels: {} });
const pods: PodOnNode[] = [
  { namespace: 'default', serviceAccount: 'web', ip: '10.0.1.11' },
  { namespace: 'prod', serviceAccount: 'api' },
];

describe('workload admission', () => {
  describe('registrationRefusal', () => {
    const table: Array<[string, NodeBinding, WorkloadRegistration, readonly PodOnNode[] | undefined, string | undefined]> = [
      ['in scope and range', bound, w('default', 'client', '10.0.1.5'), undefined, undefined],
      ['a namespace outside the scope', bound, w('kube-system', 'coredns', '10.0.1.5'), undefined, "service account kube-system/coredns is outside node node-1's scope (default/*, prod/api)"],
      ['a service account outside the scope', bound, w('prod', 'db', '10.0.1.5'), undefined, "service account prod/db is outside node node-1's scope (default/*, prod/api)"],
      ['an address outside the range', bound, w('default', 'web', '8.8.8.8'), undefined, "ip 8.8.8.8 is outside node node-1's pod range 10.0.1.0/24"],
      ['no range declared: any address', open, w('default', 'web', '8.8.8.8'), undefined, undefined],
      ['the authority knows the pod and its IP', bound, w('default', 'web', '10.0.1.11'), pods, undefined],
      ['the authority knows the pod at another IP', bound, w('default', 'web', '10.0.1.12'), pods, 'no pod of service account default/web at 10.0.1.12 runs on node node-1'],
      ['the authority knows the pod without an IP', bound, w('prod', 'api', '10.0.1.40'), pods, undefined],
      ['no such pod on this node', bound, w('default', 'client', '10.0.1.5'), pods, 'no pod of service account default/client at 10.0.1.5 runs on node node-1'],
      ['an authority that has not synced (no pods)', open, w('default', 'web', '10.0.1.11'), [], 'no pod of service account default/web at 10.0.1.11 runs on node node-1'],
    ];
    for (const [what, binding, workload, p, want] of table) it(what, () => assert.equal(registrationRefusal(binding, workload, p), want));
  });

  describe('certificateRefusal', () => {
    const table: Array<[string, NodeBinding, string, string, readonly PodOnNode[] | undefined, string | undefined]> = [
      ['in scope, no authority', bound, 'default', 'client', undefined, undefined],
      ['outside the scope', bound, 'default2', 'client', undefined, "service account default2/client is outside node node-1's scope (default/*, prod/api)"],
      ['the authority runs such a pod here', open, 'default', 'web', pods, undefined],
      ['the authority runs no such pod here', open, 'default', 'client', pods, 'no pod of service account default/client runs on node node-1'],
    ];
    for (const [what, binding, ns, sa, p, want] of table) it(what, () => assert.equal(certificateRefusal(binding, ns, sa, p), want));
  });
});
