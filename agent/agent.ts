/**
 * `palisade agent`: the node daemon. Validates everything it was given before it
 * touches the kernel, installs (or re-adopts) the data path, enrolls the node's
 * workloads, and serves the outbound listener.
 */
import { MeshTracer } from './tracing/tracer';
import { registerTraceMetrics } from './metrics/trace-metrics';
import * as fs from 'node:fs';
import { isIPv4 } from 'node:net';
import * as path from 'node:path';
import { PalisadeError, describeCause, invalidArgument } from '../common/errors';
import type { Logger } from '../common/log';
import { encodeLpmKey } from './datapath/codec';
import { Datapath, OBJECT_FILES, defaultBpfDir, validateNodeName } from './datapath/datapath';
import { checkKernel, readObjectNeeds, type KernelFeatures } from './datapath/kernel-probe';
import { IdentityManager } from './identity/manager';
import { acquireNodeLock, type NodeLock } from './lock';
import { DEFAULT_DRAIN_TIMEOUT_MS, drainConnections, MAX_DRAIN_TIMEOUT_MS } from './drain';
import { HandoverServer } from './handover';
import { claimNode, enableRequestMigration, takeOver, type NodeClaim } from './takeover';
import { CollectorClient } from './mesh/collector-client';
import { HBONE_PORT } from './proxy/hbone';
import { HbonePool } from './proxy/hbone-pool';
import { InboundProxy } from './proxy/inbound';
import type { MeshInputs } from './proxy/inputs';
import { OutboundProxy } from './proxy/outbound';
import { TrafficRouter } from './traffic/router';
import { LocalWorkloads } from './local-workloads';
import { MeshRegistry } from './mesh/mesh-registry';
import { AccessLog, type AccessLogMode } from './flows/access-log';
import { FlowFanOut } from './flows/fan-out';
import { FlowReporter, MAX_FLOW_BUFFER } from './flows/reporter';
import { createAgentRegistry } from './metrics/agent-metrics';
import { FlowMetrics } from './metrics/flow-metrics';
import { MetricsServer } from './metrics/server';
import { DnsRuntime } from './dns/dns-runtime';
import { workloadNameSources } from './dns/mesh-names';
import { upstreamServers, validateDnsDomain } from './dns/resolv-conf';
import { EnforcedPolicies } from './policy/enforced';
import { DestinationAuthz } from './proxy/destination-authz';
import { Egress } from './proxy/egress';
import type { HttpLimits } from './proxy/http';
import { ConnectionTracker } from './proxy/tracker';
import { createProxyLimits, proxyLimitSettings, type ProxyLimitOptions, type ProxyLimits } from './proxy/limits';
import { agentPorts, NodeAddresses } from './proxy/node-local';
import type { PolicyIndex } from '../common/policy';
import type { PolicyFile } from '../common/policy-files';
import { DropTotals, WireEnforcement } from './wire/wire-enforcement';
import { prepareWorkloadSources, type RunningWorkloadSources } from './workload-sources';
import { refusalFlow } from './workload-sources/refusal-flow';
import type { Workload } from './workloads';
import { mapLimitSettings } from './datapath/map-sizes';

export const OUTBOUND_PORT = 15001;

export interface AgentOptions {
  node: string;
  proxyIp: string;
  workloadsFile?: string;
  /** Enroll this node's pods from the Kubernetes API and palisade-cni (workload-sources/). */
  kubernetes?: { kubeconfig?: string; trustDomain?: string; cniConfDir?: string };
  /** How long a workload certificate is kept after its identity's last pod left (default 30 s). */
  identityLingerMs?: number;
  cgroup?: string;
  bpffs?: string;
  bpfDir?: string;
  runDir?: string;
  excludeCidrs?: string[];
  excludePorts?: number[];
  outboundPort?: number;
  connectTimeoutMs?: number;
  /** Directory of AuthorizationPolicy / EgressPolicy files, watched for changes. */
  policyDir?: string;
  /** /etc/hosts-format file whose names the DNS proxy answers itself. */
  hostsFile?: string;
  /** `IP[:PORT]` servers the DNS proxy forwards to (default: /etc/resolv.conf's nameservers). */
  dnsUpstreams?: string[];
  /** Cluster domain of mesh names (default cluster.local). */
  dnsDomain?: string;
  /** How long to wait for a client's first bytes when a policy needs its protocol (default 5 s). */
  sniffTimeoutMs?: number;
  /** HTTP limits of the policy-enforcing front (header size/count, timeouts). */
  httpLimits?: Partial<HttpLimits>;
  /** Trace HTTP requests: spans to this OTLP/HTTP endpoint, new traces sampled at this rate. */
  tracing?: { url: string; sampleRate: number };
  /** The mesh: without a collector the agent only redirects and passes through. */
  mesh?: MeshOptions;
  /** Which flows the access log writes: all, those of labeled workloads (default), none. */
  accessLog?: AccessLogMode;
  /** Flow records kept for the collector while it is slow or away (default 100 000). */
  flowBuffer?: number;
  /** Where /metrics and /healthz are served; not served when absent. */
  metricsAddress?: { host: string; port: number };
  /** How often what the per-pod filters dropped and let through becomes flow summaries (default 10 s). */
  summaryIntervalMs?: number;
  /** UDP/ICMP rule entries written to the kernel at most (default and ceiling 32768). */
  maxWireRules?: number;
  /** Connection caps, sniff budget, idle timeouts, refusal summaries (defaults: agent/proxy/limits). */
  limits?: ProxyLimitOptions;
  /** Pods the kernel maps hold, and entries of its connection maps (defaults: agent/datapath/map-sizes.ts). */
  maxPods?: number;
  kernelConnections?: number;
  /** What the kernel offers (default: the running kernel's probes); tests pass one that lacks a feature. */
  kernel?: KernelFeatures;
  /** How long a stopping agent lets established connections finish (default 30 s). */
  drainTimeoutMs?: number;
  log: Logger;
}

export interface MeshOptions {
  /** `wss://host:port` or `unix:/path/to/collector.sock`; several: collector replicas, tried in turn. */
  collectorUrl: string | readonly string[];
  /** PEM file of the mesh CA (the trust anchor for the collector and every peer). */
  caFile: string;
  /** Needed once, to obtain the node certificate. */
  joinToken?: string;
  /** Where the node key and certificate are kept. */
  dataDir: string;
  /** This node's address on the node network, where HBONE (:15008) listens. */
  nodeAddress: string;
  hbonePort?: number;
}

export interface RunningAgent {
  node: string;
  datapath: Datapath;
  workloads: LocalWorkloads;
  outboundAddress: { address: string; port: number };
  mesh:
    | { registry: MeshRegistry; identities: IdentityManager; pool: HbonePool; inbound: InboundProxy; collector: CollectorClient; reporter: FlowReporter }
    | undefined;
  policies: EnforcedPolicies;
  dns: DnsRuntime;
  flows: { metrics: FlowMetrics; reporter: FlowReporter | undefined };
  /** Where /metrics and /healthz are served, when they are. */
  metricsAddress: { address: string; port: number } | undefined;
  /**
   * Stop accepting, let established connections finish up to the drain timeout (then close them,
   * recorded as `drain-deadline`), deliver the last flows, stop. Idempotent; also what a successor's
   * take-over starts.
   */
  drain(reason: string): Promise<void>;
  /** Resolves once the agent has stopped, whatever stopped it (drain, take-over, close). */
  stopped: Promise<void>;
  /** Where the node's workloads come from (the workloads file, Kubernetes) and their enrollment. */
  sources: RunningWorkloadSources;
  /** Stop now: open connections are cut (tests; a second signal). */
  close(): Promise<void>;
}

export const DEFAULT_RUN_DIR = '/run/palisade';

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const log = opts.log.child({ node: opts.node });
  validateNodeName(opts.node);
  if (!isIPv4(opts.proxyIp)) {
    throw invalidArgument(`--proxy-address must be an IPv4 address, got ${JSON.stringify(opts.proxyIp)}`);
  }
  validateExclusions(opts.excludeCidrs ?? [], opts.excludePorts ?? []);
  validateFlowBuffer(opts.flowBuffer);
  const dnsDomain = opts.dnsDomain ?? 'cluster.local';
  validateDnsDomain(dnsDomain);
  const upstreams = upstreamServers(opts.dnsUpstreams);
  const limitSettings = proxyLimitSettings(opts.limits ?? {});
  const mapLimits = mapLimitSettings(opts.maxPods, opts.kernelConnections, limitSettings.connections);
  const caPem = opts.mesh ? readCa(opts.mesh) : undefined;
  // Everything that can be checked without the kernel is checked first: a bad
  // file or namespace path must not leave anything half-installed.
  const sourcesPlan = await prepareWorkloadSources({
    node: opts.node,
    runDir: opts.runDir ?? DEFAULT_RUN_DIR,
    workloadsFile: opts.workloadsFile,
    kubernetes: opts.kubernetes,
    identityLingerMs: opts.identityLingerMs,
    log,
  });
  // Then the kernel: below the minimum, one line naming the missing feature, nothing created yet.
  checkKernel(readObjectNeeds(opts.bpfDir ?? defaultBpfDir(), OBJECT_FILES), opts.kernel);
  const cookies = sourcesPlan.initial;
  // A bad policy directory refuses the start: no pod is redirected into unknown policy.
  const policies = new EnforcedPolicies({ dir: opts.policyDir, log });
  policies.start();

  const runDir = opts.runDir ?? DEFAULT_RUN_DIR;
  const drainTimeoutMs = validateDrainTimeout(opts.drainTimeoutMs);
  // The node's lock, or — while a running agent serves handovers — the place of its successor:
  // this agent then binds the same ports and takes over once it serves (agent/takeover.ts).
  let claim: NodeClaim;
  try {
    claim = await claimNode(runDir, opts.node, log);
  } catch (err) {
    policies.close();
    throw err;
  }
  let lock: NodeLock | undefined = claim.lock;
  let handover: HandoverServer | undefined;
  let stopping = false;
  let datapath: Datapath | undefined;
  let wire: WireEnforcement | undefined;
  let outbound: OutboundProxy | undefined;
  let traffic: TrafficRouter | undefined;
  let dns: DnsRuntime | undefined;
  let mesh: RunningAgent['mesh'];
  let sources: RunningWorkloadSources | undefined;
  let ready = false;
  const workloads = new LocalWorkloads();
  workloads.set(cookies);
  // One sink for every finished flow: access log, metrics, and the collector when meshed.
  const flowMetrics = new FlowMetrics();
  const reporter = opts.mesh ? new FlowReporter({ log, ...(opts.flowBuffer !== undefined ? { bufferSize: opts.flowBuffer } : {}) }) : undefined;
  const accessLog = opts.accessLog === 'none' ? undefined : new AccessLog(log, { mode: opts.accessLog ?? 'labeled', workloads });
  const flows = new FlowFanOut([accessLog, flowMetrics, reporter], log);
  const limits = createProxyLimits(limitSettings, { node: opts.node, flows, log });
  const dropTotals = new DropTotals(); // the per-pod filters' drops, one series per pod, reason and direction
  const metricsRegistry = opts.metricsAddress
    ? createAgentRegistry({
        flows: flowMetrics,
        ...(reporter ? { reporter } : {}),
        ...(opts.mesh ? { identities: () => mesh?.identities } : {}),
        datapath: () => datapath,
        enrollment: () => sources?.enrollment,
        limits,
        ...(opts.mesh ? { traffic: () => traffic } : {}),
        ...(opts.mesh ? { hbone: () => mesh && { source: mesh.pool.keepaliveFailures, destination: mesh.inbound.counters.keepaliveFailures } } : {}),
      })
    : undefined;
  if (metricsRegistry) dropTotals.register(metricsRegistry);
  const metrics = metricsRegistry
    ? new MetricsServer({
        registry: metricsRegistry,
        ready: () => ready && sources?.synced() === true,
        // Metrics are the node's: a pod's own connection to the listener is closed unanswered.
        refusePeer: (ip) => workloads.byIp(ip) !== undefined,
        log,
      })
    : undefined;
  let metricsAddress: RunningAgent['metricsAddress'];
  let tracer: MeshTracer | undefined;
  try {
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const sniffTimeoutMs = opts.sniffTimeoutMs ?? 5_000;
    const tracker = new ConnectionTracker();
    policies.on('change', (index: PolicyIndex) => {
      const closed = tracker.recheckAll(index);
      if (closed) log.info({ event: 'policy-enforced', closed }, 'closed established connections the new policies deny');
    });
    tracer = opts.tracing ? new MeshTracer({ ...opts.tracing, node: opts.node }) : undefined;
    if (metricsRegistry && tracer) registerTraceMetrics(metricsRegistry, tracer.counts.bind(tracer));
    const shared = {
      ...(tracer !== undefined && { tracer }),
      node: opts.node,
      policies,
      flows,
      tracker,
      log,
      connectTimeoutMs,
      sniffTimeoutMs,
      ...(opts.httpLimits ? { httpLimits: opts.httpLimits } : {}),
      limits,
    };
    const authz = new DestinationAuthz({ ...shared, proxyIp: opts.proxyIp });
    dns = new DnsRuntime({
      node: opts.node,
      proxyIp: opts.proxyIp,
      domain: dnsDomain,
      upstreams,
      ...(opts.hostsFile ? { hostsFile: opts.hostsFile } : {}),
      stateFile: dnsStateFile(opts.runDir ?? DEFAULT_RUN_DIR, opts.node),
      workloads,
      mesh: workloadNameSources(workloads, () => mesh?.registry),
      policies,
      flows,
      limits,
      log,
    });
    const egress = new Egress({ ...shared, names: dns.names });
    // Join the mesh first: a refused join or an unreachable collector must not leave a
    // half-configured node, and no pod is redirected before the proxy knows the mesh.
    if (opts.mesh && caPem && reporter) {
      mesh = await startMesh(opts.node, opts.proxyIp, opts.mesh, caPem, workloads, authz, policies, reporter, connectTimeoutMs, limits, log);
    }
    datapath = Datapath.install({
      node: opts.node,
      proxyIp: opts.proxyIp,
      proxyPort: opts.outboundPort ?? OUTBOUND_PORT,
      cgroup: opts.cgroup,
      bpffs: opts.bpffs,
      bpfDir: opts.bpfDir,
      limits: mapLimits,
      log,
    });
    datapath.setExclusions(opts.excludeCidrs ?? [], opts.excludePorts ?? []);
    enableRequestMigration(log);

    const dnsProxy = await dns.listen(datapath);
    const meshInputs: MeshInputs | undefined = mesh ? { registry: mesh.registry, pool: mesh.pool } : undefined;
    outbound = new OutboundProxy({
      node: opts.node,
      proxyIp: opts.proxyIp,
      datapath,
      workloads,
      mesh: meshInputs,
      log,
      authz,
      egress,
      flows,
      dns: dnsProxy,
      limits,
      ...(mesh ? { traffic: (traffic = new TrafficRouter({ ...shared, local: workloads, registry: mesh.registry, pool: mesh.pool, authz, connections: limits.connections, timeouts: limits.timeouts })) } : {}),
      nodeLocal: new NodeAddresses(
        agentPorts([opts.outboundPort ?? OUTBOUND_PORT, opts.mesh && (opts.mesh.hbonePort ?? HBONE_PORT), opts.metricsAddress?.port]),
        () => mesh?.registry.nodeAddresses(),
      ),
    });
    let address;
    try {
      address = await outbound.listen(opts.outboundPort ?? OUTBOUND_PORT);
    } catch (err) {
      throw new PalisadeError(
        'PALISADE_ERR_LISTEN',
        `cannot listen on ${opts.proxyIp}:${opts.outboundPort ?? OUTBOUND_PORT}: ${describeCause(err)}`,
        { cause: err },
      );
    }
    // The agent's cgroup is registered before any pod is enrolled, so a strict pod always takes
    // this agent's connections; the rules follow the enrolled pods from then on.
    wire = new WireEnforcement({
      node: opts.node,
      datapath,
      workloads,
      policies,
      registry: () => mesh?.registry,
      flows,
      totals: dropTotals,
      summaryIntervalMs: opts.summaryIntervalMs,
      ...(opts.maxWireRules !== undefined ? { maxRules: opts.maxWireRules } : {}),
      // `palisade status` shows a node whose UDP/ICMP rules could not be written.
      onStale: (problem) => mesh?.collector.reportWireRules(problem),
      log,
    });
    if (metricsRegistry) wire.register(metricsRegistry);
    wire.start();
    const enrollStarted = process.hrtime.bigint();
    const onRefused = (w: Workload, reason: string): void => flows.record(refusalFlow(opts.node, w, reason));
    sources = await sourcesPlan.start({ datapath, local: workloads, onRefused, ...(mesh ? { mesh: { identities: mesh.identities, collector: mesh.collector } } : {}) });
    log.info({ workloads: sources.enrollment.size, ms: Number(process.hrtime.bigint() - enrollStarted) / 1e6 }, 'workloads enrolled');
    for (const ifindex of datapath.sweepInterfaces()) log.info({ ifindex }, 'removed the filters of an interface no enrolled pod uses');
    ready = true;
    // Last, so every earlier refusal reads as before (its address is the proxy's or the node's,
    // both just proven usable), and before 'outbound listener ready', which callers wait for.
    // /healthz says 503 again once the agent is stopping.
    if (metrics && opts.metricsAddress) metricsAddress = await metrics.listen(opts.metricsAddress.host, opts.metricsAddress.port);
    log.info({ address: address.address, port: address.port, limits: limitSettings }, 'outbound listener ready');
    if (metricsAddress) log.info({ address: metricsAddress.address, port: metricsAddress.port }, 'metrics listener ready');
    const dp = datapath;
    const wr = wire;
    const ob = outbound;
    const m = mesh;
    const d = dns;
    const src = sources;
    let markStopped: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => (markStopped = resolve));
    let draining: Promise<void> | undefined;
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> =>
      (closing ??= (async () => {
        stopping = true;
        ready = false;
        await src.close();
        policies.close();
        await ob.close();
        await d.close();
        wr.close(); // its last summaries go out with the mesh's last flush
        if (m) await stopMesh(m);
        await tracer?.close().catch(() => undefined);
        await metrics?.close();
        await handover?.close().catch(() => undefined);
        dp.close();
        lock?.release();
        log.info('agent stopped; data path stays pinned (pods fail closed until an agent returns)');
        markStopped();
      })());
    const drain = (reason: string): Promise<void> =>
      (draining ??= (async () => {
        ready = false;
        const deadline = Date.now() + drainTimeoutMs;
        log.info({ reason, drainTimeoutMs }, 'draining: no longer accepting, finishing open connections');
        // The successor reports what the per-pod filters count and writes their rules from now on;
        // this agent's cgroup stays registered until it closes, for the connections it finishes.
        wr.stopReporting();
        // The node's pods are the successor's to enroll from now on (its sources already run).
        await src.close();
        // A draining agent keeps its collector session for its last flows but never says hello
        // again: a new hello would supersede its successor's session.
        m?.collector.stopReconnecting();
        await metrics?.close();
        const listeners = m ? [ob, m.inbound, dnsProxy] : [ob, dnsProxy];
        const { closedAtDeadline } = await drainConnections({ listeners, tracker: shared.tracker, deadline, log });
        const settled = reporter ? await reporter.settled(FLOW_SETTLE_MS) : true;
        log.info({ closedAtDeadline, flowsDelivered: settled }, 'drained');
        await close();
      })());
    const serveHandovers = { runDir, node: opts.node, log, state: () => (draining ? ('draining' as const) : ('serving' as const)) };
    const takeOverFromUs = async (successor: number): Promise<{ drainDeadline: Date }> => {
      // Before the answer: the successor reads what pods resolved through this agent when it hears it.
      d.handOver();
      void drain(`successor pid ${successor} takes over`);
      return { drainDeadline: new Date(Date.now() + drainTimeoutMs) };
    };
    if (lock) handover = await HandoverServer.listen({ ...serveHandovers, takeOver: takeOverFromUs });
    else if (claim.predecessor) {
      const fromPredecessor = (): void => d.takeNamesFromPredecessor();
      takeOver(claim.predecessor, { ...serveHandovers, takeOver: takeOverFromUs, cancelled: () => stopping, onReleased: fromPredecessor }).then(
        (got) => {
          if (!got) return;
          fromPredecessor(); // and what it learnt while draining
          if (stopping) {
            got.lock.release();
            void got.handover.close();
            return;
          }
          lock = got.lock;
          handover = got.handover;
        },
        (err: unknown) => {
          log.error({ reason: describeCause(err) }, 'take-over failed: stopping');
          void drain('take-over failed');
        },
      );
    }
    return {
      node: opts.node,
      datapath: dp,
      workloads,
      outboundAddress: { address: address.address, port: address.port },
      mesh: m,
      policies,
      dns: d,
      flows: { metrics: flowMetrics, reporter },
      metricsAddress,
      sources: src,
      drain,
      stopped,
      close,
    };
  } catch (err) {
    await sources?.close().catch(() => undefined);
    await outbound?.close().catch(() => undefined);
    await dns?.close().catch(() => undefined);
    limits.refusals.close();
    if (mesh) await stopMesh(mesh).catch(() => undefined);
    reporter?.close();
    await tracer?.close().catch(() => undefined);
    await metrics?.close().catch(() => undefined);
    wire?.close();
    datapath?.close();
    policies.close();
    lock?.release();
    throw err;
  }
}

function validateExclusions(cidrs: string[], ports: number[]): void {
  for (const c of cidrs) {
    try {
      encodeLpmKey(c);
    } catch {
      throw invalidArgument(`exclusion ${JSON.stringify(c)} is not an IPv4 CIDR like 10.96.0.0/12`);
    }
  }
  for (const p of ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) {
      throw invalidArgument(`excluded port ${p} is not a port (1-65535)`);
    }
  }
}

/** How long a drained agent waits for the collector to acknowledge its last flows. */
const FLOW_SETTLE_MS = 5_000;

function validateDrainTimeout(ms: number | undefined): number {
  if (ms === undefined) return DEFAULT_DRAIN_TIMEOUT_MS;
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_DRAIN_TIMEOUT_MS) {
    throw invalidArgument(`--drain-timeout must be from 0 to ${MAX_DRAIN_TIMEOUT_MS / 60_000} minutes, got ${ms} ms`);
  }
  return ms;
}

function validateFlowBuffer(n: number | undefined): void {
  if (n === undefined) return;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_FLOW_BUFFER) {
    throw invalidArgument(`--flow-buffer must be a number of records from 1 to ${MAX_FLOW_BUFFER}, got ${n}`);
  }
}

function readCa(m: MeshOptions): string {
  if (!isIPv4(m.nodeAddress)) {
    throw invalidArgument(`--node-address must be an IPv4 address, got ${JSON.stringify(m.nodeAddress)}`);
  }
  try {
    return fs.readFileSync(m.caFile, 'utf8');
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `cannot read mesh CA ${m.caFile}: ${describeCause(err)}`, { cause: err });
  }
}

/** Join the mesh: collector session, workload certificates, HBONE listener and pool. */
async function startMesh(
  node: string,
  proxyIp: string,
  m: MeshOptions,
  caPem: string,
  workloads: LocalWorkloads,
  authz: DestinationAuthz,
  policies: EnforcedPolicies,
  reporter: FlowReporter,
  connectTimeoutMs: number,
  limits: ProxyLimits,
  log: Logger,
): Promise<NonNullable<RunningAgent['mesh']>> {
  const registry = new MeshRegistry();
  const collector = new CollectorClient({
    url: m.collectorUrl,
    caPem,
    node,
    nodeAddress: m.nodeAddress,
    dataDir: path.resolve(m.dataDir),
    joinToken: m.joinToken,
    log,
    registry,
  });
  const identities = new IdentityManager({ source: collector, log });
  const pool = new HbonePool(identities, log, m.hbonePort ?? HBONE_PORT, connectTimeoutMs);
  const inbound = new InboundProxy({
    node,
    listenAddress: m.nodeAddress,
    proxyIp,
    identities,
    local: workloads,
    mesh: registry,
    log,
    authz,
    limits,
  });
  const running = { registry, identities, pool, inbound, collector, reporter };
  try {
    // Before the session opens, so the first 'connected' already flushes what is buffered.
    reporter.start(collector);
    // the collector client applies snapshots and deltas to `registry` itself
    collector.on('policies', (p: { version: number; files: PolicyFile[] }) => {
      const ok = policies.applyCollector(p.version, p.files);
      // The collector shows which version each agent enforces (`palisade status`).
      collector.reportPolicyStatus(p.version, ok, ok ? [] : policies.lastProblems);
    });
    collector.setWorkloads(
      workloads.all().map((w) => ({ name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount, ip: w.ip, labels: w.labels })),
    );
    // The collector sends its policies right after the registry; nothing is served before
    // they are in force (a node must not start open and close later).
    const firstPolicies = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'the collector sent no policies within 10 s of connecting')),
        10_000,
      );
      timer.unref();
      collector.once('policies', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    firstPolicies.catch(() => undefined);
    await collector.start(); // the registry is filled by then (the client applies to it)
    await firstPolicies;
    const local = workloads.all().map((w) => w.identity);
    identities.retain(local);
    await Promise.all([...new Set(local)].map((id) => identities.ready(id)));
    let addr;
    try {
      addr = await inbound.listen(m.hbonePort ?? HBONE_PORT);
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_LISTEN', `cannot listen on ${m.nodeAddress}:${m.hbonePort ?? HBONE_PORT}: ${describeCause(err)}`, {
        cause: err,
      });
    }
    log.info({ address: addr.address, port: addr.port, identities: local.length, registryVersion: registry.version }, 'hbone listener ready');
    return running;
  } catch (err) {
    await stopMesh(running).catch(() => undefined);
    throw err;
  }
}

async function stopMesh(m: NonNullable<RunningAgent['mesh']>): Promise<void> {
  m.pool.close();
  await m.inbound.close().catch(() => undefined);
  // After the listeners, so flows of the connections they just closed get a last flush.
  m.reporter.close();
  m.identities.close();
  await m.collector.close();
}

/** What pods resolved, kept from one agent of the node to the next (agent/dns/pod-names.ts). */
function dnsStateFile(runDir: string, node: string): string {
  return path.join(runDir, `${node}.dns-names.json`);
}

/** `palisade agent uninstall`: refuses while an agent for the node is running. */
export function uninstallNode(opts: { node: string; bpffs?: string; runDir?: string; log: Logger }): string[] {
  validateNodeName(opts.node);
  const lock: NodeLock = acquireNodeLock(opts.runDir ?? DEFAULT_RUN_DIR, opts.node);
  try {
    const removed = Datapath.uninstall(opts.node, opts.bpffs);
    fs.rmSync(dnsStateFile(opts.runDir ?? DEFAULT_RUN_DIR, opts.node), { force: true });
    opts.log.info({ node: opts.node, removed: removed.length }, 'data path uninstalled');
    return removed;
  } finally {
    lock.release();
  }
}
