/**
 * Kubernetes end to end on two nodes: a real collector, two real agents (`--kubernetes`, real
 * eBPF, HBONE) watching the Kubernetes API double, pods created as a kubelet creates them (the Pod
 * object, then Debian's bridge + host-local + palisade-cni). Pods talk over HBONE with identities
 * from their service accounts (each certificate signed only for a pod the collector, as node
 * authorizer, sees on that node in the API); relabelling a pod changes which policy selects it;
 * deleting it unenrolls it everywhere; 200 create/delete cycles leave no map entry, pin, registry entry or
 * certificate behind.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath, pinDirFor } from '../../../agent/datapath/datapath';
import { sandboxStateFile } from '../../../agent/workload-sources/kubernetes/sandbox-store';
import { requirePrivileges, runClient, startEchoServer, startMeshAgent, startTestCollector, sweepStale, tempDir, Topology, waitFor } from '../../harness';
import type { AgentProcess, EchoServer, NodeNs, TestCollector } from '../../harness';
import { startKubeCluster, type KubeCluster } from '../../harness/kube-cluster';
import { installCrds } from '../../harness/kube-crds';
import { Kubelet, type KubePod } from '../../harness/kubelet';

const DENY_CLIENT_TO_LOCKED = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-client-to-locked
  namespace: shop
spec:
  selector:
    matchLabels:
      tier: locked
  action: DENY
  rules:
    - from:
        - source:
            principals: ["cluster.local/ns/shop/sa/client"]
`;

interface FlowLine {
  event: 'flow';
  direction: string;
  verdict: string;
  policy?: string;
  mtls?: boolean;
  source: { ip: string; identity?: string; workload?: string };
  destination: { ip: string; workload?: string };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Pod create/delete cycles in the churn test, and how many run at once. */
const CYCLES = 200;
const CYCLE_LANES = 2;

describe('Kubernetes mesh on two nodes (real agents, real eBPF, HBONE; API double)', function () {
  this.timeout(600_000);
  let topo: Topology;
  let node1: NodeNs;
  let node2: NodeNs;
  let collector: TestCollector;
  let cluster: KubeCluster;
  let agents: AgentProcess[];
  let kubelets: Kubelet[];
  let dir: string;
  let client: KubePod;
  let other: KubePod;
  let web: KubePod;
  let echo: EchoServer;

  const flows = (a: AgentProcess): FlowLine[] => a.logs.lines.filter((l): l is FlowLine => (l as FlowLine)?.event === 'flow');
  const enrolledIps = (node: NodeNs): string[] => Datapath.open(node.name).pods().map((p) => p.ip ?? '').sort();
  const registered = (node: NodeNs): string[] => collector.running.snapshot().workloads.filter((w) => w.node === node.name).map((w) => w.name).sort();
  async function metrics(node: NodeNs): Promise<string> {
    const r = await topo.exec(node, 'curl', ['-s', '-m', '5', `http://${node.underlayIp}:15020/metrics`]);
    return r.stdout;
  }

  before(async function () {
    requirePrivileges();
    sweepStale();
    dir = tempDir('k8s-mesh');
    const policyDir = path.join(dir, 'policies');
    fs.mkdirSync(policyDir);
    fs.writeFileSync(path.join(policyDir, 'deny.yaml'), DENY_CLIENT_TO_LOCKED);
    topo = await Topology.create({ label: 'k8smesh', nodes: 2 });
    [node1, node2] = topo.nodes as [NodeNs, NodeNs];
    cluster = await startKubeCluster(topo, dir, { meshNamespaces: ['shop'] });
    installCrds(cluster.api, { istio: true });
    collector = await startTestCollector({ extra: { policyDir, kubernetes: { kubeconfig: cluster.hostKubeconfig } } });
    agents = [];
    kubelets = [];
    for (const node of [node1, node2]) {
      await cluster.connectNode(node);
      const runDir = path.join(dir, `run-${node.index}`);
      const agent = startMeshAgent(topo, node, collector, {
        pods: [],
        runDir,
        readyTimeoutMs: 60_000, // a loaded machine starts a node process slowly
        extraArgs: ['--kubernetes', '--kubeconfig', cluster.nodeKubeconfig, '--access-log', 'all', '--identity-linger', '3s'],
      });
      agents.push(agent);
      kubelets.push(new Kubelet({ topo, node, api: cluster.api, agentSocket: path.join(runDir, 'cni.sock'), ipamDir: path.join(dir, 'ipam') }));
    }
    for (const a of agents) {
      await a.ready;
      await a.logs.waitFor((l) => l?.msg === 'workload sources synced', 20_000);
    }
    web = (await kubelets[1]!.createPod('web', { namespace: 'shop', serviceAccount: 'web', labels: { app: 'web' } })).pod;
    echo = await startEchoServer(topo, web, web.ip, 7000);
    client = (await kubelets[0]!.createPod('client', { namespace: 'shop', serviceAccount: 'client' })).pod;
    other = (await kubelets[0]!.createPod('other', { namespace: 'shop', serviceAccount: 'other' })).pod;
    await waitFor(() => registered(node1).length === 2 && registered(node2).length === 1, 10_000, { what: 'the registry' });
  });

  after(async function () {
    for (const a of agents ?? []) await a.stop('SIGKILL');
    for (const n of topo?.nodes ?? []) Datapath.uninstall(n.name);
    await topo?.destroy();
    await cluster?.close();
    await collector?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pods created through the API and CNI talk over HBONE, with identities from their service accounts', async function () {
    const r = await runClient(topo, client, web.ip, 7000, 4096, 10_000);
    assert.ok(r.ok && r.sha256Match, JSON.stringify(r));
    assert.equal(echo.accepts().at(-1)!.remoteAddress, node2.proxyIp, 'delivered by node-2\'s proxy');
    const inbound = await agents[1]!.logs.waitFor<FlowLine>((l) => l?.event === 'flow' && l.direction === 'inbound' && l.source?.ip === client.ip, 5000);
    assert.equal(inbound.source.identity, 'spiffe://cluster.local/ns/shop/sa/client');
    assert.equal(inbound.mtls, true);
    assert.deepEqual(registered(node1), ['client', 'other']);
    assert.deepEqual(collector.running.snapshot().workloads.find((w) => w.name === 'web')?.identity, 'spiffe://cluster.local/ns/shop/sa/web');
    // The collector is the node authorizer here (it watches the pods): every pod's registration and
    // certificate went through it, and none was refused.
    assert.equal(collector.running.kubernetes!.status().pods, 3);
    assert.deepEqual(collector.running.audit.list({ kind: 'trust-refusal' }).map((r) => r.data.reason), []);
  });

  it('relabelling a pod changes which policy selects it (live, no restart)', async function () {
    cluster.api.patch('v1/pods', 'shop', 'web', { metadata: { labels: { app: 'web', tier: 'locked' } } });
    await waitFor(async () => !(await runClient(topo, client, web.ip, 7000, 16, 3000)).ok, 10_000, { what: 'client denied once web is tier=locked' });
    const denied = flows(agents[1]!).filter((f) => f.verdict === 'denied' && f.source.ip === client.ip).at(-1);
    assert.equal(denied?.policy, 'shop/deny-client-to-locked');
    const fromOther = await runClient(topo, other, web.ip, 7000, 16, 5000);
    assert.ok(fromOther.ok, 'the policy selects by the caller\'s identity (service account other is not denied)');
    cluster.api.patch('v1/pods', 'shop', 'web', { metadata: { labels: { tier: null } } });
    await waitFor(async () => (await runClient(topo, client, web.ip, 7000, 16, 3000)).ok, 10_000, { what: 'client allowed again' });
  });

  it('an AuthorizationPolicy created in the Kubernetes API is enforced by the agents; deleting it lifts it', async function () {
    cluster.api.create('security.istio.io/v1/authorizationpolicies', {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'web-deny-other', namespace: 'shop' },
      spec: { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/other'] } }] }] },
    });
    await waitFor(async () => !(await runClient(topo, other, web.ip, 7000, 16, 3000)).ok, 10_000, { what: 'other denied by the policy from the API' });
    const denied = flows(agents[1]!).filter((f) => f.verdict === 'denied' && f.source.ip === other.ip).at(-1);
    assert.equal(denied?.policy, 'shop/web-deny-other');
    assert.ok((await runClient(topo, client, web.ip, 7000, 16, 5000)).ok, 'client is not selected by it');
    cluster.api.delete('security.istio.io/v1/authorizationpolicies', 'shop', 'web-deny-other');
    await waitFor(async () => (await runClient(topo, other, web.ip, 7000, 16, 3000)).ok, 10_000, { what: 'other allowed again' });
  });

  it('deleting a pod unenrolls it on its node and takes it out of the registry', async function () {
    const { pod } = await kubelets[1]!.createPod('temp', { namespace: 'shop', serviceAccount: 'temp' });
    await waitFor(() => registered(node2).includes('temp'), 5000, { what: 'temp registered' });
    assert.ok(enrolledIps(node2).includes(pod.ip));
    cluster.api.delete('v1/pods', 'shop', 'temp');
    await waitFor(() => !enrolledIps(node2).includes(pod.ip) && !registered(node2).includes('temp'), 5000, { what: 'temp unenrolled and unregistered' });
    assert.ok((await kubelets[1]!.deletePod(pod)).ok, 'the runtime\'s DEL afterwards succeeds');
  });

  describe('a Service', function () {
    const VIP = '10.96.0.10';
    let local: KubePod;
    let localEcho: EchoServer;
    /** Which endpoint each of `n` connections to the service reached (by the echo servers' accepts). */
    async function spread(n: number): Promise<{ local: number; remote: number; failed: number }> {
      const [l0, r0] = [localEcho.accepts().length, echo.accepts().length];
      let failed = 0;
      for (let i = 0; i < n; i++) if (!(await runClient(topo, client, VIP, 80, 32, 5000)).ok) failed++;
      return { local: localEcho.accepts().length - l0, remote: echo.accepts().length - r0, failed };
    }
    const slice = (readyLocal: boolean, readyRemote: boolean): Record<string, unknown> => ({
      addressType: 'IPv4',
      metadata: { name: 'web-abc12', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      ports: [{ name: 'http', port: 7000, protocol: 'TCP' }],
      endpoints: [
        { addresses: [local.ip], conditions: { ready: readyLocal }, nodeName: node1.name },
        { addresses: [web.ip], conditions: { ready: readyRemote }, nodeName: node2.name },
      ],
    });
    const setSlice = (readyLocal: boolean, readyRemote: boolean): void => {
      const body = slice(readyLocal, readyRemote);
      if (cluster.api.get('discovery.k8s.io/v1/endpointslices', 'shop', 'web-abc12')) cluster.api.patch('discovery.k8s.io/v1/endpointslices', 'shop', 'web-abc12', { endpoints: body.endpoints });
      else cluster.api.create('discovery.k8s.io/v1/endpointslices', body);
    };
    const readyIn = (): string[] =>
      collector.running.snapshot().services?.find((s) => s.name === 'web')?.endpoints.filter((e) => e.ready).map((e) => e.ip).sort() ?? [];

    before(async function () {
      local = (await kubelets[0]!.createPod('web-local', { namespace: 'shop', serviceAccount: 'web', labels: { app: 'web' } })).pod;
      localEcho = await startEchoServer(topo, local, local.ip, 7000);
      cluster.api.create('v1/services', { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: VIP, ports: [{ name: 'http', port: 80, targetPort: 'http' }], selector: { app: 'web' } } });
      setSlice(true, true);
      await waitFor(() => readyIn().length === 2, 10_000, { what: 'the service in the registry' });
    });

    it('a connection to the virtual IP reaches a ready endpoint on either node (this node\'s directly, the other\'s over HBONE)', async function () {
      await waitFor(async () => (await runClient(topo, client, VIP, 80, 16, 3000)).ok, 10_000, { what: 'the agents to have the service' });
      const r = await spread(8);
      assert.deepEqual(r, { local: 4, remote: 4, failed: 0 }, 'round robin over both ready endpoints');
      assert.equal(localEcho.accepts().at(-1)!.remoteAddress, node1.proxyIp);
      assert.equal(echo.accepts().at(-1)!.remoteAddress, node2.proxyIp);
      const hbone = flows(agents[1]!).filter((f) => f.direction === 'inbound' && f.source.ip === client.ip).at(-1);
      assert.equal(hbone?.source.identity, 'spiffe://cluster.local/ns/shop/sa/client', 'the endpoint\'s node checked who called');
    });

    it('an endpoint that turns unready gets no new connections; with none ready the connection is refused', async function () {
      setSlice(true, false);
      await waitFor(() => readyIn().join() === local.ip, 10_000, { what: 'web (node-2) unready in the registry' });
      await new Promise((r) => setTimeout(r, 300)); // the registry push to the agents
      assert.deepEqual(await spread(6), { local: 6, remote: 0, failed: 0 });
      setSlice(false, false);
      await waitFor(() => readyIn().length === 0, 10_000, { what: 'no ready endpoint' });
      await waitFor(async () => !(await runClient(topo, client, VIP, 80, 16, 3000)).ok, 10_000, { what: 'the connection refused' });
      const refused = flows(agents[0]!).filter((f) => f.verdict === 'error' && f.source.ip === client.ip).at(-1) as FlowLine & { reason?: string };
      assert.equal(refused?.reason, 'no-ready-endpoint');
      setSlice(true, true);
      await waitFor(async () => (await spread(2)).failed === 0, 10_000, { what: 'the service back' });
    });
  });

  it(`${CYCLES} create/delete cycles leave no map entry, pin, registry entry, certificate or record behind`, async function () {
    const pinsBefore = fs.readdirSync(pinDirFor(node1.name)).sort();
    const mapBefore = enrolledIps(node1);
    const registryBefore = registered(node1);
    const recordFile = sandboxStateFile(path.join(dir, 'run-1'), node1.name);
    const recorded = (): string[] => (JSON.parse(fs.readFileSync(recordFile, 'utf8')) as { sandboxes: Array<{ name: string }> }).sandboxes.map((s) => s.name).sort();
    const recordBefore = recorded();
    const addMs: number[] = [];
    const started = Date.now();
    // CYCLE_LANES cycles at a time, as a kubelet runs its pods' sandboxes side by side: each
    // cycle is independent (its own name, sandbox and address), and all of them must leave
    // nothing. A failed cycle stops the others from starting new ones, then fails the test.
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let i = next++; i < CYCLES; i = next++) {
        try {
          const { pod, add } = await kubelets[0]!.createPod(`cyc-${i}`, { namespace: 'shop', serviceAccount: 'cycle' });
          assert.ok(add.ok, JSON.stringify(add.steps.map((s) => [s.type, s.run.stdout])));
          addMs[i] = add.steps.find((s) => s.type === 'palisade-cni')!.run.ms;
          assert.ok((await kubelets[0]!.deletePod(pod)).ok);
        } catch (err) {
          next = CYCLES;
          throw err;
        }
      }
    };
    for (const r of await Promise.allSettled(Array.from({ length: CYCLE_LANES }, lane))) if (r.status === 'rejected') throw r.reason;
    const seconds = (Date.now() - started) / 1000;
    assert.deepEqual(enrolledIps(node1), mapBefore);
    assert.deepEqual(fs.readdirSync(pinDirFor(node1.name)).sort(), pinsBefore);
    await waitFor(() => registered(node1).join() === registryBefore.join(), 5000, { what: `the registry back to ${registryBefore.join()} (${registered(node1).join()})` });
    assert.ok((await metrics(node1)).includes('sa/cycle'), 'the churned service account\'s certificate lingers for the next pod (--identity-linger 3s)');
    await waitFor(async () => !(await metrics(node1)).includes('sa/cycle'), 10_000, { what: 'the lingering certificate dropped' });
    assert.ok((await metrics(node1)).includes('identity="spiffe://cluster.local/ns/shop/sa/client"'), 'the metrics list the identities still in use');
    assert.deepEqual(recorded(), recordBefore);
    const first = addMs[0]!;
    addMs.sort((a, b) => a - b);
    console.log(
      `      ${CYCLES} cycles in ${seconds.toFixed(1)} s (${(CYCLES / seconds).toFixed(1)} pods/s, ${CYCLE_LANES} at a time, through the chain);` +
        ` palisade-cni ADD → enrolled p50 ${percentile(addMs, 50).toFixed(1)} ms p99 ${percentile(addMs, 99).toFixed(1)} ms;` +
        ` the first pod of the service account (new key + CSR) ${first.toFixed(1)} ms`,
    );
  });
});
