/**
 * The agent's workload sources, started together: the workloads file (`--workloads`) and
 * Kubernetes (`--kubernetes`), feeding one NodeEnrollment; with Kubernetes, the CNI socket
 * palisade-cni talks to. Everything a source needs that can be checked before the kernel is
 * touched (the file, every netns in it, the Kubernetes configuration) is checked by
 * `prepareWorkloadSources`, first. Once every source has reconciled, pods the kernel still has
 * that no source lists are unenrolled; until then the agent is not ready.
 */
import { isTrustDomain } from '../../common/identity';
import { invalidArgument } from '../../common/errors';
import { KubeClient } from '../../common/kube/client';
import type { Logger } from '../../common/log';
import { CniChainKeeper } from '../cni/chain-keeper';
import { cniSocketPath } from '../cni/protocol';
import { CniServer } from '../cni/server';
import { netnsCookieOf } from '../datapath/datapath';
import type { LocalWorkloads } from '../local-workloads';
import { DEFAULT_TRUST_DOMAIN, type Workload } from '../workloads';
import { FileSource, loadCheckedWorkloads } from './file-source';
import { KubernetesSource } from './kubernetes/kubernetes-source';
import { NodeEnrollment, type EnrollmentDatapath, type EnrollmentMesh, type RefusalListener } from './node-enrollment';
import type { WorkloadSource } from './source';

export interface WorkloadSourcesOptions {
  node: string;
  runDir: string;
  workloadsFile?: string;
  /** `cniConfDir`: keep palisade-cni in that CNI configuration directory's chain (./cni/chain-keeper.ts). */
  kubernetes?: { kubeconfig?: string; trustDomain?: string; cniConfDir?: string };
  /** How long a certificate is kept after its identity's last workload left (NodeEnrollment). */
  identityLingerMs?: number;
  log: Logger;
}

export interface PreparedWorkloadSources {
  /** The workloads file's workloads with their netns cookies (empty without a file). */
  initial: Array<{ workload: Workload; netnsCookie: bigint }>;
  start(deps: { datapath: EnrollmentDatapath; local: LocalWorkloads; mesh?: EnrollmentMesh; onRefused?: RefusalListener }): Promise<RunningWorkloadSources>;
}

export interface RunningWorkloadSources {
  enrollment: NodeEnrollment;
  /** The CNI endpoint, with Kubernetes. */
  cni: CniServer | undefined;
  /** True once every source has reconciled the node (readiness). */
  synced(): boolean;
  whenSynced: Promise<void>;
  close(): Promise<void>;
}

export async function prepareWorkloadSources(opts: WorkloadSourcesOptions): Promise<PreparedWorkloadSources> {
  const config = opts.workloadsFile ? loadCheckedWorkloads(opts.workloadsFile) : undefined;
  const k8s = opts.kubernetes;
  const trustDomain = k8s?.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  if (k8s && !isTrustDomain(trustDomain)) throw invalidArgument(`--trust-domain must be a SPIFFE trust domain like cluster.local, got ${JSON.stringify(trustDomain)}`);
  const client = k8s ? await KubeClient.connect({ kubeconfig: k8s.kubeconfig }) : undefined;
  const log = opts.log;
  return {
    initial: (config?.workloads ?? []).map((workload) => ({ workload, netnsCookie: netnsCookieOf(workload.netns) })),
    async start(deps) {
      const enrollment = new NodeEnrollment({ ...deps, log, ...(opts.identityLingerMs !== undefined ? { identityLingerMs: opts.identityLingerMs } : {}) });
      const sources: WorkloadSource[] = [];
      if (config && opts.workloadsFile) sources.push(new FileSource({ file: opts.workloadsFile, initial: config, log }));
      const kube = client ? new KubernetesSource({ node: opts.node, client, trustDomain, runDir: opts.runDir, log }) : undefined;
      if (kube) sources.push(kube);
      let cni: CniServer | undefined;
      try {
        for (const s of sources) await s.start(enrollment);
        // takeOver: the node lock (or the handover) already made this agent the node's; during a
        // handover the predecessor's socket is live, and new ADDs must reach the successor.
        if (kube) cni = await CniServer.start({ socketPath: cniSocketPath(opts.runDir), enroller: kube, log, takeOver: true });
      } catch (err) {
        await Promise.all(sources.map((s) => s.close().catch(() => undefined)));
        enrollment.close();
        throw err;
      }
      // Only once the socket answers: an entry put back sends pods to it.
      const keeper = cni && k8s?.cniConfDir ? new CniChainKeeper({ confDir: k8s.cniConfDir, log }) : undefined;
      let closed = false;
      let closing: Promise<void> | undefined;
      let done = false;
      const whenSynced = Promise.all(sources.map((s) => s.synced())).then(() => {
        if (closed) return;
        const removed = enrollment.removeUnclaimed();
        done = true;
        log.info({ sources: sources.map((s) => s.name), enrolled: enrollment.size, removed }, 'workload sources synced');
      });
      return {
        enrollment,
        cni,
        synced: () => done,
        whenSynced,
        close: () =>
          (closing ??= (async () => {
            closed = true;
            keeper?.stop();
            await cni?.close();
            await Promise.all(sources.map((s) => s.close()));
            enrollment.close();
          })()),
      };
    },
  };
}
