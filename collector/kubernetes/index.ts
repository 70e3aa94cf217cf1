/**
 * The collector and the Kubernetes API (`palisade collector --kubernetes`): the cluster's Services
 * and EndpointSlices become the registry's services (./services-watch.ts); its AuthorizationPolicy,
 * EgressPolicy, HTTPRoute, GRPCRoute and FaultInjection objects become versions of the policy store
 * authored `kubernetes` (./policy-watch.ts), and a change through the collector's own API is
 * written there as those objects (./policy-writes.ts), so every replica enforces it; policies
 * this collector stored itself before are published there once (PolicyManager.publishLocal); its
 * Pods make the collector a node authorizer
 * (./pods-watch.ts): a node registers, and gets certificates for, only pods the API says run on it.
 * The node records are shared with the other replicas as PalisadeNode objects
 * (./node-records-share.ts): a node that joined through one replica is accepted by every one;
 * so are the registrations, as PalisadeRegistration objects (./registrations-share.ts): every
 * replica serves every node's workloads, whichever replica the node's agent is connected to;
 * and the join tokens, as PalisadeJoinToken objects (./join-tokens-share.ts): a token made at one
 * replica joins at any, once. Each replica renews a Lease in the collector's namespace
 * (./replica-lease.ts) and watches the others' (./replica-leases.ts): a dead replica's nodes go
 * offline everywhere else.
 */
import * as os from 'node:os';
import { describeCause, isPalisadeError } from '../../common/errors';
import { KubeClient } from '../../common/kube/client';
import type { KubernetesStatus } from '../../common/control-api';
import type { Logger } from '../../common/log';
import type { PolicyFile } from '../../common/policy-files';
import type { PolicyManager } from '../policies/manager';
import type { NodePods } from '../nodes/node-pods';
import type { NodeRecords } from '../nodes/node-records';
import { JoinTokensShare } from './join-tokens-share';
import { NodeRecordsShare } from './node-records-share';
import { RegistrationsShare } from './registrations-share';
import { DEFAULT_REPLICA_LEASE_SECONDS, ReplicaLease } from './replica-lease';
import { ReplicaLeases } from './replica-leases';
import type { WorkloadRegistry } from '../registry';
import type { TokenStore } from '../tokens';
import { PodsWatch } from './pods-watch';
import { PolicyWatch } from './policy-watch';
import { PolicyWrites } from './policy-writes';
import { ServicesWatch } from './services-watch';
import type { CaSecretRef } from './ca-secret';

export interface CollectorKubernetesOptions {
  /** A kubeconfig file; without it, the pod's service account. */
  kubeconfig?: string;
  /** The mesh CA from this Secret (created when missing), not the data directory: what lets replicas share one CA (./ca-secret.ts). */
  caSecret?: CaSecretRef;
  /** This replica's name in audit records and on the policy objects it writes (default: the host's name, a pod's name). */
  replica?: string;
  /** How long a policy change written to the API may take to come back through the watch (default 10 s). */
  policyInForceTimeoutMs?: number;
  /** The collector's own namespace, where its replica Lease lives (default: the context's — in a pod, its service account's —, else `default`). */
  namespace?: string;
  /** The replica Lease's duration (default 15 s), renewed every third of it. */
  replicaLeaseSeconds?: number;
  /** How long after it expired a dead replica's Lease is deleted (default 1 h; tests). */
  replicaLeaseCollectAfterMs?: number;
}

export interface CollectorKubernetes {
  /** For `palisade status`. */
  status(): KubernetesStatus;
  client: KubeClient;
  /** Which pods run on which node: the node authorizer's authority. */
  pods: NodePods;
  /** The node records as the replicas share them. */
  nodes: NodeRecordsShare;
  /** The registrations as the replicas share them. */
  registrations: RegistrationsShare;
  /** The join tokens as the replicas share them: what joins check and spend. */
  tokens: JoinTokensShare;
  /** This replica's Lease, and its judgement of the others'. */
  lease: ReplicaLease;
  leases: ReplicaLeases;
  /** Resolves once every watch has listed once. */
  synced(): Promise<void>;
  close(): Promise<void>;
}

export async function startCollectorKubernetes(
  opts: CollectorKubernetesOptions & { log: Logger; registry: WorkloadRegistry; policies: PolicyManager; records: NodeRecords; tokens: TokenStore; client?: KubeClient },
): Promise<CollectorKubernetes> {
  const client = opts.client ?? (await KubeClient.connect({ kubeconfig: opts.kubeconfig }));
  const log = opts.log.child({ component: 'kubernetes' });
  const services = new ServicesWatch({ client, log, onServices: (list) => opts.registry.setKubernetesServices(list) });
  const policies = new PolicyWatch({ client, log, onPolicies: (files) => syncPolicies(opts.policies, files, log) });
  // Changes through the collector's API are stored in the Kubernetes API, as objects every replica watches.
  opts.policies.useKubernetesApi(
    new PolicyWrites({ client, watch: policies, log, replica: opts.replica ?? os.hostname(), ...(opts.policyInForceTimeoutMs !== undefined ? { inForceTimeoutMs: opts.policyInForceTimeoutMs } : {}) }),
  );
  const pods = new PodsWatch({ client, log });
  const registrations = new RegistrationsShare({ client, log, registry: opts.registry, records: opts.records });
  const nodes = new NodeRecordsShare({ client, log, records: opts.records, merged: (node) => registrations.recordsChanged([node]) });
  const tokens = new JoinTokensShare({ client, log, local: opts.tokens });
  const namespace = opts.namespace ?? client.namespace ?? 'default';
  const durationSeconds = opts.replicaLeaseSeconds ?? DEFAULT_REPLICA_LEASE_SECONDS;
  const lease = new ReplicaLease({ client, log, namespace, replica: opts.registry.replica, durationSeconds, onRecovered: () => opts.registry.republishLocal() });
  const leases = new ReplicaLeases({ client, log, namespace, registry: opts.registry, own: lease, collectAfterMs: opts.replicaLeaseCollectAfterMs });
  // Once the registrations are listed: liveness judges them, and the start's requests stay fewer.
  let closed = false;
  void registrations.synced().then(() => {
    if (closed) return;
    lease.start();
    leases.start();
  });
  services.start();
  policies.start();
  const publishing = publishLocalPolicies(policies, opts.policies, log);
  pods.start();
  nodes.start();
  registrations.start();
  tokens.start();
  log.info({ server: client.server, lease: `${namespace}/${lease.name}`, leaseSeconds: durationSeconds }, 'watching the cluster\'s services, policy objects, pods, node records, registrations, join tokens and replica Leases');
  return {
    client,
    pods,
    nodes,
    registrations,
    tokens,
    lease,
    leases,
    status: () => {
      const p = policies.status();
      return {
        synced: services.isSynced && p.synced && pods.hasSynced,
        services: services.current().length,
        pods: pods.count,
        policyKinds: p.kinds,
        policyObjects: p.inForce,
        refused: p.refused,
        ignoredRoutes: p.ignoredRoutes,
        replicas: leases.status(),
      };
    },
    // Not the node records: a cluster without the PalisadeNode CRD still runs one replica (each knows its own joins).
    synced: () => Promise.all([services.synced(), policies.synced(), pods.synced()]).then(() => undefined),
    close: async () => {
      publishing.stop();
      closed = true;
      await Promise.all([services.stop(), policies.stop(), pods.stop(), nodes.stop(), registrations.stop(), tokens.stop(), leases.stop()]);
      await lease.stop(); // last: deleting it tells the others at once that our nodes' sessions are gone
    },
  };
}

/** The accepted policy objects into the store; a set that does not hold as a whole changes nothing. */
function syncPolicies(manager: PolicyManager, files: PolicyFile[], log: Logger): void {
  try {
    const shadowed = manager.syncKubernetes(files);
    if (shadowed.length > 0) log.warn({ objects: shadowed }, 'policy objects the collector\'s policy directory also defines: the directory\'s stay in force');
  } catch (err) {
    if (!isPalisadeError(err)) throw err;
    const problems = (err as { problems?: readonly string[] }).problems ?? [describeCause(err)];
    log.error({ event: 'policy-rejected', problems }, `policy objects refused as a set; agents keep version ${manager.version}`);
  }
}

/**
 * Once the watch has listed: the policies this collector stored before Kubernetes mode kept them in
 * the API go there (PolicyManager.publishLocal), tried again every 30 s while some are left.
 */
function publishLocalPolicies(watch: PolicyWatch, manager: PolicyManager, log: Logger): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const attempt = (): void => {
    if (stopped) return;
    manager.publishLocal().then(
      (left) => {
        if (left > 0 && !stopped) timer = setTimeout(attempt, 30_000).unref();
      },
      (err: unknown) => log.error({ err }, 'publishing this collector\'s own policies to the Kubernetes API failed'),
    );
  };
  void watch.synced().then(attempt);
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
