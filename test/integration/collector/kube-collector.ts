/**
 * A collector in Kubernetes mode against a fresh Kubernetes API double (the real client-node in
 * between), with the CRDs a test asks for: what the policy and route watch tests start and stop.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startCollector, type RunningCollector } from '../../../collector/collector';
import { silentLogger } from '../../../common/log';
import { tempDir } from '../../harness/agent';
import { KubeApiDouble } from '../../harness/kube-api-double';
import { installCrds } from '../../harness/kube-crds';
import type { WorkloadRegistration } from '../../../common/mesh-protocol';

export interface KubeCollectorOptions {
  namespaces: string[];
  crds: Parameters<typeof installCrds>[1];
  policyDir?: string;
}

export class KubeCollector {
  api!: KubeApiDouble;
  dir!: string;
  collector!: RunningCollector;

  constructor(private readonly name: string) {}

  async start(opts: KubeCollectorOptions): Promise<void> {
    this.api = await KubeApiDouble.start({ token: 'collector' });
    for (const ns of opts.namespaces) this.api.create('v1/namespaces', { metadata: { name: ns } });
    installCrds(this.api, opts.crds);
    this.dir = tempDir(this.name);
    this.api.writeKubeconfig(path.join(this.dir, 'kubeconfig'));
    fs.mkdirSync(path.join(this.dir, 'data'));
    this.collector = await startCollector({
      dataDir: path.join(this.dir, 'data'),
      log: silentLogger(),
      listen: '127.0.0.1:0',
      kubernetes: { kubeconfig: path.join(this.dir, 'kubeconfig') },
      ...(opts.policyDir ? { policyDir: opts.policyDir } : {}),
    });
    await this.collector.kubernetes!.synced();
  }

  async stop(): Promise<void> {
    await this.collector?.stop();
    await this.api?.close();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The collector's data directory (its CA, tokens). */
  dataDir(): string {
    return path.join(this.dir, 'data');
  }

  /** `Kind namespace/name origin author` of every stored policy and route. */
  stored(): string[] {
    return this.collector.policies.list().policies.map((p) => `${p.kind} ${p.namespace}/${p.name} ${p.origin} ${p.author}`);
  }

  /** The environment `palisade` needs to talk to this collector. */
  cliEnv(): Record<string, string> {
    return { PALISADE_COLLECTOR: this.collector.apiUrl, PALISADE_TOKEN: this.collector.adminToken, PALISADE_CA: path.join(this.dataDir(), 'ca.crt') };
  }
}

/** The mesh CA Secret collector replicas share (`--ca-secret`). */
export const REPLICAS_CA_SECRET = { namespace: 'palisade-system', name: 'palisade-ca' };

/**
 * A fresh API double for collector replicas — the CA Secret's namespace, our CRDs (and those `crds` asks for) — closed when
 * the test ends (`stack`), and a kubeconfig for it in a directory of `dirs`.
 */
async function replicasApi(
  dirs: { make(): string },
  stack: { push(fn: () => unknown): void },
  crds: Parameters<typeof installCrds>[1] = {},
): Promise<{ api: KubeApiDouble; kubeconfig: string }> {
  const api = await KubeApiDouble.start({ token: 'collector' });
  api.create('v1/namespaces', { metadata: { name: REPLICAS_CA_SECRET.namespace } });
  installCrds(api, crds);
  const kubeconfig = path.join(dirs.make(), 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  stack.push(() => api.close());
  return { api, kubeconfig };
}

/** The API double and kubeconfig of the running test (`useReplicasApi`); set before each test. */
export interface ReplicasApi {
  api: KubeApiDouble;
  kubeconfig: string;
}

/**
 * A mocha hook: before each test of the calling suite, a fresh `replicasApi` (closed by `stack`
 * when the test ends). Call it before the suite's own `beforeEach`, which may then use it.
 */
export function useReplicasApi(
  dirs: { make(): string },
  stack: { push(fn: () => unknown): void },
  crds: Parameters<typeof installCrds>[1] = {},
): ReplicasApi {
  const current = {} as ReplicasApi;
  beforeEach(async function () {
    Object.assign(current, await replicasApi(dirs, stack, crds));
  });
  return current;
}

/** A pod the API says runs on `node`, at the workload's IP (replicas in Kubernetes mode are node authorizers). */
export function podOn(api: KubeApiDouble, w: WorkloadRegistration, node: string): void {
  api.create('v1/pods', {
    metadata: { name: w.name, namespace: w.namespace },
    spec: { nodeName: node, serviceAccountName: w.serviceAccount, containers: [{ name: 'app', image: 'app' }] },
  });
  api.patch('v1/pods', w.namespace, w.name, { status: { podIP: w.ip } }, { status: true });
}
