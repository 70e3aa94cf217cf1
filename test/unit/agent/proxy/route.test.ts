import { strict as assert } from 'node:assert';
import { MeshRegistry, type MeshWorkload, type ServiceTarget } from '../../../../agent/mesh/mesh-registry';
import { route, type RouteTables } from '../../../../agent/proxy/route';
import { L4Balancer } from '../../../../agent/traffic/l4-balancer';
import { Ejections } from '../../../../agent/traffic/ejections';
import type { Workload } from '../../../../agent/workloads';
import type { RegistryService } from '../../../../common/mesh-protocol';

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

const WEB: RegistryService = {
  namespace: 'default',
  name: 'web',
  vips: ['10.96.0.10'],
  ports: [
    { name: 'http', port: 80 },
    { name: 'admin', port: 9000 },
  ],
  endpoints: [
    { ip: '10.0.1.11', ready: true, targetPorts: [8080, 9090] },
    { ip: '10.0.2.10', ready: true, targetPorts: [8081, 9091] },
    { ip: '10.0.2.99', ready: false, targetPorts: [8080, 9090] },
    { ip: '192.0.2.50', ready: true, targetPorts: [80, 90] },
  ],
};
const EMPTY: RegistryService = { namespace: 'default', name: 'down', vips: ['10.96.0.11'], ports: [{ name: '', port: 80 }], endpoints: [{ ip: '10.0.2.10', ready: false, targetPorts: [8080] }] };

function tables(withMesh: boolean): RouteTables {
  const registry = new MeshRegistry();
  registry.replace({
    version: 1,
    epoch: 'e1',
    workloads: [mesh('10.0.2.10', 'node-2'), mesh('10.0.1.11', 'node-1'), mesh('10.0.1.99', 'node-1')],
    nodes: [],
    services: [WEB, EMPTY],
  });
  return {
    node: 'node-1',
    local: { byIp: (ip) => (ip === local.ip ? local : undefined) },
    mesh: withMesh ? registry : undefined,
    services: withMesh ? registry : undefined,
  };
}

describe('route', function () {
  const cases: Array<[string, string, number, boolean, string]> = [
    ['a pod on this node', '10.0.1.11', 7000, true, 'local'],
    ['a pod on this node, no collector', '10.0.1.11', 7000, false, 'local'],
    ['a pod on another node', '10.0.2.10', 7000, true, 'hbone'],
    ['a pod on another node, no collector', '10.0.2.10', 7000, false, 'passthrough'],
    ['an address outside the mesh', '192.0.2.7', 7000, true, 'passthrough'],
    ['a registry entry claiming this node that is not enrolled here', '10.0.1.99', 7000, true, 'passthrough'],
    ['a service with no ready endpoint', '10.96.0.11', 80, true, 'no-endpoint'],
    ['a service\'s virtual IP on a port it does not serve', '10.96.0.10', 8080, true, 'passthrough'],
    ['a service\'s virtual IP without a collector', '10.96.0.10', 80, false, 'passthrough'],
  ];
  for (const [what, ip, port, withMesh, kind] of cases) {
    it(`routes ${what} (${ip}:${port}) to ${kind}`, function () {
      assert.equal(route({ ip, port }, tables(withMesh)).kind, kind);
    });
  }

  it('carries a service\'s virtual IP to each ready endpoint in turn, at the target port of the port dialled; never to an unready one', function () {
    const b = new L4Balancer(new Ejections());
    const t = { ...tables(true), pick: (s: ServiceTarget) => b.choose('default/web:9000', s.endpoints, undefined, '10.0.1.99')! };
    const seen = Array.from({ length: 6 }, () => route({ ip: '10.96.0.10', port: 9000 }, t));
    assert.deepEqual(
      seen.map((r) => `${r.kind} ${r.dst.ip}:${r.dst.port}`),
      ['local 10.0.1.11:9090', 'hbone 10.0.2.10:9091', 'passthrough 192.0.2.50:90', 'local 10.0.1.11:9090', 'hbone 10.0.2.10:9091', 'passthrough 192.0.2.50:90'],
    );
    assert.ok(seen.every((r) => r.service?.name === 'web'));
  });
});
