/**
 * One node of the Kubernetes API double with a host outside the mesh: a Topology of one node, an
 * echo server on an external host, the API double connected to the node, and a kubelet double that
 * creates pods through the real CNI chain into the agent's socket. The suites start the agent
 * themselves (`agentArgs` are the flags that point it at the API).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../agent/datapath/datapath';
import { startEchoServer, type EchoServer } from './fixtures';
import { startKubeCluster, type KubeCluster } from './kube-cluster';
import { Kubelet } from './kubelet';
import { tempDir } from './agent';
import { sweepStale } from './cleanup';
import type { ExternalHost, NodeNs } from './topology';
import { Topology } from './topology';

export interface KubeNode {
  dir: string;
  runDir: string;
  topo: Topology;
  node: NodeNs;
  ext: ExternalHost;
  /** an echo server on ext:7000 */
  echo: EchoServer;
  cluster: KubeCluster;
  kubelet: Kubelet;
  /** `--kubernetes --kubeconfig <the node's> --access-log all` */
  agentArgs(): string[];
  /** Everything down: the node's data path, the topology, the API double, the directory. */
  destroy(): Promise<void>;
}

export async function startKubeNode(label: string, meshNamespaces: string[]): Promise<KubeNode> {
  sweepStale();
  const dir = tempDir(label);
  const runDir = path.join(dir, 'run');
  const topo = await Topology.create({ label, nodes: 1 });
  const node = topo.nodes[0]!;
  let cluster: KubeCluster | undefined;
  const destroy = async (): Promise<void> => {
    Datapath.uninstall(node.name);
    await topo.destroy();
    await cluster?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ext = await topo.addExternalHost('ext');
    const echo = await startEchoServer(topo, ext, ext.ip, 7000);
    cluster = await startKubeCluster(topo, dir, { meshNamespaces });
    await cluster.connectNode(node);
    const c = cluster;
    const kubelet = new Kubelet({ topo, node, api: c.api, agentSocket: path.join(runDir, 'cni.sock'), ipamDir: path.join(dir, 'ipam') });
    return { dir, runDir, topo, node, ext, echo, cluster: c, kubelet, agentArgs: () => ['--kubernetes', '--kubeconfig', c.nodeKubeconfig, '--access-log', 'all'], destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}
