/**
 * A full node through the real CNI chain (issue #20 item 4): a real agent (`--kubernetes
 * --max-pods 1`, real eBPF) and pods created the way a kubelet creates them (the API double, a
 * sandbox, bridge + host-local, then palisade-cni). The pod beyond the node's pod maps gets an ADD
 * that fails with the one line the agent logs; it is not enrolled and nothing of it leaves
 * unredirected; its DEL succeeds and, the first pod gone, the next pod is enrolled.
 */
import { strict as assert } from 'node:assert';
import { CniErrorCode } from '../../../agent/cni/protocol';
import { Datapath } from '../../../agent/datapath/datapath';
import { requirePrivileges, runClient, startAgentProcess, type AgentProcess } from '../../harness';
import { startKubeNode, type KubeNode } from '../../harness/kube-node';

describe('A full node through the real CNI chain (real agent, real eBPF, API double)', function () {
  this.timeout(300_000);
  let kn: KubeNode;
  let agent: AgentProcess;

  const enrolledIps = (): string[] => {
    const dp = Datapath.open(kn.node.name);
    try {
      return dp.pods().map((p) => p.ip ?? '').sort();
    } finally {
      dp.close();
    }
  };

  before(async function () {
    requirePrivileges();
    kn = await startKubeNode('mapscni', ['shop']);
    agent = startAgentProcess(kn.topo, kn.node, { pods: [], runDir: kn.runDir, extraArgs: [...kn.agentArgs(), '--max-pods', '1'] });
    await agent.ready;
    await agent.logs.waitFor((l) => l?.msg === 'workload sources synced', 20_000);
  });

  after(async function () {
    await agent?.stop('SIGKILL');
    await kn?.destroy();
  });

  it('the ADD beyond --max-pods fails with one line, nothing of that pod gets out, and it fits once the first pod is gone', async function () {
    const { pod: first, add: ok } = await kn.kubelet.createPod('first', { namespace: 'shop' });
    assert.ok(ok.ok, JSON.stringify(ok.steps.map((s) => [s.type, s.run.stdout, s.run.stderr])));

    const { pod: second, add } = await kn.kubelet.createPod('second', { namespace: 'shop' });
    const ours = add.steps.find((s) => s.type === 'palisade-cni')!;
    assert.equal(add.ok, false);
    assert.equal(ours.run.stdout.trim().split('\n').length, 1, 'one CNI error line');
    assert.equal((ours.run.json as { code: number }).code, CniErrorCode.ENROLL_FAILED);
    assert.equal((ours.run.json as { msg: string }).msg, 'pod shop/second: not enrolled: the node is full: 1 of 1 pods enrolled (--max-pods 1); it has no network through this node until a pod leaves');
    assert.deepEqual(enrolledIps(), [first.ip]);
    // The runtime would tear the sandbox down; until it does, nothing of it leaves around the proxy.
    const r = await runClient(kn.topo, second, kn.ext.ip, 7000, 16, 2000);
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.equal(kn.echo.accepts().filter((a) => a.remoteAddress === second.ip).length, 0, 'the host never saw the refused pod');
    await agent.logs.waitFor((l) => l?.event === 'flow' && l.reason === 'node-pods-full' && l.source?.workload === 'second', 5000);

    assert.ok((await kn.kubelet.deletePod(second)).ok, 'DEL of the refused pod succeeds');
    assert.ok((await kn.kubelet.deletePod(first)).ok);
    const { pod: third, add: again } = await kn.kubelet.createPod('third', { namespace: 'shop' });
    assert.ok(again.ok, JSON.stringify(again.steps.map((s) => [s.type, s.run.stdout, s.run.stderr])));
    assert.deepEqual(enrolledIps(), [third.ip]);
    const through = await runClient(kn.topo, third, kn.ext.ip, 7000, 64, 5000);
    assert.ok(through.ok, JSON.stringify(through));
    assert.equal(kn.echo.accepts().at(-1)?.remoteAddress, kn.node.underlayIp, 'the host saw the node (the proxy), not the pod');
    await kn.kubelet.deletePod(third);
  });
});
