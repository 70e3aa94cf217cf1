/**
 * The DaemonSet's install-cni step for real: the `palisade cni install` command line of
 * deploy/kubernetes/agent-daemonset.yaml (its host paths mapped into a temp "host"), run through the
 * real CLI against a node whose CNI directory holds only the cluster's network configuration
 * (Debian's bridge + host-local). A kubelet that then reads that directory as a runtime does gets
 * palisade-cni last in its chain, and the pod is enrolled by a real agent (--kubernetes, API double)
 * before ADD returns; installing again changes nothing; when the network plugin rewrites its file the
 * running agent (--cni-conf-dir) puts palisade-cni back; uninstalling once the agent has stopped
 * restores the configuration and removes the binary, and a pod then starts without asking the agent.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Datapath } from '../../../agent/datapath/datapath';
import { requirePrivileges, startAgentProcess, sweepStale, tempDir, Topology, waitFor, type AgentProcess, type NodeNs } from '../../harness';
import { cliPath } from '../../harness/agent';
import { palisadeCniPath } from '../../harness/cni-runtime';
import { startKubeCluster, type KubeCluster } from '../../harness/kube-cluster';
import { Kubelet } from '../../harness/kubelet';

interface InitContainer {
  name: string;
  command: string[];
  volumeMounts: Array<{ name: string; mountPath: string }>;
}

/** The install-cni init container of the DaemonSet, and where each of its mounts comes from on the host. */
function installCniStep(): { command: string[]; hostPathOf: Map<string, string> } {
  const file = path.resolve(__dirname, '../../../../deploy/kubernetes/agent-daemonset.yaml');
  const ds = parseAllDocuments(fs.readFileSync(file, 'utf8'))[0]!.toJS() as {
    spec: { template: { spec: { initContainers: InitContainer[]; volumes: Array<{ name: string; hostPath?: { path: string } }> } } };
  };
  const pod = ds.spec.template.spec;
  const init = pod.initContainers.find((c) => c.name === 'install-cni')!;
  const hostPathOf = new Map(init.volumeMounts.map((m) => [m.mountPath, pod.volumes.find((v) => v.name === m.name)!.hostPath!.path]));
  return { command: init.command, hostPathOf };
}

describe('the DaemonSet\'s install-cni step on a node (real CLI, real CNI chain, real agent; API double)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let node: NodeNs;
  let cluster: KubeCluster;
  let agent: AgentProcess;
  let dir: string;
  let runDir: string;
  let hostRoot: string;
  let confDir: string;
  let binDir: string;
  let original: string;

  /** The init container's command line, its paths mapped into hostRoot and the agent's run dir. */
  function runInstallStep(verb: 'install' | 'uninstall'): string {
    const { command, hostPathOf } = installCniStep();
    assert.deepEqual(command.slice(0, 3), ['palisade', 'cni', 'install']);
    const mapped = command.slice(3).map((arg) => {
      for (const [at, hostPath] of hostPathOf) if (arg === at || arg.startsWith(`${at}/`)) return path.join(hostRoot, hostPath, arg.slice(at.length));
      // The agent's --run-dir is /run/palisade on the host; here it is the test's run dir.
      if (arg.startsWith('/run/palisade/')) return path.join(runDir, arg.slice('/run/palisade/'.length));
      return arg;
    });
    const args = verb === 'install' ? [...mapped, '--plugin', palisadeCniPath()] : mapped.filter((a, i) => a.startsWith('--cni-') || mapped[i - 1]?.startsWith('--cni-'));
    const r = spawnSync(process.execPath, [cliPath(), 'cni', verb, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }

  before(async function () {
    requirePrivileges();
    sweepStale();
    dir = tempDir('cni-install');
    runDir = path.join(dir, 'run');
    hostRoot = path.join(dir, 'host');
    confDir = path.join(hostRoot, 'etc/cni/net.d');
    binDir = path.join(hostRoot, 'opt/cni/bin');
    fs.mkdirSync(confDir, { recursive: true });
    fs.mkdirSync(binDir, { recursive: true });
    topo = await Topology.create({ label: 'cniinst', nodes: 1 });
    node = topo.nodes[0]!;
    cluster = await startKubeCluster(topo, dir, { meshNamespaces: ['shop'] });
    await cluster.connectNode(node);
    agent = startAgentProcess(topo, node, { pods: [], runDir, extraArgs: ['--kubernetes', '--kubeconfig', cluster.nodeKubeconfig, '--cni-conf-dir', confDir] });
    await agent.ready;
    await agent.logs.waitFor((l) => l?.msg === 'workload sources synced', 20_000);
    // What the cluster's network plugin wrote: bridge + host-local, no palisade-cni.
    const network = new Kubelet({ topo, node, api: cluster.api, agentSocket: '', ipamDir: path.join(dir, 'ipam') }).networkOnly();
    original = `${JSON.stringify(network, null, 2)}\n`;
    fs.writeFileSync(path.join(confDir, '10-pods.conflist'), original);
    fs.writeFileSync(path.join(confDir, '99-loopback.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'lo', type: 'loopback' }));
  });

  after(async function () {
    await agent?.stop();
    if (node) Datapath.uninstall(node.name);
    await cluster?.close();
    await topo?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('puts palisade-cni last in the runtime\'s configuration; a pod started through it is enrolled before ADD returns', async function () {
    const out = runInstallStep('install');
    assert.match(out, /^palisade-cni is now last in .*10-pods\.conflist; plugin in /);
    assert.equal(fs.statSync(path.join(binDir, 'palisade-cni')).mode & 0o777, 0o755);
    const kubelet = new Kubelet({ topo, node, api: cluster.api, agentSocket: '', ipamDir: path.join(dir, 'ipam'), cniDirs: { confDir, binDir } });
    assert.deepEqual(kubelet.chain.conflist.plugins.map((p) => p.type), ['bridge', 'palisade-cni']);
    const { pod, add } = await kubelet.createPod('web', { namespace: 'shop', serviceAccount: 'web' });
    assert.ok(add.ok, JSON.stringify(add.steps.map((s) => s.run.stdout || s.run.stderr)));
    assert.ok(Datapath.open(node.name).pods().some((p) => p.ip === pod.ip), 'enrolled when ADD returned');
    const del = await kubelet.deletePod(pod);
    assert.ok(del.ok);
    assert.ok(!Datapath.open(node.name).pods().some((p) => p.ip === pod.ip), 'unenrolled by DEL');
  });

  it('running the step again (every agent pod start) changes nothing', function () {
    const file = path.join(confDir, '10-pods.conflist');
    const before = fs.readFileSync(file, 'utf8');
    const mtime = fs.statSync(file).mtimeMs;
    assert.match(runInstallStep('install'), /already lists palisade-cni as configured/);
    assert.equal(fs.readFileSync(file, 'utf8'), before);
    assert.equal(fs.statSync(file).mtimeMs, mtime, 'not rewritten');
  });

  it('the network plugin rewrites its configuration: the running agent puts palisade-cni back, and pods are enrolled again', async function () {
    const file = path.join(confDir, '10-pods.conflist');
    fs.writeFileSync(file, original);
    const types = (): string[] => (JSON.parse(fs.readFileSync(file, 'utf8')) as { plugins: Array<{ type: string }> }).plugins.map((p) => p.type);
    await waitFor(() => types().includes('palisade-cni'), 5000, { what: 'palisade-cni back in the chain' });
    await agent.logs.waitFor((l) => (l as { event?: string } | undefined)?.event === 'cni-chain-restored', 5000);
    const kubelet = new Kubelet({ topo, node, api: cluster.api, agentSocket: '', ipamDir: path.join(dir, 'ipam'), cniDirs: { confDir, binDir } });
    assert.deepEqual(kubelet.chain.conflist.plugins.map((p) => p.type), ['bridge', 'palisade-cni']);
    const { pod, add } = await kubelet.createPod('web2', { namespace: 'shop', serviceAccount: 'web' });
    assert.ok(add.ok);
    assert.ok(Datapath.open(node.name).pods().some((p) => p.ip === pod.ip), 'enrolled when ADD returned');
    await kubelet.deletePod(pod);
  });

  it('uninstall, once the agent has stopped, restores the network configuration and removes the binary; pods then start without the agent', async function () {
    await agent.stop();
    assert.match(runInstallStep('uninstall'), /palisade-cni removed from .*10-pods\.conflist/);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(confDir, '10-pods.conflist'), 'utf8')), JSON.parse(original));
    assert.ok(!fs.existsSync(path.join(binDir, 'palisade-cni')));
    assert.deepEqual(fs.readdirSync(confDir).sort(), ['10-pods.conflist', '99-loopback.conf'], 'no temp file left');
    const kubelet = new Kubelet({ topo, node, api: cluster.api, agentSocket: '', ipamDir: path.join(dir, 'ipam'), cniDirs: { confDir, binDir } });
    const { pod, add } = await kubelet.createPod('after', { namespace: 'shop' });
    assert.ok(add.ok, 'a pod starts with no agent once palisade-cni is out of the chain');
    await kubelet.deletePod(pod);
  });
});
