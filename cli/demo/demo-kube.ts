/**
 * The demo's pods made the way a Kubernetes node makes them: a Pod object in the demo's
 * Kubernetes API (./kube-api.ts), a sandbox (a network namespace and a cgroup of the demo's
 * topology), then the node's CNI chain run exactly as a container runtime runs it — Debian's
 * `bridge` + `host-local`, then palisade-cni against that node's agent (test/harness/kubelet.ts).
 * palisade-cni answers only once the agent has enrolled the pod (its Kubernetes workload source
 * joins the Pod object with the CNI event), so a pod this returns is in the mesh. Removing runs
 * DEL, removes the sandbox and deletes the Pod object.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError } from '../../common/errors';
import { KubeClient } from '../../common/kube/client';
import { fixturePath } from '../../test/harness/fixtures';
import { NODE_API_PORT } from '../../test/harness/kube-cluster';
import { distRoot, startDaemon, waitForLog } from './daemons';
import { HOST_KUBECONFIG, KUBE_API_SOCKET } from './kube-api';
import { STRICT_ANNOTATION } from '../../agent/workload-sources/kubernetes/pod-workload';
import { CniErrorCode, cniSocketPath } from '../../agent/cni/protocol';
import { Kubelet, type KubeletApi, type KubePod } from '../../test/harness/kubelet';
import type { ChainResult } from '../../test/harness/cni-runtime';
import type { NodeNs, Topology } from '../../test/harness/topology';

export const DEMO_NAMESPACE = 'default';
/** host-local's first address on each node (10.0.<node>.10, as the demo's pods always had). */
const RANGE_START = 10;
/** palisade-cni's wait for the agent. */
const CNI_TIMEOUT_MS = 5000;
/** ADDs of one pod before it is given up (the first and the kubelet-like retries). */
const ADD_ATTEMPTS = 3;

/** What the demo keeps of a pod it made (state.json), beside its sandbox in the topology. */
export interface DemoPodRecord {
  name: string;
  node: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  strict: boolean;
  /** the demo's web app runs in it (HTTP on the web port) */
  app?: 'web';
  uid: string;
  containerId: string;
  /** The chain's ADD result, as libcni caches it for DEL. */
  cniResult: unknown;
  /** palisade-cni's part of ADD: the agent enrolling the pod (ms). */
  enrollMs: number;
  /** The whole chain's ADD (ms). */
  addMs: number;
}

export interface DemoPodSpec {
  name: string;
  node: string;
  serviceAccount: string;
  labels: Record<string, string>;
  strict: boolean;
  app?: 'web';
}

/** Where the demo's kubelets find things. */
export interface DemoKubeletPaths {
  /** Each node agent's run directory (its CNI socket is there). */
  runDir(node: string): string;
  /** host-local's state (per node below it). */
  ipamDir: string;
}

/** Pod objects through the real client (@kubernetes/client-node), as a kubelet writes them. */
export function clientPodApi(client: KubeClient): KubeletApi {
  const { core, k8s } = client;
  return {
    async create(_ref, obj) {
      const ns = (obj.metadata as { namespace: string }).namespace;
      const name = (obj.metadata as { name: string }).name;
      const created = await client.call(`create pod ${ns}/${name}`, () => core.createNamespacedPod({ namespace: ns, body: obj as never }));
      const uid = created?.metadata?.uid;
      if (!uid) throw new PalisadeError('PALISADE_ERR_KUBERNETES', `create pod ${ns}/${name}: the answer has no uid`);
      return { metadata: { uid } };
    },
    patch: (_ref, namespace, name, body) =>
      client.call(`update the status of pod ${namespace}/${name}`, () =>
        core.patchNamespacedPodStatus({ namespace, name, body }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)),
      ),
    get: (_ref, namespace, name) => client.call(`get pod ${namespace}/${name}`, () => core.readNamespacedPod({ namespace, name }), { notFound: 'undefined' }),
    delete: (_ref, namespace, name) => client.call(`delete pod ${namespace}/${name}`, () => core.deleteNamespacedPod({ namespace, name }), { notFound: 'undefined' }),
  };
}

export class DemoKubelets {
  private readonly kubelets = new Map<string, Kubelet>();

  constructor(
    private readonly topo: Topology,
    private readonly api: KubeletApi,
    private readonly paths: DemoKubeletPaths,
  ) {}

  /** The node's kubelet (its CNI chain runs in the node's network namespace). */
  of(node: NodeNs): Kubelet {
    let k = this.kubelets.get(node.name);
    if (!k) {
      k = new Kubelet({
        topo: this.topo,
        node,
        api: this.api,
        agentSocket: cniSocketPath(this.paths.runDir(node.name)),
        ipamDir: this.paths.ipamDir,
        rangeStart: RANGE_START,
        timeoutMs: CNI_TIMEOUT_MS,
      });
      this.kubelets.set(node.name, k);
    }
    return k;
  }

  /**
   * Create the pod and run ADD. A failed ADD is undone (DEL, sandbox and Pod object removed) and
   * throws the chain's one-line error: nothing is left of the pod.
   */
  async add(spec: DemoPodSpec): Promise<DemoPodRecord> {
    const node = this.node(spec.node);
    const kubelet = this.of(node);
    const created = await kubelet.createPod(spec.name, {
      namespace: DEMO_NAMESPACE,
      serviceAccount: spec.serviceAccount,
      labels: spec.labels,
      ...(spec.strict ? { annotations: { [STRICT_ANNOTATION]: 'true' } } : {}),
    });
    const { pod } = created;
    let add = created.add;
    // As a kubelet does: "try again later" (e.g. a new identity's certificate not issued in time) is
    // DEL, then ADD again under a new sandbox id.
    for (let attempt = 1; !add.ok && attempt < ADD_ATTEMPTS && tryAgainLater(add); attempt++) add = await kubelet.retry(pod);
    if (!add.ok) {
      await kubelet.deletePod(pod).catch(() => undefined);
      throw new PalisadeError('PALISADE_ERR_CONFLICT', `pod ${spec.name} did not start: ${chainFailure(add)}`);
    }
    const ours = add.steps.find((s) => s.type === 'palisade-cni');
    return {
      ...spec,
      namespace: pod.namespace,
      uid: pod.uid,
      containerId: pod.containerId,
      cniResult: add.result,
      enrollMs: Math.round(ours?.run.ms ?? 0),
      addMs: Math.round(add.steps.reduce((a, s) => a + s.run.ms, 0)),
    };
  }

  /** DEL (with the cached ADD result), the sandbox removed, the Pod object deleted. */
  async remove(record: DemoPodRecord): Promise<ChainResult> {
    const node = this.node(record.node);
    const sandbox = this.topo.pods.find((p) => p.name === record.name);
    if (!sandbox) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `pod ${record.name} has no sandbox in the demo`);
    const kubelet = this.of(node);
    kubelet.chain.remember(record.containerId, record.cniResult);
    const pod: KubePod = Object.assign(sandbox, { uid: record.uid, namespace: record.namespace, containerId: record.containerId });
    return kubelet.deletePod(pod);
  }

  private node(name: string): NodeNs {
    const node = this.topo.nodes.find((n) => n.name === name);
    if (!node) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no demo node ${JSON.stringify(name)} (nodes: ${this.topo.nodes.map((n) => n.name).join(', ')})`);
    return node;
  }
}

function tryAgainLater(r: ChainResult): boolean {
  const ours = r.steps.find((s) => s.type === 'palisade-cni' && s.run.code !== 0);
  return (ours?.run.json as { code?: unknown } | undefined)?.code === CniErrorCode.TRY_AGAIN_LATER;
}

/** The first failing plugin's CNI error, as one line. */
export function chainFailure(r: ChainResult): string {
  const failed = r.steps.find((s) => s.run.code !== 0);
  if (!failed) return 'the CNI chain failed';
  const err = failed.run.json as { msg?: unknown; details?: unknown } | undefined;
  const msg = typeof err?.msg === 'string' ? err.msg : (failed.run.stderr || failed.run.stdout).trim().split('\n')[0] || `exit ${failed.run.code}`;
  return `CNI ADD failed in ${failed.type}: ${msg}`;
}

/** The demo's Kubernetes API daemon and each node's forwarder to it (state.json). */
export interface DemoKube {
  pid: number;
  log: string;
  hostKubeconfig: string;
  bridges: Array<{ node: string; pid: number; log: string }>;
}

/**
 * Start the demo's Kubernetes API (./kube-api.ts, on the host, in the demo's cgroup) and, in each
 * node's network namespace, a forwarder from 127.0.0.1:6443 to its socket (the node kubeconfig's
 * server). `save` is called after each process starts, so `demo down` finds it whatever happens.
 */
export async function startKubeApi(topo: Topology, dir: string, save: (kube: DemoKube) => void): Promise<DemoKube> {
  const cgroupPath = path.join(topo.cgroupPath, 'kube-api');
  fs.mkdirSync(cgroupPath, { recursive: true });
  const log = path.join(dir, 'logs', 'kube-api.log');
  const pid = startDaemon({ netnsPath: '/proc/self/ns/net', cgroupPath }, [path.join(distRoot(), 'cli', 'demo', 'kube-api.js'), dir], log);
  const kube: DemoKube = { pid, log, hostKubeconfig: path.join(dir, HOST_KUBECONFIG), bridges: [] };
  save(kube);
  await waitForLog(log, '"listening"', pid, 20_000);
  for (const node of topo.nodes) {
    const bridgeLog = path.join(dir, 'logs', `kube-api-forwarder-${node.name}.log`);
    const bridgePid = startDaemon(node, [fixturePath('tcp-unix-bridge.js'), '127.0.0.1', String(NODE_API_PORT), path.join(dir, KUBE_API_SOCKET)], bridgeLog);
    kube.bridges.push({ node: node.name, pid: bridgePid, log: bridgeLog });
    save(kube);
  }
  await Promise.all(kube.bridges.map((b) => waitForLog(b.log, '"listening"', b.pid, 10_000)));
  return kube;
}

/** The demo's kubelets, writing Pod objects through the real client with the host kubeconfig. */
export async function openDemoKubelets(topo: Topology, dir: string, hostKubeconfig: string): Promise<DemoKubelets> {
  const client = await KubeClient.connect({ kubeconfig: hostKubeconfig });
  return new DemoKubelets(topo, clientPodApi(client), { runDir: (node) => demoRunDir(dir, node), ipamDir: path.join(dir, 'ipam') });
}

export function demoRunDir(stateDir: string, node: string): string {
  return path.join(stateDir, 'run', node);
}
