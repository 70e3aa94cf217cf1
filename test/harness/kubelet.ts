/**
 * Plays the kubelet of one node for tests and the demo: a pod is a Pod object in the Kubernetes
 * API double (scheduled on the node), a sandbox (a network namespace and a cgroup of the
 * topology), and the node's CNI chain run on it exactly as a container runtime runs it — Debian's
 * `bridge` (onto the node's cni0) with `host-local` addresses, then palisade-cni — before the pod's
 * status gets its IP. Deleting runs DEL, removes the sandbox and deletes the object.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chooseNetworkConfig } from '../../agent/cni/conflist';
import { CniChain, DEBIAN_CNI_DIR, type ChainResult, type Conflist } from './cni-runtime';
import type { NodeNs, PodNs, Topology } from './topology';

type Awaitable<T> = T | Promise<T>;

/**
 * What the kubelet does to Pod objects: the API double in this process (tests), or an API
 * server through a client (the demo: cli/demo/demo-kube.ts). Refs are 'v1/pods'.
 */
export interface KubeletApi {
  create(ref: string, obj: Record<string, unknown>): Awaitable<{ metadata: { uid: string } }>;
  patch(ref: string, namespace: string, name: string, patch: Record<string, unknown>, opts: { status?: boolean }): Awaitable<unknown>;
  get(ref: string, namespace: string, name: string): Awaitable<unknown>;
  delete(ref: string, namespace: string, name: string): Awaitable<unknown>;
}

export interface KubeletOptions {
  topo: Topology;
  node: NodeNs;
  api: KubeletApi;
  /** The agent's CNI socket (`<agent run dir>/cni.sock`). */
  agentSocket: string;
  /** host-local's state directory. */
  ipamDir: string;
  /** palisade-cni's wait for the agent (default 3000 ms). */
  timeoutMs?: number;
  excludeNamespaces?: string[];
  /** First host number host-local hands out in the node's /24 (default 100). */
  rangeStart?: number;
  /** The node's CNI directories, as a runtime reads them (see nodeChain), instead of the built-in chain. */
  cniDirs?: { confDir: string; binDir: string };
}

export interface PodSpec {
  namespace?: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubePod extends PodNs {
  uid: string;
  namespace: string;
  containerId: string;
}

export class Kubelet {
  readonly chain: CniChain;

  constructor(private readonly opts: KubeletOptions) {
    this.chain = opts.cniDirs
      ? new CniChain(readNodeConflist(opts.cniDirs.confDir), { netns: opts.node.netnsPath, cniPath: [opts.cniDirs.binDir, DEBIAN_CNI_DIR] })
      : new CniChain(this.conflist(), { netns: opts.node.netnsPath });
  }

  /** The chain without palisade-cni: what the cluster's network plugin would have written. */
  networkOnly(): Conflist {
    const c = this.conflist();
    return { ...c, plugins: c.plugins.filter((p) => p.type !== 'palisade-cni') };
  }

  conflist(): Conflist {
    const { node } = this.opts;
    const net = node.podCidr.split('/')[0]!.split('.').slice(0, 3).join('.');
    const start = this.opts.rangeStart ?? 100;
    return {
      cniVersion: '1.0.0',
      name: 'palisade-pods',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: node.podCidr, rangeStart: `${net}.${start}`, rangeEnd: `${net}.250`, gateway: node.proxyIp }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: path.join(this.opts.ipamDir, node.name),
          },
        },
        { type: 'palisade-cni', agentSocket: this.opts.agentSocket, timeoutMs: this.opts.timeoutMs ?? 3000, excludeNamespaces: this.opts.excludeNamespaces ?? ['kube-system'] },
      ],
    };
  }

  /** The Pod object, its sandbox and ADD; on success the pod's status gets its IP (Running). */
  async createPod(name: string, spec: PodSpec = {}): Promise<{ pod: KubePod; add: ChainResult }> {
    const namespace = spec.namespace ?? 'default';
    const obj = await this.opts.api.create('v1/pods', {
      metadata: { name, namespace, labels: spec.labels ?? { app: name }, ...(spec.annotations ? { annotations: spec.annotations } : {}) },
      spec: { nodeName: this.opts.node.name, serviceAccountName: spec.serviceAccount ?? 'default', containers: [{ name: 'app', image: 'app' }] },
    });
    const sandbox = await this.opts.topo.addBarePod(this.opts.node, name);
    const pod: KubePod = Object.assign(sandbox, { uid: obj.metadata.uid, namespace, containerId: `${name}-${randomBytes(6).toString('hex')}` });
    const add = await this.add(pod);
    return { pod, add };
  }

  /** What the kubelet does after a failed ADD: DEL the sandbox, then ADD again under a new sandbox id. */
  async retry(pod: KubePod): Promise<ChainResult> {
    await this.chain.del(this.sandbox(pod));
    pod.containerId = `${pod.name}-${randomBytes(6).toString('hex')}`;
    return this.add(pod);
  }

  private async add(pod: KubePod): Promise<ChainResult> {
    const add = await this.chain.add(this.sandbox(pod));
    if (add.ok) {
      const ips = (add.result as { ips?: Array<{ address: string }> }).ips ?? [];
      pod.ip = ips[0]!.address.split('/')[0]!;
      await this.opts.api.patch('v1/pods', pod.namespace, pod.name, { status: { podIP: pod.ip, podIPs: [{ ip: pod.ip }], phase: 'Running' } }, { status: true });
    }
    return add;
  }

  /** DEL, then the sandbox goes, then the object. */
  async deletePod(pod: KubePod, opts: { keepObject?: boolean } = {}): Promise<ChainResult> {
    const del = await this.chain.del(this.sandbox(pod));
    await this.opts.topo.removePod(pod);
    if (!opts.keepObject && (await this.opts.api.get('v1/pods', pod.namespace, pod.name))) await this.opts.api.delete('v1/pods', pod.namespace, pod.name);
    return del;
  }

  private sandbox(pod: KubePod): { containerId: string; netns: string; ifName: string; args: Record<string, string> } {
    return {
      containerId: pod.containerId,
      netns: pod.netnsPath,
      ifName: 'eth0',
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: pod.namespace, K8S_POD_NAME: pod.name, K8S_POD_INFRA_CONTAINER_ID: pod.containerId, K8S_POD_UID: pod.uid },
    };
  }
}

/** The network configuration a runtime uses from `confDir` (libcni's choice: the first by name). */
export function readNodeConflist(confDir: string): Conflist {
  const name = chooseNetworkConfig(fs.readdirSync(confDir));
  if (!name) throw new Error(`no network configuration in ${confDir}`);
  return JSON.parse(fs.readFileSync(path.join(confDir, name), 'utf8')) as Conflist;
}
