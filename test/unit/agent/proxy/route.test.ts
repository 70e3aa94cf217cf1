import { strict as assert } from 'node:assert';
import { route, type RouteTables } from '../../../../agent/proxy/route';
import type { MeshWorkload } from '../../../../agent/mesh/mesh-registry';
import type { Workload } from '../../../../agent/workloads';

const local: Workload = {
  name: 'web-1',
  namespace: 'default',
  serviceAccount: 'web',
  netns: '/var/run/netns/web-1',
  ip: '10.0.1.11',
  strict: true,
  labels: {},
  identity: 'spiffe://cluster.local/ns/default/sa/web',
};
const mesh = (ip: string, node: string): MeshWorkload => ({
  node,
  nodeAddress: node === 'node-1' ? '172.31.0.1' : '172.31.0.2',
  name: `w-${ip}`,
  namespace: 'default',
  serviceAccount: 'web',
  identity: 'spiffe://cluster.local/ns/default/sa/web',
  ip,
  labels: {},
});

function tables(withMesh: boolean): RouteTables {
  const meshByIp = new Map([
    ['10.0.2.10', mesh('10.0.2.10', 'node-2')],
    ['10.0.1.11', mesh('10.0.1.11', 'node-1')],
    ['10.0.1.99', mesh('10.0.1.99', 'node-1')],
  ]);
  return {
    node: 'node-1',
    local: { byIp: (ip) => (ip === local.ip ? local : undefined) },
    mesh: withMesh ? { byIp: (ip) => meshByIp.get(ip) } : undefined,
  };
}

describe('route', function () {
  const cases: Array<[string, string, boolean, string]> = [
    ['a pod on this node', '10.0.1.11', true, 'local'],
    ['a pod on this node, no collector', '10.0.1.11', false, 'local'],
    ['a pod on another node', '10.0.2.10', true, 'hbone'],
    ['a pod on another node, no collector', '10.0.2.10', false, 'passthrough'],
    ['an address outside the mesh', '192.0.2.7', true, 'passthrough'],
    ['a registry entry claiming this node that is not enrolled here', '10.0.1.99', true, 'passthrough'],
  ];
  for (const [what, ip, withMesh, kind] of cases) {
    it(`routes ${what} (${ip}) to ${kind}`, function () {
      assert.equal(route(ip, tables(withMesh)).kind, kind);
    });
  }
});
