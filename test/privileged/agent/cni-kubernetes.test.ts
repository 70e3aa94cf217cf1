/**
 * Kubernetes enrollment through the real CNI chain on one node: a real agent (`--kubernetes`,
 * real eBPF) watching the Kubernetes API double, and pods created the way a kubelet creates them
 * (the Pod object, a sandbox, Debian's bridge + host-local, then palisade-cni). The pod is enrolled
 * before ADD returns (its first connect is redirected); DEL unenrolls; with the agent down ADD
 * fails with one CNI error line and DEL succeeds; a restarted agent reconciles what happened while
 * it was away; a second agent takes the node over (an upgrade) without losing a pod. Prints CNI ADD → enrolled times and the churn the node sustains.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { CniErrorCode } from '../../../agent/cni/protocol';
import { Datapath } from '../../../agent/datapath/datapath';
import { sandboxStateFile } from '../../../agent/workload-sources/kubernetes/sandbox-store';
import {
  requirePrivileges,
  runClient,
  startAgentProcess,
  Topology,
  waitFor,
  type AgentProcess,
  type EchoServer,
  type ExternalHost,
  type NodeNs,
} from '../../harness';
import type { KubeCluster } from '../../harness/kube-cluster';
import { startKubeNode, type KubeNode } from '../../harness/kube-node';
import type { Kubelet, KubePod } from '../../harness/kubelet';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('Kubernetes enrollment through the real CNI chain (real agent, real eBPF, API double)', function () {
  this.timeout(300_000);
  let kn: KubeNode;
  let topo: Topology;
  let node: NodeNs;
  let ext: ExternalHost;
  let echo: EchoServer;
  let cluster: KubeCluster;
  let agent: AgentProcess;
  let kubelet: Kubelet;
  let runDir: string;

  const enrolledIps = (): string[] => Datapath.open(node.name).pods().map((p) => p.ip ?? '').sort();
  const agentArgs = (): string[] => kn.agentArgs();

  async function startAgent(): Promise<AgentProcess> {
    const a = startAgentProcess(topo, node, { pods: [], runDir, extraArgs: agentArgs() });
    await a.ready;
    await a.logs.waitFor((l) => l?.msg === 'workload sources synced', 20_000);
    return a;
  }

  /** Connect from the pod to the host outside the mesh: who does the host see? */
  async function firstConnect(pod: KubePod): Promise<string | undefined> {
    const before = echo.accepts().length;
    const r = await runClient(topo, pod, ext.ip, 7000, 64, 5000);
    assert.ok(r.ok, JSON.stringify(r));
    return echo.accepts()[before]?.remoteAddress;
  }

  before(async function () {
    requirePrivileges();
    kn = await startKubeNode('cnik8s', ['shop']);
    ({ topo, node, ext, echo, cluster, kubelet, runDir } = kn);
    cluster.api.create('v1/namespaces', { metadata: { name: 'plain' } });
    agent = await startAgent();
  });

  after(async function () {
    await agent?.stop('SIGKILL');
    await kn?.destroy();
  });

  it('ADD: the pod is enrolled before ADD returns — its very first connect is redirected to the proxy', async function () {
    const { pod, add } = await kubelet.createPod('client-1', { namespace: 'shop', serviceAccount: 'client' });
    assert.ok(add.ok, JSON.stringify(add.steps.map((s) => [s.type, s.run.stdout, s.run.stderr])));
    const [bridge, ours] = add.steps;
    assert.deepEqual(ours!.run.json, bridge!.run.json, 'palisade-cni passes the result through');
    assert.equal(await firstConnect(pod), node.underlayIp, 'the host saw the node (the proxy), not the pod');
    assert.ok(enrolledIps().includes(pod.ip));
    const flow = await agent.logs.waitFor<{ source: { workload: string; identity?: string } }>((l) => l?.event === 'flow' && l.source?.ip === pod.ip, 5000);
    assert.equal(flow.source.workload, 'client-1');
    assert.ok((await kubelet.chain.check({ containerId: pod.containerId, netns: pod.netnsPath, args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: 'client-1', K8S_POD_UID: pod.uid } })).ok, 'CHECK passes');
  });

  it('a pod outside the mesh starts without enrollment: its connect goes out directly', async function () {
    const { pod, add } = await kubelet.createPod('db-1', { namespace: 'plain' });
    assert.ok(add.ok);
    assert.equal(await firstConnect(pod), pod.ip);
    assert.ok(!enrolledIps().includes(pod.ip));
    await kubelet.deletePod(pod);
  });

  it('DEL unenrolls; deleting a Pod object unenrolls it too', async function () {
    const { pod } = await kubelet.createPod('short-1', { namespace: 'shop' });
    assert.ok(enrolledIps().includes(pod.ip));
    const del = await kubelet.deletePod(pod);
    assert.ok(del.ok);
    assert.ok(!enrolledIps().includes(pod.ip));
    const { pod: other } = await kubelet.createPod('short-2', { namespace: 'shop' });
    cluster.api.delete('v1/pods', 'shop', 'short-2');
    await waitFor(() => !enrolledIps().includes(other.ip), 5000, { what: 'short-2 unenrolled after its Pod was deleted' });
    await kubelet.deletePod(other);
  });

  it('refuses with one CNI error line and enrolls nothing: an unknown pod, the API away', async function () {
    const ghost = await topo.addBarePod(node, 'ghost');
    const spec = { containerId: 'ghost-sandbox', netns: ghost.netnsPath, args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: 'ghost', K8S_POD_UID: '11111111-2222-4333-8444-555555555555' } };
    const r = await kubelet.chain.add(spec);
    const ours = r.steps.find((s) => s.type === 'palisade-cni')!;
    assert.equal(r.ok, false);
    assert.equal(ours.run.stdout.trim().split('\n').length, 1);
    assert.equal((ours.run.json as { code: number }).code, CniErrorCode.ENROLL_FAILED);
    assert.match((ours.run.json as { msg: string }).msg, /pod shop\/ghost does not exist in the Kubernetes API/);
    assert.ok((await kubelet.chain.del(spec)).ok);

    const remove = cluster.api.addFault({ watch: true, hang: true });
    cluster.api.dropWatches('reset');
    const removeGet = cluster.api.addFault({ method: 'GET', watch: false, hang: true });
    const { pod, add } = await kubelet.createPod('unseen-1', { namespace: 'shop' });
    removeGet();
    remove();
    const mine = add.steps.find((s) => s.type === 'palisade-cni')!;
    assert.equal(add.ok, false);
    assert.equal((mine.run.json as { code: number }).code, CniErrorCode.TRY_AGAIN_LATER);
    assert.match((mine.run.json as { msg: string }).msg, /get pod shop\/unseen-1: no answer from the Kubernetes API within \d+ ms/);
    assert.ok(!enrolledIps().includes(pod.ip === '' ? '-' : pod.ip));
    assert.equal(enrolledIps().length, 1, 'only client-1');
    await kubelet.deletePod(pod);
    await topo.removePod(ghost);
  });

  it('agent down: ADD fails with one CNI error line, DEL succeeds; the restarted agent reconciles what happened meanwhile', async function () {
    const { pod: stays } = await kubelet.createPod('stays-1', { namespace: 'shop' });
    const { pod: goes } = await kubelet.createPod('goes-1', { namespace: 'shop' });
    assert.deepEqual(enrolledIps().filter((ip) => ip === stays.ip || ip === goes.ip).length, 2);
    await agent.stop('SIGTERM');

    const del = await kubelet.deletePod(goes);
    assert.ok(del.ok, 'DEL succeeds with the agent down');
    assert.match(del.steps.find((s) => s.type === 'palisade-cni')!.run.stderr, /DEL succeeds anyway/);
    const { pod: late, add } = await kubelet.createPod('late-1', { namespace: 'shop' });
    const ours = add.steps.find((s) => s.type === 'palisade-cni')!;
    assert.equal(add.ok, false, 'a pod never starts outside the mesh');
    assert.equal(ours.run.stdout.trim().split('\n').length, 1);
    assert.equal((ours.run.json as { code: number }).code, CniErrorCode.TRY_AGAIN_LATER);
    assert.ok(enrolledIps().includes(goes.ip), 'the pinned entry of the deleted pod is still there while no agent runs');

    agent = await startAgent();
    assert.ok(enrolledIps().includes(stays.ip));
    assert.ok(!enrolledIps().includes(goes.ip), 'the pod deleted while the agent was away is unenrolled');
    assert.equal(await firstConnect(stays), node.underlayIp, 'a pod enrolled before the restart is carried again');
    const retried = await kubelet.retry(late);
    assert.ok(retried.ok, 'the kubelet\'s retry after the agent is back');
    assert.equal(await firstConnect(late), node.underlayIp);
    await kubelet.deletePod(late);
    await kubelet.deletePod(stays);
  });

  it('upgrade: a second agent takes the node over (the DaemonSet\'s surge pod); enrolled pods stay, new ADDs reach it, the first drains and exits', async function () {
    const { pod: before, add } = await kubelet.createPod('before-upgrade', { namespace: 'shop' });
    assert.ok(add.ok);
    const old = agent;
    const successor = startAgentProcess(topo, node, { pods: [], runDir, extraArgs: [...agentArgs(), '--drain-timeout', '2s'] });
    await successor.ready;
    await successor.logs.waitFor((l) => (l as { msg?: string } | undefined)?.msg === 'took the node over: the predecessor drains', 30_000);
    agent = successor;
    await old.exited;
    assert.ok(enrolledIps().includes(before.ip), 'a pod enrolled by the first agent stays enrolled');
    assert.equal(await firstConnect(before), node.underlayIp, 'and is carried by the new one');
    const { pod: after, add: add2 } = await kubelet.createPod('after-upgrade', { namespace: 'shop' });
    assert.ok(add2.ok, 'ADD answered by the new agent (it took the CNI socket over)');
    assert.ok(enrolledIps().includes(after.ip));
    assert.equal(await firstConnect(after), node.underlayIp);
    assert.ok((await kubelet.deletePod(before)).ok);
    assert.ok(!enrolledIps().includes(before.ip), 'DEL through the new agent unenrolls');
    await kubelet.deletePod(after);
  });

  it('churn: pods created and deleted through the chain leave no map entry and no record behind; figures', async function () {
    const before = enrolledIps();
    const addMs: number[] = [];
    const agentMs: number[] = [];
    const cycles = 40;
    const started = Date.now();
    for (let i = 0; i < cycles; i++) {
      const { pod, add } = await kubelet.createPod(`churn-${i}`, { namespace: 'shop' });
      assert.ok(add.ok, JSON.stringify(add.steps.map((s) => [s.type, s.run.stdout])));
      addMs.push(add.steps.find((s) => s.type === 'palisade-cni')!.run.ms);
      assert.ok((await kubelet.deletePod(pod)).ok);
    }
    const seconds = (Date.now() - started) / 1000;
    assert.deepEqual(enrolledIps(), before);
    const record = JSON.parse(fs.readFileSync(sandboxStateFile(runDir, node.name), 'utf8')) as { sandboxes: Array<{ name: string }> };
    assert.deepEqual(record.sandboxes.map((s) => s.name).filter((n) => n.startsWith('churn-')), []);
    for (const l of agent.logs.lines as Array<{ msg?: string; command?: string; pod?: string; ms?: number }>) {
      if (l.msg === 'CNI ADD done' && l.pod?.startsWith('shop/churn-')) agentMs.push(l.ms!);
    }
    addMs.sort((a, b) => a - b);
    agentMs.sort((a, b) => a - b);
    console.log(
      `      ${cycles} create+delete cycles in ${seconds.toFixed(1)} s (${(cycles / seconds).toFixed(1)} pods/s, sequential, chain included);` +
        ` palisade-cni ADD (plugin + agent, enrolled at return) p50 ${percentile(addMs, 50).toFixed(1)} ms p99 ${percentile(addMs, 99).toFixed(1)} ms;` +
        ` agent side p50 ${percentile(agentMs, 50)} ms p99 ${percentile(agentMs, 99)} ms`,
    );
  });
});
