import { strict as assert } from 'node:assert';
import { resolveServices } from '../../../collector/services';
import type { RegistryService, RegistryWorkload, ServiceRegistration } from '../../../common/mesh-protocol';

const w = (name: string, ip: string, node: string, labels: Record<string, string>, namespace = 'default'): RegistryWorkload => ({
  node,
  nodeAddress: '172.31.0.1',
  name,
  namespace,
  serviceAccount: name,
  identity: `spiffe://cluster.local/ns/${namespace}/sa/${name}`,
  ip,
  labels,
});
const WORKLOADS = [w('web-1', '10.0.1.11', 'node-1', { app: 'web' }), w('web-2', '10.0.2.10', 'node-2', { app: 'web', tier: 'x' }), w('db', '10.0.2.11', 'node-2', { app: 'db' }), w('web-9', '10.0.3.9', 'node-3', { app: 'web' }, 'other')];
const WEB: ServiceRegistration = { namespace: 'default', name: 'web', vips: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }], selector: { app: 'web' } };
const KUBE: RegistryService = { namespace: 'default', name: 'api', vips: ['10.96.0.1'], ports: [{ name: 'https', port: 443 }], endpoints: [{ ip: '172.31.0.1', ready: true, targetPorts: [6443] }] };
const online = (node: string): boolean => node !== 'node-2';

describe('resolveServices', function () {
  it('gives a declared service the workloads of its namespace its selector picks, ready while their node is online', function () {
    const r = resolveServices(new Map([['node-1', [WEB]]]), [], WORKLOADS, online);
    assert.deepEqual(r.services, [
      {
        namespace: 'default',
        name: 'web',
        vips: ['10.96.0.10'],
        ports: [{ name: 'http', port: 80 }],
        endpoints: [
          { ip: '10.0.1.11', ready: true, targetPorts: [8080] },
          { ip: '10.0.2.10', ready: false, targetPorts: [8080] },
        ],
      },
    ]);
    assert.equal(r.refused.size, 0);
  });

  it('takes Kubernetes services as they are, before any declaration', function () {
    const r = resolveServices(new Map([['node-1', [{ ...WEB, name: 'api' }]]]), [KUBE], WORKLOADS, online);
    assert.deepEqual(r.services, [KUBE]);
    assert.deepEqual(r.refused.get('node-1'), ['service default/api: Kubernetes has a Service of that name']);
  });

  it('accepts the same declaration from several nodes once; a different one is refused for the later node', function () {
    const other = { ...WEB, vips: ['10.96.0.99'] };
    const same = resolveServices(new Map([['node-1', [WEB]], ['node-2', [WEB]]]), [], WORKLOADS, online);
    assert.equal(same.services.length, 1);
    assert.equal(same.refused.size, 0);
    const differ = resolveServices(new Map([['node-2', [other]], ['node-1', [WEB]]]), [], WORKLOADS, online);
    assert.deepEqual(differ.services[0]!.vips, ['10.96.0.10'], 'node-1 (first by name) wins');
    assert.deepEqual(differ.refused.get('node-2'), ['service default/web: declared differently by node node-1']);
  });

  it('refuses a declaration whose virtual IP and port another service has', function () {
    const clash = { ...WEB, name: 'web2', vips: ['10.96.0.1'], ports: [{ name: 'https', port: 443, targetPort: 8443 }] };
    const r = resolveServices(new Map([['node-3', [clash]]]), [KUBE], WORKLOADS, online);
    assert.deepEqual(r.refused.get('node-3'), ['service default/web2: 10.96.0.1:443 is already the address of service default/api']);
    assert.deepEqual(r.services.map((s) => s.name), ['api']);
  });
});
