/**
 * The collector's watch of Services and EndpointSlices against the Kubernetes API double, through
 * the real client-node: joined into the registry's services, following readiness changes and
 * deletions, and unchanged by an API outage.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ServicesWatch } from '../../../collector/kubernetes/services-watch';
import { KubeClient } from '../../../common/kube/client';
import { silentLogger } from '../../../common/log';
import type { RegistryService } from '../../../common/mesh-protocol';
import { tempDir } from '../../harness/agent';
import { KubeApiDouble } from '../../harness/kube-api-double';
import { waitFor } from '../../harness/wait';

describe('collector: Services and EndpointSlices from the Kubernetes API (double)', function () {
  this.timeout(30_000);
  let api: KubeApiDouble;
  let dir: string;
  let watch: ServicesWatch;
  let published: RegistryService[][];

  const latest = (): string =>
    (published.at(-1) ?? []).map((s) => `${s.namespace}/${s.name} ${s.vips.join('+')} ${s.endpoints.map((e) => `${e.ip}:${e.targetPorts.join('+')}${e.ready ? '' : '(unready)'}`).join(',')}`).join(' | ');

  const slice = (ready: boolean): Record<string, unknown> => ({
    addressType: 'IPv4',
    metadata: { name: 'web-abcde', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ addresses: ['10.0.1.11'], conditions: { ready: true } }, { addresses: ['10.0.2.10'], conditions: { ready } }],
  });

  beforeEach(async function () {
    api = await KubeApiDouble.start({ token: 'collector' });
    api.create('v1/namespaces', { metadata: { name: 'shop' } });
    dir = tempDir('k8s-services');
    api.writeKubeconfig(path.join(dir, 'kubeconfig'));
    published = [];
    const client = await KubeClient.connect({ kubeconfig: path.join(dir, 'kubeconfig') });
    watch = new ServicesWatch({ client, log: silentLogger(), onServices: (s) => void published.push(s), debounceMs: 10 });
    api.create('v1/services', { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 'http' }] } });
    api.create('discovery.k8s.io/v1/endpointslices', slice(true));
    watch.start();
    await watch.synced();
  });

  afterEach(async function () {
    await watch.stop();
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('joins a Service with its EndpointSlices, then follows readiness, new services and deletions', async function () {
    await waitFor(() => latest() === 'shop/web 10.96.0.10 10.0.1.11:8080,10.0.2.10:8080', 5000, { what: 'the published services' });
    api.patch('discovery.k8s.io/v1/endpointslices', 'shop', 'web-abcde', { endpoints: (slice(false) as { endpoints: unknown }).endpoints });
    await waitFor(() => latest() === 'shop/web 10.96.0.10 10.0.1.11:8080,10.0.2.10:8080(unready)', 5000, { what: 'the endpoint unready' });
    api.create('v1/services', { metadata: { name: 'db', namespace: 'shop' }, spec: { clusterIP: '10.96.0.20', ports: [{ port: 5432, targetPort: 5432 }] } });
    await waitFor(() => latest().startsWith('shop/db 10.96.0.20  | shop/web'), 5000, { what: 'the published services' });
    // a slice change builds its service again, and only it: the registry pushes only what changed
    const db = published.at(-1)![0]!;
    api.patch('discovery.k8s.io/v1/endpointslices', 'shop', 'web-abcde', { endpoints: (slice(true) as { endpoints: unknown }).endpoints });
    await waitFor(() => latest().endsWith('10.0.1.11:8080,10.0.2.10:8080'), 5000, { what: 'the endpoint ready again' });
    assert.equal(published.at(-1)![0], db, 'the unchanged service is the same object');
    // a slice relabelled to another service leaves the first
    api.patch('discovery.k8s.io/v1/endpointslices', 'shop', 'web-abcde', { metadata: { labels: { 'kubernetes.io/service-name': 'db' } } });
    await waitFor(() => latest() === 'shop/db 10.96.0.20 10.0.1.11:5432,10.0.2.10:5432 | shop/web 10.96.0.10 ', 5000, { what: 'the slice under db' });
    api.delete('v1/services', 'shop', 'web');
    await waitFor(() => latest() === 'shop/db 10.96.0.20 10.0.1.11:5432,10.0.2.10:5432', 5000, { what: 'the published services' });
  });

  it('an API outage changes nothing; the watch picks up what changed once it is back', async function () {
    await waitFor(() => latest().includes('10.0.2.10:8080'), 5000, { what: 'the published services' });
    const count = published.length;
    const remove = api.addFault({ status: 503, reason: 'ServiceUnavailable' });
    api.dropWatches('reset');
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(published.length, count, 'nothing published while the API is away');
    remove();
    api.patch('discovery.k8s.io/v1/endpointslices', 'shop', 'web-abcde', { endpoints: (slice(false) as { endpoints: unknown }).endpoints });
    await waitFor(() => latest().includes('10.0.2.10:8080(unready)'), 15_000, { what: 'the published services' });
  });
});
