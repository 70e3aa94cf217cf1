/**
 * `startCollector`: the mesh CA, join tokens, the workload registry, the flow store, the agent
 * endpoint and the HTTP API, wired together. Used by `palisade collector` and, in-process, by tests.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import type * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { describeCause, PalisadeError } from '../common/errors';
import type { Logger } from '../common/log';
import { COLLECTOR_SERVERNAME, type RegistrySnapshot } from '../common/mesh-protocol';
import { generateKeyPair, isSpecificIp } from '../common/pki';
import { ApiAuth, loadOrCreateAdminToken } from './api/auth';
import { CollectorApi } from './api/handler';
import { CollectorMetrics } from './api/metrics';
import { Dashboard } from './dashboard/dashboard';
import type { SessionOptions } from './dashboard/sessions';
import { FLOWS_DB_FILE, FlowStore } from './flows/store';
import { FlowSinks, type FlowSinksOptions } from './sinks/sinks';
import type { SinkSpec } from './sinks/sink-spec';
import { clearStaleSocket, DEFAULT_LISTEN, formatAddress, parseListenAddress } from './listen';
import { CertificateAuthority } from './mesh-ca';
import { AuditLog } from './audit/audit-log';
import { DeniedFlowSummarizer } from './audit/denied-summary';
import { startCollectorKubernetes, type CollectorKubernetes, type CollectorKubernetesOptions } from './kubernetes';
import { caFromSecret } from './kubernetes/ca-secret';
import { KubeClient } from '../common/kube/client';
import { TrustRefusals } from './audit/trust-refusals';
import type { NodePods } from './nodes/node-pods';
import { NodeRecords } from './nodes/node-records';
import { PolicyManager } from './policies/manager';
import { WorkloadRegistry } from './registry';
import { RegistryStateWriter, restoreRegistry } from './registry-state';
import { AgentServer, type ServingIdentity } from './server';
import { TokenStore } from './tokens';
import { DEFAULT_TRUST_DOMAIN } from '../common/identity';

export { DEFAULT_TRUST_DOMAIN };
export const DEFAULT_WORKLOAD_CERT_TTL_SECONDS = 24 * 3600;
export const DEFAULT_NODE_CERT_TTL_SECONDS = 30 * 86_400;
const SERVING_CERT_TTL_SECONDS = 30 * 86_400;
const SERVING_CERT_CHECK_MS = 3_600_000;

export interface CollectorOptions {
  dataDir: string;
  log: Logger;
  /** `HOST:PORT`; default 127.0.0.1:15012. */
  listen?: string;
  /** Also serve agents on this Unix socket (mode 0600). */
  agentSocket?: string;
  trustDomain?: string;
  workloadCertTtlSeconds?: number;
  nodeCertTtlSeconds?: number;
  pingIntervalMs?: number;
  deadAfterMs?: number;
  /** How long a superseded node session may still deliver flows (default 11 min: agent/drain.ts's longest drain and then some). */
  supersededGraceMs?: number;
  /** Without --kubernetes: how long nodes restored from the state dir stay online waiting for their agents (default 60 s). */
  registryRestoreGraceMs?: number;
  /** How often at most the registry is written to the state dir while it changes (default 5 s). */
  registryWriteIntervalMs?: number;
  /** Policies pushed to every agent (AuthorizationPolicy / EgressPolicy files), watched. */
  policyDir?: string;
  /** Delete stored flows older than this (ms); default 7 days. */
  flowRetentionMs?: number;
  /** Keep at most this many stored flows; default 10 million. */
  flowMaxRows?: number;
  /** Keep the flow database's used size under this many bytes (optional). */
  flowMaxBytes?: number;
  /** How often flow retention runs (ms); default 30 s. */
  flowRetentionIntervalMs?: number;
  /** Flows waiting for the flow store's writer thread before batches are refused (default 50,000; tests). */
  flowWriterQueueFlows?: number;
  /** Where stored flows also go (`--flow-sink`); the store is always there. */
  flowSinks?: readonly SinkSpec[];
  /** The OTLP sinks' buffering and retry settings (tests, the bench). */
  flowSinkOptions?: FlowSinksOptions['otlp'];
  /** How often denied flows are summarized into the audit log (ms); default 10 s. */
  auditSummaryIntervalMs?: number;
  /** How long reading one request's policy files may take in the worker (default 5 s; tests on a loaded machine). */
  policyParseDeadlineMs?: number;
  /** Services (and policies) from the Kubernetes API (collector/kubernetes/). */
  kubernetes?: CollectorKubernetesOptions;
  /** Dashboard login tickets and sessions: lifetimes (tests shorten them). */
  dashboardSessions?: SessionOptions;
  /** `--trace-url`: the dashboard links trace ids through this template (common/trace-link.ts). */
  traceUrl?: string;
  /**
   * Which pods run on which node: with one, a node registers, and gets certificates for, only
   * pods it says run there (collector/nodes/node-pods.ts). Default: with `kubernetes`, the API's
   * pods (collector/kubernetes/pods-watch.ts); without, none (scope and range decide).
   */
  nodePods?: NodePods;
}

export interface RunningCollector {
  /** `host:port` actually bound (the port resolved when 0 was asked). */
  address: string;
  port: number;
  /** `wss://host:port`, for agents. */
  url: string;
  socketPath: string | undefined;
  /** `https://host:port`, the API's base URL (same listener as `url`). */
  apiUrl: string;
  /** The API's admin token (also in `<data dir>/admin.token`). */
  adminToken: string;
  ca: CertificateAuthority;
  /** The flow store (tests, the demo). */
  flows: FlowStore;
  /** The flow sinks beyond the store. */
  sinks: FlowSinks;
  policies: PolicyManager;
  audit: AuditLog;
  metrics: CollectorMetrics;
  /** The Kubernetes watches, with --kubernetes. */
  kubernetes: CollectorKubernetes | undefined;
  /** The dashboard's sessions (tests). */
  dashboard: Dashboard;
  snapshot(): RegistrySnapshot;
  stop(): Promise<void>;
}

export async function startCollector(opts: CollectorOptions): Promise<RunningCollector> {
  const log = opts.log.child({ component: 'collector' });
  const { host, port } = parseListenAddress(opts.listen ?? DEFAULT_LISTEN);
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const kubeClient = opts.kubernetes ? await KubeClient.connect({ kubeconfig: opts.kubernetes.kubeconfig }) : undefined;
  const ca =
    kubeClient && opts.kubernetes?.caSecret
      ? await caFromSecret({ client: kubeClient, ref: opts.kubernetes.caSecret, trustDomain, log })
      : CertificateAuthority.loadOrCreate(opts.dataDir, trustDomain, log);
  const tokens = new TokenStore(opts.dataDir);
  const nodes = new NodeRecords(opts.dataDir);
  nodes.current(); // a damaged nodes.json refuses the start
  const adminToken = loadOrCreateAdminToken(opts.dataDir, log);
  const metrics = new CollectorMetrics();
  const flows = await FlowStore.openWithWriterThread({
    file: path.join(opts.dataDir, FLOWS_DB_FILE),
    log: opts.log,
    metrics,
    retentionMs: opts.flowRetentionMs,
    maxRows: opts.flowMaxRows,
    maxBytes: opts.flowMaxBytes,
    retentionIntervalMs: opts.flowRetentionIntervalMs,
    writerQueueFlows: opts.flowWriterQueueFlows,
  });
  metrics.watch(flows);
  let server: AgentServer | undefined;
  let registryState: RegistryStateWriter | undefined;
  const registry = new WorkloadRegistry(ca.trustDomain, (delta) => {
    server?.broadcastRegistry();
    registryState?.changed();
    log.debug({ version: delta.toVersion, changes: delta.changes.length }, 'registry changed');
  });
  // Without Kubernetes the registry is kept in the state dir across a restart (registry-state.ts);
  // with it, the replicas' PalisadeRegistration objects rebuild it and each process has its own epoch.
  const restoredOnline = opts.kubernetes ? [] : restoreRegistry(opts.dataDir, registry, log);
  if (!opts.kubernetes) {
    registryState = new RegistryStateWriter(opts.dataDir, registry, log, opts.registryWriteIntervalMs);
    // restored: reserve versions before any change; if that write fails the registry moves to a new
    // epoch at its first change (nothing durable reserved), so the start goes on
    if (registry.version > 0) {
      try {
        registryState.writeNow();
      } catch (err) {
        log.warn({ err }, 'registry state not written: the first change starts a new epoch');
      }
    }
  }
  const restoreGrace = startRestoreGrace(registry, restoredOnline, nodes, log, opts.registryRestoreGraceMs ?? RESTORE_GRACE_MS);
  // The versioned policies and the audit log; a bad policy directory refuses the start, before anything listens.
  let control: { audit: AuditLog; policies: PolicyManager };
  try {
    control = openControl(opts, log, flows, () => registry.snapshot(), (frame) => server?.broadcast(frame));
  } catch (err) {
    await flows.close();
    throw err;
  }
  const { audit, policies } = control;
  let kube: CollectorKubernetes | undefined;
  try {
    if (opts.kubernetes) kube = await startCollectorKubernetes({ ...opts.kubernetes, client: kubeClient, log, registry, policies, records: nodes, tokens });
  } catch (err) {
    policies.close();
    audit.close();
    await flows.close();
    throw err;
  }
  // A change made outside this process (the offline `node revoke`) goes to the other replicas too.
  const stopSharingNodes = kube ? nodes.watch(() => kube!.nodes.recordsChanged()) : undefined;
  const sinks = new FlowSinks(opts.flowSinks ?? [], { log, metrics, trustDomain: ca.trustDomain, ...(opts.flowSinkOptions && { otlp: opts.flowSinkOptions }) });
  metrics.watchSinks(sinks);
  const unsubscribeSinks = flows.onStored(sinks.onStored);
  const denied = new DeniedFlowSummarizer(audit, { intervalMs: opts.auditSummaryIntervalMs });
  const refusals = new TrustRefusals(audit, { log });
  const unsubscribeDenied = flows.onStored((batch) => {
    for (const f of batch.denied) denied.add(f);
  });
  const auth = new ApiAuth(adminToken, ca.trustDomain, (node, key) => nodes.certRefusal(node, key));
  const dashboard = new Dashboard({
    auth,
    flows,
    policies,
    registry: () => registry.snapshot(),
    control: { policies, flows, audit, ...(kube ? { kubernetes: () => kube!.status() } : {}) },
    metrics,
    log: opts.log,
    sessions: opts.dashboardSessions,
    ...(opts.traceUrl !== undefined && { traceUrl: opts.traceUrl }),
  });
  const api = new CollectorApi({
    store: flows,
    auth,
    metrics,
    log: opts.log,
    control: { policies, flows, audit, sinks: () => sinks.counts(), ...(kube ? { kubernetes: () => kube!.status() } : {}) },
    sinks: () => sinks.counts(),
    dashboard,
    refusals,
  });
  const closeStores = async (): Promise<void> => {
    stopSharingNodes?.();
    await kube?.close();
    unsubscribeDenied();
    unsubscribeSinks();
    await sinks.close();
    denied.close();
    refusals.close();
    policies.close();
    audit.close();
    await flows.close();
  };
  const issueServing = async (): Promise<ServingIdentity & { issuedAt: number }> => {
    const key = await generateKeyPair();
    const certPem = ca.issue(key.publicKeyPem, {
      dnsNames: [COLLECTOR_SERVERNAME, ...(!net.isIP(host) && host !== COLLECTOR_SERVERNAME ? [host.toLowerCase()] : [])],
      ips: isSpecificIp(host) ? [host] : [],
      commonName: COLLECTOR_SERVERNAME,
      usage: 'server',
      ttlSeconds: SERVING_CERT_TTL_SECONDS,
    });
    return { keyPem: key.privateKeyPem, certPem, issuedAt: Date.now() };
  };
  let serving: Awaited<ReturnType<typeof issueServing>>;
  try {
    serving = await issueServing();
  } catch (err) {
    await api.close();
    await closeStores();
    throw err;
  }
  // With --kubernetes the API's pods decide what a node may claim (the node authorizer).
  const nodePods = opts.nodePods ?? kube?.pods;
  const agents = new AgentServer({
    ca,
    // With --kubernetes, tokens are checked and spent through the API (any replica's token joins here, once).
    tokens: kube?.tokens ?? tokens,
    registry,
    nodes,
    refusals,
    ...(nodePods ? { pods: nodePods } : {}),
    serving,
    workloadCertTtlSeconds: opts.workloadCertTtlSeconds ?? DEFAULT_WORKLOAD_CERT_TTL_SECONDS,
    nodeCertTtlSeconds: opts.nodeCertTtlSeconds ?? DEFAULT_NODE_CERT_TTL_SECONDS,
    log,
    pingIntervalMs: opts.pingIntervalMs,
    deadAfterMs: opts.deadAfterMs,
    ...(opts.supersededGraceMs !== undefined ? { supersededGraceMs: opts.supersededGraceMs } : {}),
    policiesFrame: () => policies.frame(),
    policyStatus: (node, m) => policies.agentStatus(node, m),
    flows,
    api,
  });
  server = agents;

  const renewal = setInterval(() => {
    if (Date.now() - serving.issuedAt < (SERVING_CERT_TTL_SECONDS * 1000) / 2) return;
    issueServing().then(
      (next) => {
        serving = next;
        agents.setServingIdentity(next);
        log.info('serving certificate renewed');
      },
      (err: unknown) => log.error({ err }, 'serving certificate renewal failed'),
    );
  }, SERVING_CERT_CHECK_MS);
  renewal.unref();

  let bound: net.AddressInfo;
  let socketPath: string | undefined;
  try {
    bound = (await listen(agents.createServer(), { host, port }, `${formatAddress(host, port)}`)) as net.AddressInfo;
    if (opts.agentSocket !== undefined) {
      await clearStaleSocket(opts.agentSocket);
      await listen(agents.createServer(), { path: opts.agentSocket }, opts.agentSocket);
      socketPath = opts.agentSocket;
      chmodSync(socketPath, 0o600);
    }
  } catch (err) {
    clearInterval(renewal);
    await api.close();
    await agents.close();
    await closeStores();
    throw err;
  }
  const address = formatAddress(bound.address, bound.port);
  log.info({ address, socketPath, trustDomain: ca.trustDomain, flowsStored: flows.rows() }, 'collector ready');

  let stopped: Promise<void> | undefined;
  return {
    address,
    port: bound.port,
    url: `wss://${address}`,
    socketPath,
    apiUrl: `https://${address}`,
    adminToken,
    ca,
    flows,
    sinks,
    policies,
    audit,
    metrics,
    kubernetes: kube,
    dashboard,
    snapshot: () => registry.snapshot(),
    stop: () => {
      stopped ??= (async () => {
        clearInterval(renewal);
        clearTimeout(restoreGrace);
        // the registry as the agents hold it, frozen before their sessions close (they come back to it)
        const kept = registryState?.flush();
        await api.close();
        await agents.close();
        await kept;
        await closeStores();
        if (socketPath !== undefined) {
          try {
            unlinkSync(socketPath);
          } catch {
            // already gone
          }
        }
        log.info('collector stopped');
      })();
      return stopped;
    },
  };
}

/** How long nodes restored online wait for their agents before they go offline. */
const RESTORE_GRACE_MS = 60_000;

/**
 * Nodes restored from the state dir: those revoked meanwhile leave the registry now; those online
 * go offline after `graceMs` unless their agents said hello again.
 */
function startRestoreGrace(registry: WorkloadRegistry, online: string[], nodes: NodeRecords, log: Logger, graceMs: number): NodeJS.Timeout | undefined {
  for (const n of registry.snapshot().nodes) if (nodes.record(n.node) === undefined) registry.removeNode(n.node);
  if (online.length === 0) return undefined;
  return setTimeout(() => {
    const gone = registry.expireRestored();
    if (gone.length > 0) log.info({ nodes: gone.slice(0, 20), count: gone.length }, 'nodes restored from the state dir did not come back: offline');
  }, graceMs).unref();
}

/** The audit log and the versioned policies (started: a bad policy directory throws, leaving nothing open). */
function openControl(
  opts: CollectorOptions,
  log: Logger,
  flows: FlowStore,
  registry: () => RegistrySnapshot,
  push: (frame: string | Buffer) => void,
): { audit: AuditLog; policies: PolicyManager } {
  const audit = AuditLog.open({ dataDir: opts.dataDir, log: opts.log });
  let policies: PolicyManager | undefined;
  try {
    policies = new PolicyManager({
      dataDir: opts.dataDir,
      policyDir: opts.policyDir,
      kubernetes: opts.kubernetes !== undefined,
      log,
      registry,
      flows,
      audit,
      push,
      ...(opts.policyParseDeadlineMs !== undefined ? { parseDeadlineMs: opts.policyParseDeadlineMs } : {}),
    });
    policies.start();
    return { audit, policies };
  } catch (err) {
    policies?.close();
    audit.close();
    throw err;
  }
}

function listen(server: https.Server, where: net.ListenOptions, what: string): Promise<net.AddressInfo | string | null> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new PalisadeError('PALISADE_ERR_LISTEN', `cannot listen on ${what}: ${describeCause(err)}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(where, () => {
      server.off('error', onError);
      resolve(server.address());
    });
  });
}
