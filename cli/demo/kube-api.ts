/**
 * The demo's Kubernetes control plane, run as a daemon by `palisade demo up`: the Kubernetes API
 * double of test/harness (in memory, HTTPS with a bearer token of its own), also on a Unix socket
 * that each node reaches at https://127.0.0.1:6443 through its forwarder
 * (test/fixtures/tcp-unix-bridge.js), with the namespace `default` labelled into the mesh.
 * `palisade demo` plays the kubelet against it (./demo-kube.ts); the agents watch it.
 *
 *   node kube-api.js DIR      writes DIR/kubeconfig-host and DIR/kubeconfig-node, serves
 *                             DIR/kube-api.sock, prints {"event":"listening"}; SIGTERM stops it
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { MESH_ENABLED, MESH_LABEL } from '../../agent/workload-sources/kubernetes/pod-workload';
import { KubeApiDouble } from '../../test/harness/kube-api-double';
import { NODE_API_PORT } from '../../test/harness/kube-cluster';

export const KUBE_API_SOCKET = 'kube-api.sock';
export const HOST_KUBECONFIG = 'kubeconfig-host';
export const NODE_KUBECONFIG = 'kubeconfig-node';

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: kube-api.js DIR\n');
    process.exit(2);
  }
  const api = await KubeApiDouble.start({ token: randomBytes(24).toString('base64url') });
  await api.listenUnix(path.join(dir, KUBE_API_SOCKET));
  api.patch('v1/namespaces', '', 'default', { metadata: { labels: { [MESH_LABEL]: MESH_ENABLED } } });
  api.writeKubeconfig(path.join(dir, HOST_KUBECONFIG));
  api.writeKubeconfig(path.join(dir, NODE_KUBECONFIG), `https://127.0.0.1:${NODE_API_PORT}`);
  const stop = (): void => {
    void api.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(`${JSON.stringify({ event: 'listening', url: api.url, socket: path.join(dir, KUBE_API_SOCKET) })}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${JSON.stringify({ event: 'error', reason: err instanceof Error ? err.message : String(err) })}\n`);
    process.exit(1);
  });
}
