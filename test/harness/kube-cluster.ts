/**
 * A Kubernetes control plane for privileged tests and the demo: the API double on the host (HTTPS,
 * a token, also on a Unix socket), reached from each node's network namespace at
 * https://127.0.0.1:6443 through a small forwarder (test/fixtures/tcp-unix-bridge.js) — the way a
 * node reaches its API server — with a kubeconfig file for the agents.
 */
import * as path from 'node:path';
import { fixturePath, JsonLines } from './fixtures';
import { KubeApiDouble } from './kube-api-double';
import type { NodeNs, Topology } from './topology';

export const NODE_API_PORT = 6443;

export interface KubeCluster {
  api: KubeApiDouble;
  /** Kubeconfig for processes inside node namespaces (server https://127.0.0.1:6443). */
  nodeKubeconfig: string;
  /** Kubeconfig for processes on the host (the collector, tests). */
  hostKubeconfig: string;
  /** Make `node` able to reach the API (idempotent per node). */
  connectNode(node: NodeNs): Promise<void>;
  close(): Promise<void>;
}

export async function startKubeCluster(topo: Topology, dir: string, opts: { meshNamespaces?: string[] } = {}): Promise<KubeCluster> {
  const api = await KubeApiDouble.start({ token: `double-${process.pid}` });
  const socket = path.join(dir, 'kube-api.sock');
  await api.listenUnix(socket);
  for (const ns of opts.meshNamespaces ?? []) api.create('v1/namespaces', { metadata: { name: ns, labels: { 'palisade.dev/mesh': 'enabled' } } });
  const nodeKubeconfig = path.join(dir, 'kubeconfig-node');
  const hostKubeconfig = path.join(dir, 'kubeconfig-host');
  api.writeKubeconfig(nodeKubeconfig, `https://127.0.0.1:${NODE_API_PORT}`);
  api.writeKubeconfig(hostKubeconfig);
  const connected = new Set<string>();
  return {
    api,
    nodeKubeconfig,
    hostKubeconfig,
    async connectNode(node: NodeNs): Promise<void> {
      if (connected.has(node.name)) return;
      const child = topo.spawn(node, process.execPath, [fixturePath('tcp-unix-bridge.js'), '127.0.0.1', String(NODE_API_PORT), socket], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new JsonLines(child.stdout!).waitFor((l) => l?.event === 'listening', 5000);
      connected.add(node.name);
    },
    close: () => api.close(),
  };
}
