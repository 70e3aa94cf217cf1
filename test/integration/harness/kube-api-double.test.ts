/**
 * The Kubernetes API double (test/harness/kube-api-double/), driven by the real client library the
 * agent and collector will use, @kubernetes/client-node, over HTTPS with a bearer token.
 */
import { strict as assert } from 'node:assert';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type V1Pod,
} from '@kubernetes/client-node';
import { POLICY_RESOURCES } from '../../../collector/kubernetes/policy-objects';
import { KubeApiDouble } from '../../harness/kube-api-double';
import { installCrds } from '../../harness/kube-crds';
import { waitFor } from '../../harness/wait';

const TOKEN = 'double-token';

function pod(name: string, node: string, labels: Record<string, string> = {}): V1Pod {
  return { metadata: { name, labels }, spec: { nodeName: node, serviceAccountName: 'default', containers: [{ name: 'app', image: 'nginx' }] } };
}

/** The Status an ApiException carries. */
async function statusOf(p: Promise<unknown>): Promise<{ code: number; reason: string; message: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ApiException, `an ApiException, got ${String(err)}`);
    const body = JSON.parse(String(err.body)) as { kind: string; code: number; reason: string; message: string };
    assert.equal(body.kind, 'Status');
    assert.equal(body.code, err.code);
    return body;
  }
  assert.fail('expected the API to refuse');
}

describe('Kubernetes API double, driven by @kubernetes/client-node', function () {
  this.timeout(30_000);
  let api: KubeApiDouble;
  let kc: KubeConfig;
  let core: CoreV1Api;

  beforeEach(async () => {
    api = await KubeApiDouble.start({ token: TOKEN, bookmarkIntervalMs: 200 });
    kc = new KubeConfig();
    kc.loadFromOptions(api.kubeConfig());
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'shop', labels: { 'palisade.dev/mesh': 'enabled' } } } });
  });
  afterEach(async () => api?.close());

  describe('objects', () => {
    it('creates, reads and lists pods with uid, creationTimestamp and resourceVersion set', async () => {
      const created = await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      assert.match(created.metadata!.uid!, /^[0-9a-f-]{36}$/);
      assert.ok(created.metadata!.creationTimestamp instanceof Date);
      assert.equal(created.metadata!.namespace, 'shop');
      const read = await core.readNamespacedPod({ namespace: 'shop', name: 'web-1' });
      assert.equal(read.metadata!.resourceVersion, created.metadata!.resourceVersion);
      const list = await core.listNamespacedPod({ namespace: 'shop' });
      assert.deepEqual(list.items.map((p) => p.metadata!.name), ['web-1']);
      assert.equal(list.metadata!.resourceVersion, api.resourceVersion);
    });

    it('fills in what the API server does: a pod\'s service account and phase, a service\'s cluster IP; default namespaces exist', async () => {
      const created = await core.createNamespacedPod({ namespace: 'shop', body: { metadata: { name: 'bare' }, spec: { containers: [{ name: 'app', image: 'nginx' }] } } });
      assert.equal(created.spec!.serviceAccountName, 'default');
      assert.equal(created.status!.phase, 'Pending');
      const svc = (name: string, clusterIP?: string) =>
        core.createNamespacedService({ namespace: 'shop', body: { metadata: { name }, spec: { ...(clusterIP ? { clusterIP } : {}), ports: [{ port: 80 }] } } });
      const [a, b] = [await svc('a'), await svc('b')];
      assert.match(a.spec!.clusterIP!, /^10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+$/);
      assert.notEqual(a.spec!.clusterIP, b.spec!.clusterIP);
      assert.deepEqual(a.spec!.clusterIPs, [a.spec!.clusterIP]);
      assert.equal((await svc('fixed', '10.96.5.5')).spec!.clusterIP, '10.96.5.5');
      assert.equal((await svc('headless', 'None')).spec!.clusterIP, 'None');
      const taken = await statusOf(svc('again', '10.96.5.5'));
      assert.deepEqual([taken.code, taken.reason], [422, 'Invalid']);
      await core.deleteNamespacedService({ namespace: 'shop', name: 'fixed' });
      assert.equal((await svc('again', '10.96.5.5')).spec!.clusterIP, '10.96.5.5', 'a deleted service gives its IP back');
      const namespaces = (await core.listNamespace()).items.map((n) => n.metadata!.name);
      assert.deepEqual(namespaces, ['default', 'kube-system', 'shop']);
    });

    it('names an object from generateName', async () => {
      const created = await core.createNamespacedPod({ namespace: 'shop', body: { ...pod('x', 'node-1'), metadata: { generateName: 'web-' } } });
      assert.match(created.metadata!.name!, /^web-[a-z0-9]{5}$/);
    });

    it('refuses what the API server refuses, with its Status', async () => {
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      const exists = await statusOf(core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') }));
      assert.deepEqual([exists.code, exists.reason], [409, 'AlreadyExists']);
      const missing = await statusOf(core.readNamespacedPod({ namespace: 'shop', name: 'nope' }));
      assert.deepEqual([missing.code, missing.reason], [404, 'NotFound']);
      const noNs = await statusOf(core.createNamespacedPod({ namespace: 'ghost', body: pod('web-1', 'node-1') }));
      assert.deepEqual([noNs.code, noNs.message], [404, 'namespaces "ghost" not found']);
      const badName = await statusOf(core.createNamespacedPod({ namespace: 'shop', body: pod('Web_1', 'node-1') }));
      assert.deepEqual([badName.code, badName.reason], [422, 'Invalid']);
    });

    it('replace with a stale resourceVersion is a 409 Conflict', async () => {
      const created = await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      await core.patchNamespacedPod({ namespace: 'shop', name: 'web-1', body: [{ op: 'add', path: '/metadata/labels/v', value: '2' }] });
      const conflict = await statusOf(core.replaceNamespacedPod({ namespace: 'shop', name: 'web-1', body: created }));
      assert.deepEqual([conflict.code, conflict.reason], [409, 'Conflict']);
    });

    it('patches with JSON patch (the client\'s default), merge patch and strategic merge patch', async () => {
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1', { app: 'web' }) });
      const json = await core.patchNamespacedPod({ namespace: 'shop', name: 'web-1', body: [{ op: 'add', path: '/metadata/labels/tier', value: 'front' }] });
      assert.deepEqual(json.metadata!.labels, { app: 'web', tier: 'front' });
      const merge = await core.patchNamespacedPod(
        { namespace: 'shop', name: 'web-1', body: { metadata: { labels: { tier: null, version: 'v2' } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      assert.deepEqual(merge.metadata!.labels, { app: 'web', version: 'v2' });
      const strategic = await core.patchNamespacedPod(
        { namespace: 'shop', name: 'web-1', body: { metadata: { annotations: { a: 'b' } } } },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
      assert.deepEqual(strategic.metadata!.annotations, { a: 'b' });
      const failed = await statusOf(core.patchNamespacedPod({ namespace: 'shop', name: 'web-1', body: [{ op: 'test', path: '/metadata/labels/app', value: 'db' }] }));
      assert.equal(failed.code, 422);
    });

    it('the status subresource: only /status writes status (the kubelet\'s podIP); generation counts spec changes', async () => {
      const created = await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      assert.equal(created.metadata!.generation, 1);
      const ip = await core.patchNamespacedPodStatus(
        { namespace: 'shop', name: 'web-1', body: { status: { podIP: '10.22.0.5', phase: 'Running' }, metadata: { labels: { ignored: 'yes' } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      assert.equal(ip.status!.podIP, '10.22.0.5');
      assert.equal(ip.metadata!.labels?.ignored, undefined, 'a status write changes only status');
      const main = await core.patchNamespacedPod(
        { namespace: 'shop', name: 'web-1', body: { status: { podIP: '10.9.9.9' }, metadata: { labels: { app: 'web' } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      assert.equal(main.status!.podIP, '10.22.0.5', 'a write to the object keeps its status');
      assert.equal(main.metadata!.generation, 1, 'labels are not spec');
      const spec = await core.patchNamespacedPod({ namespace: 'shop', name: 'web-1', body: [{ op: 'replace', path: '/spec/nodeName', value: 'node-2' }] });
      assert.equal(spec.metadata!.generation, 2);
    });

    it('a no-op write does not move the resourceVersion', async () => {
      const created = await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1', { app: 'web' }) });
      const same = await core.patchNamespacedPod({ namespace: 'shop', name: 'web-1', body: [{ op: 'replace', path: '/metadata/labels/app', value: 'web' }] });
      assert.equal(same.metadata!.resourceVersion, created.metadata!.resourceVersion);
    });

    it('deleting a namespace deletes what is in it', async () => {
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      await core.createNamespacedService({ namespace: 'shop', body: { metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } } });
      await core.deleteNamespace({ name: 'shop' });
      assert.deepEqual((await core.listPodForAllNamespaces()).items, []);
      assert.deepEqual((await core.listServiceForAllNamespaces()).items, []);
    });

    it('services and endpoint slices', async () => {
      await core.createNamespacedService({ namespace: 'shop', body: { metadata: { name: 'web' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] } } });
      const discovery = kc.makeApiClient(DiscoveryV1Api);
      await discovery.createNamespacedEndpointSlice({
        namespace: 'shop',
        body: {
          addressType: 'IPv4',
          metadata: { name: 'web-abcde', labels: { 'kubernetes.io/service-name': 'web' } },
          endpoints: [{ addresses: ['10.22.0.5'], conditions: { ready: true }, nodeName: 'node-1' }],
          ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        },
      });
      const slices = await discovery.listNamespacedEndpointSlice({ namespace: 'shop', labelSelector: 'kubernetes.io/service-name=web' });
      assert.equal(slices.items[0]!.endpoints![0]!.conditions!.ready, true);
      assert.equal((await core.readNamespacedService({ namespace: 'shop', name: 'web' })).spec!.clusterIP, '10.96.0.10');
    });

    it('custom resources: a CRD registers its resource, served in each of its versions, with a status subresource', async () => {
      const ext = kc.makeApiClient(ApiextensionsV1Api);
      await ext.createCustomResourceDefinition({
        body: {
          metadata: { name: 'authorizationpolicies.security.istio.io' },
          spec: {
            group: 'security.istio.io',
            scope: 'Namespaced',
            names: { plural: 'authorizationpolicies', singular: 'authorizationpolicy', kind: 'AuthorizationPolicy', listKind: 'AuthorizationPolicyList' },
            versions: [
              { name: 'v1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: { type: 'object' } } },
              { name: 'v1beta1', served: true, storage: false, subresources: { status: {} }, schema: { openAPIV3Schema: { type: 'object' } } },
            ],
          },
        },
      });
      const custom = kc.makeApiClient(CustomObjectsApi);
      const body = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-admin' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } };
      await custom.createNamespacedCustomObject({ group: 'security.istio.io', version: 'v1', namespace: 'shop', plural: 'authorizationpolicies', body });
      const beta = (await custom.getNamespacedCustomObject({ group: 'security.istio.io', version: 'v1beta1', namespace: 'shop', plural: 'authorizationpolicies', name: 'deny-admin' })) as {
        apiVersion: string;
        spec: unknown;
      };
      assert.equal(beta.apiVersion, 'security.istio.io/v1beta1');
      assert.deepEqual(beta.spec, body.spec);
      const withStatus = (await custom.patchNamespacedCustomObjectStatus(
        { group: 'security.istio.io', version: 'v1', namespace: 'shop', plural: 'authorizationpolicies', name: 'deny-admin', body: { status: { conditions: [{ type: 'Accepted', status: 'False', reason: 'Invalid' }] } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )) as { status: { conditions: Array<{ reason: string }> } };
      assert.equal(withStatus.status.conditions[0]!.reason, 'Invalid');
      const list = (await custom.listNamespacedCustomObject({ group: 'security.istio.io', version: 'v1', namespace: 'shop', plural: 'authorizationpolicies' })) as { items: Array<{ kind: string }> };
      assert.equal(list.items[0]!.kind, 'AuthorizationPolicy', 'custom resource list items keep their kind');
    });

    it('takes writes of every policy and route kind the collector writes, with resourceVersions, 409s, generations and watch events', async () => {
      installCrds(api, { istio: true, gatewayApi: true, destinationRules: true });
      const custom = kc.makeApiClient(CustomObjectsApi);
      for (const r of POLICY_RESOURCES) {
        const at = { group: r.group, version: r.versions[0]!, namespace: 'shop', plural: r.plural };
        const events: string[] = [];
        const ctl = await new Watch(kc).watch(`/apis/${r.group}/${r.versions[0]}/namespaces/shop/${r.plural}`, {}, (type: string, o: { metadata: { resourceVersion: string } }) => events.push(`${type} ${o.metadata.resourceVersion}`), () => undefined);
        const body = { apiVersion: `${r.group}/${r.versions[0]}`, kind: r.kind, metadata: { name: 'x' }, spec: { n: 1 } };
        type Obj = { metadata: { resourceVersion: string; generation: number } };
        const created = (await custom.createNamespacedCustomObject({ ...at, body })) as Obj;
        assert.equal((await statusOf(custom.createNamespacedCustomObject({ ...at, body }))).reason, 'AlreadyExists', r.kind);
        const updated = (await custom.replaceNamespacedCustomObject({ ...at, name: 'x', body: { ...body, metadata: { name: 'x', resourceVersion: created.metadata.resourceVersion }, spec: { n: 2 } } })) as Obj;
        assert.equal(updated.metadata.generation, 2, `${r.kind}: a spec change is a new generation`);
        const stale = { ...body, metadata: { name: 'x', resourceVersion: created.metadata.resourceVersion }, spec: { n: 3 } };
        assert.equal((await statusOf(custom.replaceNamespacedCustomObject({ ...at, name: 'x', body: stale }))).code, 409, `${r.kind}: an update at a stale resourceVersion`);
        const stalePrecondition = { preconditions: { resourceVersion: created.metadata.resourceVersion } };
        assert.equal((await statusOf(custom.deleteNamespacedCustomObject({ ...at, name: 'x', body: stalePrecondition }))).code, 409, `${r.kind}: a delete with a stale precondition`);
        await custom.deleteNamespacedCustomObject({ ...at, name: 'x', body: { preconditions: { resourceVersion: updated.metadata.resourceVersion } } });
        await waitFor(() => events.length === 3, 5_000, { what: `${r.kind} watch events` });
        assert.deepEqual(events.map((e) => e.split(' ')[0]), ['ADDED', 'MODIFIED', 'DELETED'], r.kind);
        assert.equal(events[1], `MODIFIED ${updated.metadata.resourceVersion}`);
        ctl.abort();
      }
    });

    it('serves plain HTTP too, without a token when none is set', async () => {
      const plain = await KubeApiDouble.start({ tls: false });
      try {
        const pkc = new KubeConfig();
        pkc.loadFromOptions(plain.kubeConfig());
        assert.match(plain.url, /^http:\/\/127\.0\.0\.1:\d+$/);
        const created = await pkc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'plain' } } });
        assert.equal(created.metadata!.name, 'plain');
      } finally {
        await plain.close();
      }
    });

    it('refuses a request without the bearer token (401)', async () => {
      const anon = new KubeConfig();
      anon.loadFromOptions({ ...api.kubeConfig(), users: [{ name: 'test' }] });
      await assert.rejects(anon.makeApiClient(CoreV1Api).listNamespace(), (err: unknown) => err instanceof ApiException && err.code === 401);
    });
  });

  describe('list selectors', () => {
    beforeEach(async () => {
      await core.createNamespace({ body: { metadata: { name: 'other' } } });
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1', { app: 'web', tier: 'front' }) });
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-2', 'node-2', { app: 'web', tier: 'back' }) });
      await core.createNamespacedPod({ namespace: 'other', body: pod('db-1', 'node-1', { app: 'db' }) });
    });

    const names = async (p: Promise<{ items: V1Pod[] }>): Promise<string[]> => (await p).items.map((x) => `${x.metadata!.namespace}/${x.metadata!.name}`);

    it('fieldSelector spec.nodeName, metadata.name, metadata.namespace', async () => {
      assert.deepEqual(await names(core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=node-1' })), ['other/db-1', 'shop/web-1']);
      assert.deepEqual(await names(core.listPodForAllNamespaces({ fieldSelector: 'metadata.name=web-2' })), ['shop/web-2']);
      assert.deepEqual(await names(core.listPodForAllNamespaces({ fieldSelector: 'metadata.namespace!=shop' })), ['other/db-1']);
      const bad = await statusOf(core.listPodForAllNamespaces({ fieldSelector: 'spec.image=nginx' }));
      assert.deepEqual([bad.code, bad.message], [400, 'field label not supported: spec.image']);
    });

    it('labelSelector =, !=, in, notin, exists', async () => {
      assert.deepEqual(await names(core.listPodForAllNamespaces({ labelSelector: 'app=web' })), ['shop/web-1', 'shop/web-2']);
      assert.deepEqual(await names(core.listPodForAllNamespaces({ labelSelector: 'app!=web' })), ['other/db-1']);
      assert.deepEqual(await names(core.listPodForAllNamespaces({ labelSelector: 'tier in (front)' })), ['shop/web-1']);
      assert.deepEqual(await names(core.listPodForAllNamespaces({ labelSelector: 'tier notin (front)' })), ['other/db-1', 'shop/web-2']);
      assert.deepEqual(await names(core.listPodForAllNamespaces({ labelSelector: 'tier,app=web' })), ['shop/web-1', 'shop/web-2']);
      assert.deepEqual(await names(core.listPodForAllNamespaces({ labelSelector: '!tier' })), ['other/db-1']);
    });

    it('limit and continue page through a list; a continue token from before a write is 410', async () => {
      const first = await core.listPodForAllNamespaces({ limit: 2 });
      assert.equal(first.items.length, 2);
      assert.equal(first.metadata!.remainingItemCount, 1);
      const rest = await core.listPodForAllNamespaces({ limit: 2, _continue: first.metadata!._continue! });
      assert.deepEqual(rest.items.map((p) => p.metadata!.name), ['web-2']);
      await core.deleteNamespacedPod({ namespace: 'shop', name: 'web-2' });
      const stale = await statusOf(core.listPodForAllNamespaces({ limit: 2, _continue: first.metadata!._continue! }));
      assert.deepEqual([stale.code, stale.reason], [410, 'Expired']);
    });
  });

  describe('informer (ListWatch) on a node\'s pods', () => {
    /** The agent's informer: pods of node-1 only, by field selector. */
    function nodeInformer(): { informer: ListWatch<V1Pod>; seen: string[]; errors: unknown[] } {
      const listFn = () => core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=node-1' });
      const informer = new ListWatch<V1Pod>('/api/v1/pods', new Watch(kc), listFn, false, undefined, 'spec.nodeName=node-1');
      const seen: string[] = [];
      const errors: unknown[] = [];
      informer.on('add', (p) => seen.push(`add ${p.metadata!.name}`));
      informer.on('update', (p) => seen.push(`update ${p.metadata!.name}`));
      informer.on('delete', (p) => seen.push(`delete ${p.metadata!.name}`));
      informer.on('error', (err) => errors.push(err));
      return { informer, seen, errors };
    }

    const cached = (informer: ListWatch<V1Pod>): string[] => informer.list().map((p) => p.metadata!.name!).sort();

    it('gets the initial list, then its node\'s events only', async () => {
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      await core.createNamespacedPod({ namespace: 'shop', body: pod('far-1', 'node-2') });
      const { informer, seen } = nodeInformer();
      await informer.start();
      assert.deepEqual(seen, ['add web-1']);
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-2', 'node-1') });
      await core.createNamespacedPod({ namespace: 'shop', body: pod('far-2', 'node-2') });
      await api.patch('v1/pods', 'shop', 'web-1', { status: { podIP: '10.22.0.5' } }, { status: true });
      await core.deleteNamespacedPod({ namespace: 'shop', name: 'web-2' });
      await waitFor(() => seen.length === 4, 5000, { what: `events (${seen.join(', ')})` });
      assert.deepEqual(seen, ['add web-1', 'add web-2', 'update web-1', 'delete web-2']);
      assert.equal(informer.get('web-1', 'shop')!.status!.podIP, '10.22.0.5');
      assert.equal(api.requests.filter((r) => r.query.watch === 'true')[0]!.query.fieldSelector, 'spec.nodeName=node-1');
      await informer.stop();
    });

    it('a watch ended cleanly (the API server\'s timeout) resumes from its resourceVersion without a relist', async () => {
      const { informer, seen } = nodeInformer();
      await informer.start();
      await waitFor(() => api.watches.size === 1, 5000);
      assert.equal(api.dropWatches('end'), 1);
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      await waitFor(() => seen.includes('add web-1'), 5000, { what: 'the pod created while the watch was down' });
      const lists = api.requests.filter((r) => r.path === '/api/v1/pods' && r.query.watch === undefined);
      assert.equal(lists.length, 1, 'listed once');
      const watches = api.requests.filter((r) => r.query.watch === 'true');
      assert.equal(watches.length, 2);
      assert.notEqual(watches[1]!.query.resourceVersion, '', 'the second watch resumed from a resourceVersion');
      await informer.stop();
    });

    it('a watch cut mid-stream is an error; restarting resumes from the resourceVersion and misses nothing', async () => {
      const { informer, seen, errors } = nodeInformer();
      await informer.start();
      await waitFor(() => api.watches.size === 1, 5000);
      api.dropWatches('reset');
      await waitFor(() => errors.length === 1, 5000, { what: 'the error callback' });
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      await informer.start();
      await waitFor(() => seen.includes('add web-1'), 5000);
      assert.equal(api.requests.filter((r) => r.path === '/api/v1/pods' && r.query.watch === undefined).length, 1, 'no relist');
      await informer.stop();
    });

    it('a watch a hang fault holds unanswered is a connection too: dropWatches cuts it (an error to the client), and the next watch is served', async () => {
      const { informer, errors } = nodeInformer();
      const removeFault = api.addFault({ watch: true, hang: true });
      const started = informer.start(); // settles when its watch is answered: here, when it is cut
      await waitFor(() => api.held.size === 1, 5000, { what: 'the watch held by the fault' });
      assert.equal(api.watches.size, 0);
      removeFault();
      assert.equal(api.dropWatches('reset'), 1);
      await waitFor(() => errors.length === 1, 5000, { what: 'the error callback of the cut watch' });
      assert.equal(api.held.size, 0);
      await started.catch(() => undefined);
      await informer.start();
      await waitFor(() => api.watches.size === 1, 5000, { what: 'a watch served after the fault' });
      await informer.stop();
    });

    it('410 Gone (history compacted while away) relists, and a pod deleted meanwhile is a delete', async () => {
      await core.createNamespacedPod({ namespace: 'shop', body: pod('old-1', 'node-1') });
      const { informer, seen, errors } = nodeInformer();
      await informer.start();
      await waitFor(() => api.watches.size === 1, 5000);
      api.dropWatches('reset');
      await waitFor(() => errors.length === 1, 5000);
      await core.deleteNamespacedPod({ namespace: 'shop', name: 'old-1' });
      await core.createNamespacedPod({ namespace: 'shop', body: pod('new-1', 'node-1') });
      api.compact();
      await informer.start();
      await waitFor(() => seen.includes('delete old-1') && seen.includes('add new-1'), 5000, { what: `relist (${seen.join(', ')})` });
      assert.deepEqual(cached(informer), ['new-1']);
      const lists = api.requests.filter((r) => r.path === '/api/v1/pods' && r.query.watch === undefined);
      assert.equal(lists.length, 2, 'relisted after 410');
      await informer.stop();
    });

    it('a watch answered 410 by HTTP status relists too', async () => {
      const { informer, seen } = nodeInformer();
      await informer.start();
      await waitFor(() => api.watches.size === 1, 5000);
      api.addFault({ watch: true, status: 410, reason: 'Gone', times: 1 });
      api.dropWatches('end');
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      await waitFor(() => seen.includes('add web-1'), 5000);
      assert.equal(api.requests.filter((r) => r.path === '/api/v1/pods' && r.query.watch === undefined).length, 2);
      await informer.stop();
    });

    it('a pod relabelled out of a label selector is deleted for the informer, back in is added', async () => {
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1', { mesh: 'on' }) });
      const listFn = () => core.listPodForAllNamespaces({ labelSelector: 'mesh=on' });
      const informer = new ListWatch<V1Pod>('/api/v1/pods', new Watch(kc), listFn, false, 'mesh=on');
      const seen: string[] = [];
      informer.on('add', (p) => seen.push(`add ${p.metadata!.name}`));
      informer.on('delete', (p) => seen.push(`delete ${p.metadata!.name}`));
      await informer.start();
      await api.patch('v1/pods', 'shop', 'web-1', { metadata: { labels: { mesh: 'off' } } });
      await api.patch('v1/pods', 'shop', 'web-1', { metadata: { labels: { mesh: 'on' } } });
      await waitFor(() => seen.length === 3, 5000, { what: seen.join(', ') });
      assert.deepEqual(seen, ['add web-1', 'delete web-1', 'add web-1']);
      await informer.stop();
    });
  });

  describe('watch', () => {
    it('sends bookmarks with the current resourceVersion when asked (allowWatchBookmarks), periodically and on demand', async () => {
      const events: Array<{ type: string; rv: string }> = [];
      const rv = (await core.listNamespacedPod({ namespace: 'shop' })).metadata!.resourceVersion!;
      const ctl = await new Watch(kc).watch('/api/v1/namespaces/shop/pods', { allowWatchBookmarks: true, resourceVersion: rv }, (type, obj: { metadata: { resourceVersion: string } }) => events.push({ type, rv: obj.metadata.resourceVersion }), () => undefined);
      await waitFor(() => events.some((e) => e.type === 'BOOKMARK'), 3000, { what: 'a periodic bookmark' });
      await api.create('v1/namespaces', { metadata: { name: 'elsewhere' } }); // moves the resourceVersion, not a pod event
      api.sendBookmarks();
      await waitFor(() => events.some((e) => e.type === 'BOOKMARK' && e.rv === api.resourceVersion), 3000);
      assert.ok(events.every((e) => e.type === 'BOOKMARK'));
      ctl.abort();
    });

    it('sends no bookmarks to a watch that did not ask', async () => {
      const events: string[] = [];
      const ctl = await new Watch(kc).watch('/api/v1/pods', {}, (type) => events.push(type), () => undefined);
      api.sendBookmarks();
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual(events, []);
      ctl.abort();
    });

    it('starts with ADDED for what exists when no resourceVersion is given, and ends at timeoutSeconds', async () => {
      await core.createNamespacedPod({ namespace: 'shop', body: pod('web-1', 'node-1') });
      const events: string[] = [];
      let done: unknown = 'not yet';
      const started = Date.now();
      await new Watch(kc).watch('/api/v1/pods', { timeoutSeconds: 1 }, (type, obj: V1Pod) => events.push(`${type} ${obj.metadata!.name}`), (err) => (done = err));
      await waitFor(() => done !== 'not yet', 4000);
      assert.equal(done, null);
      assert.ok(Date.now() - started >= 900);
      assert.deepEqual(events, ['ADDED web-1']);
    });

    it('an injected fault answers matching requests, then goes', async () => {
      api.addFault({ method: 'GET', path: /\/pods$/, watch: false, status: 503, reason: 'ServiceUnavailable', times: 1 });
      const down = await statusOf(core.listPodForAllNamespaces());
      assert.deepEqual([down.code, down.reason], [503, 'ServiceUnavailable']);
      assert.deepEqual((await core.listPodForAllNamespaces()).items, []);
    });
  });
});
