import { strict as assert } from 'node:assert';
import { serviceFromObjects, type EndpointSliceObject, type ServiceObject } from '../../../../collector/kubernetes/service-objects';

const SVC: ServiceObject = {
  metadata: { namespace: 'shop', name: 'web' },
  spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'dns', port: 53, protocol: 'UDP' }] },
};
const slice = (endpoints: EndpointSliceObject['endpoints'], over: Partial<EndpointSliceObject> = {}): EndpointSliceObject => ({
  metadata: { namespace: 'shop', name: 'web-x', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints,
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  ...over,
});

describe('serviceFromObjects', function () {
  it('joins a Service with its slices: cluster IP, TCP ports, endpoints with readiness and target port (unset ready is ready)', function () {
    const s = serviceFromObjects(SVC, [
      slice([{ addresses: ['10.0.2.10'], conditions: { ready: true } }, { addresses: ['10.0.1.11'], conditions: {} }]),
      slice([{ addresses: ['10.0.1.12'], conditions: { ready: false } }]),
    ]);
    assert.deepEqual(s, {
      namespace: 'shop',
      name: 'web',
      vips: ['10.96.0.10'],
      ports: [{ name: 'http', port: 80 }],
      endpoints: [
        { ip: '10.0.1.11', ready: true, targetPorts: [8080] },
        { ip: '10.0.1.12', ready: false, targetPorts: [8080] },
        { ip: '10.0.2.10', ready: true, targetPorts: [8080] },
      ],
    });
  });

  const none: Array<[string, ServiceObject]> = [
    ['a headless service', { ...SVC, spec: { ...SVC.spec, clusterIP: 'None', clusterIPs: ['None'] } }],
    ['an ExternalName service', { ...SVC, spec: { ...SVC.spec, type: 'ExternalName' } }],
    ['an IPv6-only service', { ...SVC, spec: { ...SVC.spec, clusterIP: 'fd00::10', clusterIPs: ['fd00::10'] } }],
    ['a UDP-only service', { ...SVC, spec: { ...SVC.spec, ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } }],
  ];
  for (const [what, svc] of none) {
    it(`leaves out ${what}`, function () {
      assert.equal(serviceFromObjects(svc, [slice([{ addresses: ['10.0.1.11'] }])]), undefined);
    });
  }

  it('skips IPv6 slices and slices that do not say where a named port goes; a numeric targetPort fills in', function () {
    const v6 = slice([{ addresses: ['fd00::1'] }], { addressType: 'IPv6' });
    const unnamed = slice([{ addresses: ['10.0.1.20'] }], { ports: [{ name: 'other', port: 9 }] });
    assert.deepEqual(serviceFromObjects(SVC, [v6, unnamed])!.endpoints, []);
    const numeric: ServiceObject = { ...SVC, spec: { ...SVC.spec, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } };
    assert.deepEqual(serviceFromObjects(numeric, [unnamed])!.endpoints, [{ ip: '10.0.1.20', ready: true, targetPorts: [8080] }]);
  });
});
