/**
 * The Kubernetes workload source against the Kubernetes API double, through the real
 * @kubernetes/client-node: CNI requests (parsed as the socket parses them) joined with the node's
 * Pods and namespaces, live changes, API outages, 410 relists and a restarted agent. The kernel,
 * the mesh and network namespaces are fakes here (test/harness/enrollment-fakes.ts); the
 * privileged suites run the same source with the real ones.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniErrorCode, CniRefusal, type CniSandbox } from '../../../../agent/cni/protocol';
import { parseCniRequest } from '../../../../agent/cni/request';
import { LocalWorkloads } from '../../../../agent/local-workloads';
import { KubernetesSource } from '../../../../agent/workload-sources/kubernetes/kubernetes-source';
import { sandboxStateFile } from '../../../../agent/workload-sources/kubernetes/sandbox-store';
import { NodeEnrollment } from '../../../../agent/workload-sources/node-enrollment';
import { KubeClient } from '../../../../common/kube/client';
import { silentLogger } from '../../../../common/log';
import { tempDir } from '../../../harness/agent';
import { BRIDGE_RESULT } from '../../../harness/cni-endpoint';
import { FakeDatapath, FakeMesh, FakeNetns } from '../../../harness/enrollment-fakes';
import { KubeApiDouble } from '../../../harness/kube-api-double';
import { waitFor } from '../../../harness/wait';

const NODE = 'node-1';
const TOKEN = 'agent-token';

describe('KubernetesSource (API double, real client-node; fake kernel)', function () {
  this.timeout(30_000);
  let api: KubeApiDouble;
  let dir: string;
  let client: KubeClient;
  let netns: FakeNetns;
  let local: LocalWorkloads;
  let dp: FakeDatapath;
  let mesh: FakeMesh;
  let enrollment: NodeEnrollment;
  let source: KubernetesSource;
  let ip = 10;

  function newEnrollment(): void {
    local = new LocalWorkloads();
    dp = dp ? Object.assign(new FakeDatapath(netns, local), { map: dp.map }) : new FakeDatapath(netns, local);
    enrollment = new NodeEnrollment({ datapath: dp, local, mesh, log: silentLogger(), identityTimeoutMs: 200, identityLingerMs: 0, cookieOf: netns.cookieOf });
  }

  async function startSource(): Promise<void> {
    newEnrollment();
    source = new KubernetesSource({ node: NODE, client, trustDomain: 'cluster.local', runDir: dir, log: silentLogger(), cookieOf: netns.cookieOf, procRoot: path.join(dir, 'no-proc'), lookupTimeoutMs: 500 });
    await source.start(enrollment);
  }

  /** The harness plays the kubelet: the Pod object, scheduled on `node`. */
  function createPod(name: string, opts: { namespace?: string; sa?: string; labels?: Record<string, string>; annotations?: Record<string, string>; node?: string } = {}): string {
    const o = api.create('v1/pods', {
      metadata: { name, namespace: opts.namespace ?? 'shop', labels: opts.labels ?? { app: name }, ...(opts.annotations ? { annotations: opts.annotations } : {}) },
      spec: { nodeName: opts.node ?? NODE, serviceAccountName: opts.sa ?? name, containers: [{ name: 'app', image: 'app' }] },
    });
    return o.metadata.uid!;
  }

  /** A CNI request for the pod's sandbox, as palisade-cni sends it and the socket checks it. */
  function sandbox(name: string, uid: string, opts: { namespace?: string; command?: string; bare?: boolean } = {}): CniSandbox & { ip: string } {
    const address = `10.22.0.${ip++}`;
    const ns = `/var/run/netns/cni-${name}-${ip}`;
    netns.add(ns);
    const prevResult = structuredClone(BRIDGE_RESULT);
    prevResult.ips[0]!.address = `${address}/16`;
    const body = {
      palisadeCni: 1,
      command: opts.command ?? 'ADD',
      cniVersion: '1.0.0',
      network: 'k8s-pod-network',
      containerId: `sandbox-${name}-${ip}`,
      netns: opts.bare ? '' : ns,
      ifName: 'eth0',
      pod: opts.bare ? { namespace: '', name: '', uid: '' } : { namespace: opts.namespace ?? 'shop', name, uid },
      ...(opts.bare ? {} : { prevResult }),
    };
    const parsed = parseCniRequest(Buffer.from(JSON.stringify(body)));
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
    return Object.assign(parsed.request.sandbox, { ip: address, netns: ns });
  }

  const enrolledNames = (): string[] => local.all().map((w) => w.name).sort();

  async function refusal(p: Promise<unknown>): Promise<CniRefusal> {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof CniRefusal, String(err));
      assert.ok(!err.message.includes('\n'), 'one line');
      return err;
    }
    assert.fail('expected a refusal');
  }

  beforeEach(async function () {
    api = await KubeApiDouble.start({ token: TOKEN, bookmarkIntervalMs: 500 });
    api.create('v1/namespaces', { metadata: { name: 'shop', labels: { 'palisade.dev/mesh': 'enabled' } } });
    api.create('v1/namespaces', { metadata: { name: 'plain' } });
    dir = tempDir('k8s-source');
    api.writeKubeconfig(path.join(dir, 'kubeconfig'));
    client = await KubeClient.connect({ kubeconfig: path.join(dir, 'kubeconfig'), requestTimeoutMs: 2000 });
    netns = new FakeNetns();
    mesh = new FakeMesh();
    mesh.certifyAll = true;
    dp = undefined as unknown as FakeDatapath;
    await startSource();
    await source.synced();
  });

  afterEach(async function () {
    await source?.close();
    enrollment?.close();
    await api?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ADD of a pod in a meshed namespace: enrolled (index, kernel, certificate) before the answer, with its service account\'s identity', async function () {
    const uid = createPod('web-1', { sa: 'web' });
    const s = sandbox('web-1', uid);
    await source.enroll(s);
    const w = local.byIp(s.ip);
    assert.equal(w?.identity, 'spiffe://cluster.local/ns/shop/sa/web');
    assert.deepEqual(w?.labels, { app: 'web-1', 'palisade.dev/workload': 'web-1' });
    assert.equal(dp.map.get(netns.cookieOf(s.netns))?.hostInterface, 'veth1a2b3c4d', 'the host-side veth from the CNI result');
    assert.deepEqual(mesh.retained, ['spiffe://cluster.local/ns/shop/sa/web']);
    await source.check(s);
    const record = JSON.parse(fs.readFileSync(sandboxStateFile(dir, NODE), 'utf8')) as { sandboxes: Array<{ uid: string; enrolled?: unknown }> };
    assert.ok(record.sandboxes.find((r) => r.uid === uid)?.enrolled, 'recorded for a restart');
  });

  it('ADD of a pod outside the mesh answers ok without enrolling; labelling its namespace enrolls it live, unlabelling takes it out', async function () {
    const uid = createPod('db-1', { namespace: 'plain' });
    const s = sandbox('db-1', uid, { namespace: 'plain' });
    await source.enroll(s);
    await source.check(s);
    assert.deepEqual(enrolledNames(), []);
    api.patch('v1/namespaces', '', 'plain', { metadata: { labels: { 'palisade.dev/mesh': 'enabled' } } });
    await waitFor(() => local.byIp(s.ip), 5000, { what: 'the pod enrolled after its namespace was labelled' });
    api.patch('v1/namespaces', '', 'plain', { metadata: { labels: { 'palisade.dev/mesh': null } } });
    await waitFor(() => local.size === 0 && dp.map.size === 0, 5000, { what: 'the pod unenrolled' });
  });

  it('applies relabels, a service account change and the opt-out annotation live', async function () {
    const uid = createPod('web-2', { sa: 'web' });
    const s = sandbox('web-2', uid);
    await source.enroll(s);
    api.patch('v1/pods', 'shop', 'web-2', { metadata: { labels: { app: 'web', tier: 'front' } } });
    await waitFor(() => local.byIp(s.ip)?.labels.tier === 'front', 5000, { what: 'the new labels' });
    api.patch('v1/pods', 'shop', 'web-2', { spec: { serviceAccountName: 'web-v2' } });
    await waitFor(() => local.byIp(s.ip)?.identity === 'spiffe://cluster.local/ns/shop/sa/web-v2', 5000, { what: 'the new identity' });
    await waitFor(() => mesh.retained.join() === 'spiffe://cluster.local/ns/shop/sa/web-v2', 5000, { what: 'the old certificate dropped' });
    api.patch('v1/pods', 'shop', 'web-2', { metadata: { annotations: { 'palisade.dev/mesh': 'disabled' } } });
    await waitFor(() => local.size === 0, 5000, { what: 'opted out' });
  });

  it('unenrolls on DEL (even one with only a container id), and when the Pod is deleted', async function () {
    const a = createPod('a');
    const sa = sandbox('a', a);
    await source.enroll(sa);
    const b = createPod('b');
    const sb = sandbox('b', b);
    await source.enroll(sb);
    assert.deepEqual(enrolledNames(), ['a', 'b']);
    const bareDel = Object.assign(sandbox('x', '', { command: 'DEL', bare: true }), { containerId: sa.containerId });
    await source.unenroll(bareDel);
    assert.deepEqual(enrolledNames(), ['b']);
    api.delete('v1/pods', 'shop', 'b');
    await waitFor(() => local.size === 0 && dp.map.size === 0, 5000, { what: 'b unenrolled after its deletion' });
    await source.unenroll(sb); // the runtime's DEL after the deletion: nothing left to do, no error
  });

  it('ADD of a pod the watch has not delivered yet: one GET finds it', async function () {
    const removeFault = api.addFault({ watch: true, hang: true });
    api.dropWatches('reset');
    const uid = createPod('late-1');
    const s = sandbox('late-1', uid);
    await source.enroll(s);
    assert.deepEqual(enrolledNames(), ['late-1']);
    assert.ok(api.requests.some((r) => r.method === 'GET' && r.path === '/api/v1/namespaces/shop/pods/late-1'));
    removeFault();
  });

  it('refuses, with one line and nothing enrolled: an unknown pod, a pod of another node, a replaced pod, the API away', async function () {
    const ghost = await refusal(source.enroll(sandbox('ghost', '11111111-2222-4333-8444-555555555555')));
    assert.equal(ghost.cniCode, CniErrorCode.ENROLL_FAILED);
    assert.match(ghost.message, /pod shop\/ghost does not exist in the Kubernetes API/);

    const far = createPod('far-1', { node: 'node-2' });
    const wrong = await refusal(source.enroll(sandbox('far-1', far)));
    assert.match(wrong.message, /pod shop\/far-1 is scheduled on node node-2, not on node-1/);

    createPod('swapped');
    const old = await refusal(source.enroll(sandbox('swapped', '99999999-2222-4333-8444-555555555555')));
    assert.match(old.message, /has uid .* not the 99999999-2222-4333-8444-555555555555 the runtime gave/);

    api.addFault({ method: 'GET', path: /\/pods\/|\/namespaces\//, watch: false, status: 503, reason: 'ServiceUnavailable' });
    const away = await refusal(source.enroll(sandbox('unseen', '22222222-2222-4333-8444-555555555555')));
    assert.equal(away.cniCode, CniErrorCode.TRY_AGAIN_LATER);
    assert.match(away.message, /get pod shop\/unseen: the Kubernetes API answered 503 ServiceUnavailable/);
    assert.deepEqual(enrolledNames(), []);
    assert.equal(dp.map.size, 0);
  });

  it('no certificate in time: try again later, and the pod is not left half enrolled', async function () {
    mesh.certifyAll = false;
    const uid = createPod('nocert');
    const r = await refusal(source.enroll(sandbox('nocert', uid)));
    assert.equal(r.cniCode, CniErrorCode.TRY_AGAIN_LATER);
    assert.match(r.message, /no certificate for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/nocert within 200 ms/);
    assert.equal(local.size + dp.map.size, 0);
  });

  it('an API outage unenrolls nothing; when the API is back the watch goes on', async function () {
    const uid = createPod('steady');
    await source.enroll(sandbox('steady', uid));
    const remove = api.addFault({ status: 503, reason: 'ServiceUnavailable' });
    api.dropWatches('reset');
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(enrolledNames(), ['steady']);
    remove();
    const watchesBefore = api.requests.filter((r) => r.query.watch === 'true').length;
    await waitFor(() => api.watches.size >= 2, 15_000, { what: 'the watches back' });
    assert.ok(api.requests.filter((r) => r.query.watch === 'true').length > watchesBefore);
    api.patch('v1/pods', 'shop', 'steady', { metadata: { labels: { app: 'steady', v: '2' } } });
    await waitFor(() => local.all()[0]?.labels.v === '2', 5000, { what: 'a change after the outage' });
  });

  it('410 Gone after the history was compacted: relists, and a pod deleted meanwhile is unenrolled', async function () {
    const keep = createPod('keep');
    await source.enroll(sandbox('keep', keep));
    const gone = createPod('gone');
    await source.enroll(sandbox('gone', gone));
    const removeFault = api.addFault({ watch: true, hang: true });
    api.dropWatches('reset');
    await new Promise((r) => setTimeout(r, 300));
    api.delete('v1/pods', 'shop', 'gone');
    api.compact();
    removeFault();
    api.dropWatches('reset');
    await waitFor(() => enrolledNames().join() === 'keep', 15_000, { what: `the relist (enrolled: ${enrolledNames().join()})` });
  });

  it('a restarted agent: enrolls again from its record before the API answers, then drops pods deleted while it was away', async function () {
    const stay = createPod('stay');
    const sStay = sandbox('stay', stay);
    await source.enroll(sStay);
    const leave = createPod('leave');
    await source.enroll(sandbox('leave', leave));
    await source.close();
    enrollment.close();
    api.delete('v1/pods', 'shop', 'leave');
    const removeFault = api.addFault({ status: 503, reason: 'ServiceUnavailable' });
    await startSource(); // a new agent: empty index, the kernel's map as the old one left it
    assert.deepEqual(enrolledNames(), ['leave', 'stay'], 'from the record, before the API answered');
    assert.equal(source.isSynced, false);
    removeFault();
    await source.synced();
    assert.deepEqual(enrolledNames(), ['stay']);
    assert.deepEqual([...dp.map.keys()], [netns.cookieOf(sStay.netns)]);
  });
});
