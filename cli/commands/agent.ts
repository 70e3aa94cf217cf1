/** `palisade agent` (run the node daemon) and `palisade agent uninstall`. */
import { DEFAULT_SAMPLE_RATE } from '../../agent/tracing/tracer';
import { InvalidArgumentError, type Command } from 'commander';
import * as fs from 'node:fs';
import { isIPv4 } from 'node:net';
import type { MeshOptions } from '../../agent/agent';
import { DEFAULT_MAX_PODS } from '../../agent/datapath/map-sizes';
import { MAX_RULES_PER_GENERATION } from '../../agent/datapath/pod-rules';
import { DEFAULT_ACCESS_LOG_MODE, isAccessLogMode, type AccessLogMode } from '../../agent/flows/access-log';
import { DEFAULT_FLOW_BUFFER, MAX_FLOW_BUFFER } from '../../agent/flows/reporter';
import { nodeCertPath } from '../../agent/mesh/node-identity';
import { METRICS_PORT } from '../../agent/metrics/server';
import { DEFAULT_HALF_CLOSED_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS } from '../../agent/proxy/pipe';
import { DEFAULT_REFUSAL_INTERVAL_MS } from '../../agent/proxy/refusals';
import { DEFAULT_SNIFF_BUDGET_BYTES } from '../../agent/proxy/limits/sniff-budget';
import { startMallocTrim } from '../../agent/runtime/malloc-trim';
import type { ProxyLimitOptions } from '../../agent/proxy/limits';
import { parseByteSize } from '../../common/byte-size';
import { formatDuration, parseDuration, parsePositiveDuration } from '../../common/duration';
import { describeCause, invalidArgument, PalisadeError } from '../../common/errors';
import { native } from '../../native';
import type { CliDeps } from '../deps';
import { collectCidr, collectPort, collectValue, parseIPv4 } from '../options';

/**
 * The agent itself (~160 modules: proxy, datapath, DNS, traffic…), loaded when an agent command
 * runs: every other `palisade` command registers this one and would otherwise load it too.
 */
const agentModule = (): typeof import('../../agent/agent') => require('../../agent/agent') as typeof import('../../agent/agent');

interface AgentFlags {
  node: string;
  proxyAddress: string;
  workloads?: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  trustDomain?: string;
  cniConfDir?: string;
  identityLinger: string;
  cgroup?: string;
  bpffs: string;
  runDir: string;
  excludeCidr: string[];
  excludePort: number[];
  logLevel?: string;
  /** Repeatable: collector replicas, tried in turn. */
  collector?: string[];
  collectorCa?: string;
  joinTokenFile?: string;
  dataDir?: string;
  nodeAddress?: string;
  policyDir?: string;
  hostsFile?: string;
  dnsUpstream: string[];
  dnsDomain: string;
  httpHeadersTimeout?: string;
  drainTimeout?: string;
  accessLog: AccessLogMode;
  flowBuffer: number;
  packetSummaryInterval: string;
  maxWireRules: number;
  metricsAddress?: { host: string; port: number } | 'off';
  traceOtlp?: string;
  traceSampleRate: number;
  maxConnectionsPerPod?: number;
  maxConnections?: number;
  maxInboundConnections?: number;
  maxPods?: number;
  kernelConnections?: number;
  sniffBudget: string;
  idleTimeout: string;
  halfClosedTimeout: string;
  refusalSummaryInterval: string;
}

/** An OTLP/HTTP traces URL; one with no path gets /v1/traces; no credentials in it. */
export function parseTraceUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`expected an http(s) URL, got ${JSON.stringify(value.slice(0, 64))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError(`expected an http: or https: URL, got ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw new InvalidArgumentError('the URL must not carry credentials');
  if (url.pathname === '/') url.pathname = '/v1/traces';
  return url.href;
}

export function parseSampleRate(value: string): number {
  const n = /^(0|1|0?\.\d+|1\.0*)$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError(`expected a rate from 0 to 1 (0.01 is 1 %), got ${JSON.stringify(value.slice(0, 64))}`);
  return n;
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!/^\d{1,9}$/.test(value) || n < 1) throw new InvalidArgumentError(`not a whole number of at least 1: ${value}`);
  return n;
}

function parseWireRules(value: string): number {
  const n = parseCount(value);
  if (n > MAX_RULES_PER_GENERATION) throw new InvalidArgumentError(`at most ${MAX_RULES_PER_GENERATION} (the kernel table's half), got ${value}`);
  return n;
}

/** The proxy's limits from the flags (defaults derived by the agent: agent/proxy/limits). */
function limitOptions(flags: AgentFlags): ProxyLimitOptions {
  return {
    ...(flags.maxConnectionsPerPod !== undefined ? { maxConnectionsPerPod: flags.maxConnectionsPerPod } : {}),
    ...(flags.maxConnections !== undefined ? { maxConnections: flags.maxConnections } : {}),
    ...(flags.maxInboundConnections !== undefined ? { maxInboundConnections: flags.maxInboundConnections } : {}),
    sniffBudgetBytes: parseByteSize(flags.sniffBudget, '--sniff-budget'),
    idleTimeoutMs: parseDuration(flags.idleTimeout, '--idle-timeout'),
    halfClosedTimeoutMs: parseDuration(flags.halfClosedTimeout, '--half-closed-timeout'),
    refusalIntervalMs: parsePositiveDuration(flags.refusalSummaryInterval, '--refusal-summary-interval'),
  };
}

function collectString(value: string, prev: string[] = []): string[] {
  return [...prev, value];
}

function parseAccessLog(value: string): AccessLogMode {
  if (!isAccessLogMode(value)) throw new InvalidArgumentError(`expected all, labeled or none, got ${value}`);
  return value;
}

function parseFlowBuffer(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_FLOW_BUFFER) throw new InvalidArgumentError(`not a number of records from 1 to ${MAX_FLOW_BUFFER}: ${value}`);
  return n;
}

/** `IP:PORT`, or `off`. */
function parseMetricsAddress(value: string): { host: string; port: number } | 'off' {
  if (value === 'off') return 'off';
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !isIPv4(m[1]!) || port > 65535) throw new InvalidArgumentError(`not an IPv4 IP:PORT (or off): ${value}`);
  return { host: m[1]!, port };
}

/** Default: port 15020 on the node address when meshed, else on the proxy address. */
function metricsAddress(flags: AgentFlags): { host: string; port: number } | undefined {
  if (flags.metricsAddress === 'off') return undefined;
  return flags.metricsAddress ?? { host: flags.nodeAddress ?? flags.proxyAddress, port: METRICS_PORT };
}

function meshOptions(flags: AgentFlags): MeshOptions | undefined {
  if (!flags.collector || flags.collector.length === 0) return undefined;
  if (!flags.collectorCa) throw invalidArgument('--collector needs --collector-ca FILE (the mesh CA certificate)');
  if (!flags.nodeAddress) throw invalidArgument('--collector needs --node-address IP (where HBONE :15008 listens)');
  let joinToken = process.env.PALISADE_JOIN_TOKEN || undefined;
  const dataDir = flags.dataDir ?? `/var/lib/palisade/${flags.node}`;
  // A node that has joined keeps its certificate: the token file (a Kubernetes Secret key per
  // node, deploy/kubernetes) may be gone then.
  if (flags.joinTokenFile && !(isMissing(flags.joinTokenFile) && fs.existsSync(nodeCertPath(dataDir)))) {
    try {
      joinToken = fs.readFileSync(flags.joinTokenFile, 'utf8').trim();
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `cannot read join token file ${flags.joinTokenFile}: ${describeCause(err)}`, {
        cause: err,
      });
    }
  }
  return {
    collectorUrl: flags.collector.length === 1 ? flags.collector[0]! : flags.collector,
    caFile: flags.collectorCa,
    joinToken,
    dataDir,
    nodeAddress: flags.nodeAddress,
  };
}

function isMissing(file: string): boolean {
  try {
    fs.statSync(file);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

export function registerAgentCommands(program: Command, deps: CliDeps): void {
  const agent = program.command('agent').description('the node agent: eBPF redirect + node proxy');
  agent
    .command('run', { isDefault: true })
    .description('run the agent (the default: `palisade agent --node N ...`)')
    .requiredOption('--node <name>', 'this node\'s name (pins live under <bpffs>/palisade/<name>/)', process.env.PALISADE_NODE)
    .requiredOption('--proxy-address <ip>', 'node proxy address pods are redirected to', parseIPv4)
    .option('--workloads <file>', 'YAML file of this node\'s workloads (watched)')
    .option('--kubernetes', 'enroll this node\'s pods from the Kubernetes API and palisade-cni (CNI socket in --run-dir)')
    .option('--kubeconfig <file>', 'with --kubernetes: the API from this kubeconfig (default: the pod\'s service account)')
    .option('--trust-domain <domain>', 'with --kubernetes: the SPIFFE trust domain of pod identities', 'cluster.local')
    .option('--cni-conf-dir <dir>', 'with --kubernetes: keep palisade-cni in this CNI configuration directory\'s chain (put back when the network plugin rewrites its file)')
    .option('--identity-linger <duration>', 'keep a workload certificate this long after its identity\'s last pod left (0s: drop at once)', '30s')
    .option('--cgroup <path>', 'cgroup v2 directory to attach to (default: the cgroup v2 root)')
    .option('--bpffs <path>', 'bpffs mount point', '/sys/fs/bpf')
    .option('--run-dir <path>', 'directory for the node lock, the CNI socket and the pod sandbox record', '/run/palisade')
    .option('--exclude-cidr <cidr>', 'never redirect this destination CIDR (repeatable)', collectCidr, [])
    .option('--exclude-port <port>', 'never redirect this destination port (repeatable)', collectPort, [])
    .option('--collector <url>', 'join the mesh: collector at wss://HOST:PORT or unix:/PATH; repeatable: collector replicas, the next one used when a session fails', collectValue)
    .option('--collector-ca <file>', 'mesh CA certificate (PEM) that the collector and every peer chain to')
    .option('--join-token-file <file>', 'join token for the first start (or env PALISADE_JOIN_TOKEN)')
    .option('--data-dir <dir>', 'node key and certificate (default /var/lib/palisade/<node>)')
    .option('--node-address <ip>', 'this node\'s address on the node network; HBONE :15008 listens there', parseIPv4)
    .option('--policy-dir <dir>', 'AuthorizationPolicy / EgressPolicy files to enforce (watched; merged with the collector\'s)')
    .option('--hosts-file <file>', 'hosts-format file whose names the DNS proxy answers itself')
    .option('--dns-upstream <ip[:port]>', 'server the DNS proxy forwards to (repeatable; default: the nameservers of /etc/resolv.conf)', collectString, [])
    .option('--dns-domain <domain>', 'cluster domain of mesh names (<workload>.<namespace>.svc.<domain>)', 'cluster.local')
    .option('--http-headers-timeout <duration>', 'cut off an HTTP client that has not sent its request headers within this time', '10s')
    .option('--access-log <mode>', 'access log of flows: all | labeled (workloads labeled palisade.dev/access-log: "on") | none', parseAccessLog, DEFAULT_ACCESS_LOG_MODE)
    .option('--flow-buffer <records>', 'flow records kept for the collector while it is slow or away; the oldest are dropped (and counted) past this', parseFlowBuffer, DEFAULT_FLOW_BUFFER)
    .option('--packet-summary-interval <duration>', 'how often what the per-pod filters dropped and let through (UDP, ICMP) becomes flow summaries', '10s')
    .option('--max-wire-rules <n>', 'UDP/ICMP rule entries written to the kernel at most; past it the pods whose rules changed are denied UDP/ICMP (fail closed) and it is retried', parseWireRules, MAX_RULES_PER_GENERATION)
    .option('--metrics-address <ip:port>', `serve /metrics and /healthz here, or "off" (default: the node address, else the proxy address, port ${METRICS_PORT})`, parseMetricsAddress)
    .option('--trace-otlp <url>', 'trace HTTP requests: send spans to this OTLP/HTTP endpoint (e.g. http://otel-collector:4318/v1/traces)', parseTraceUrl)
    .option('--trace-sample-rate <rate>', 'share of requests that arrive without a trace that start a sampled one, 0..1 (denied and 5xx are always traced)', parseSampleRate, DEFAULT_SAMPLE_RATE)
    .option('--drain-timeout <duration>', 'on SIGTERM or when a new agent takes the node over: stop accepting, let open connections finish this long, then close them', '30s')
    .option('--max-connections-per-pod <n>', 'connections one pod may hold open through the proxy (default: a quarter of --max-connections)', parseCount)
    .option('--max-connections <n>', 'connections this node\'s pods may hold open through the proxy (default: from the file descriptor limit)', parseCount)
    .option('--max-inbound-connections <n>', 'HBONE connections from other nodes served at once (default: from the file descriptor limit)', parseCount)
    .option('--max-pods <n>', `pods this node enrolls at most (the kernel's pod maps; more are refused and held without network; default ${DEFAULT_MAX_PODS})`, parseCount)
    .option('--kernel-connections <n>', 'connections the kernel\'s connection maps hold (default: --max-connections + --max-inbound-connections, 1,024 to 131,072)', parseCount)
    .option('--sniff-budget <bytes>', 'bytes held at once while reading clients\' first bytes (a pod: a quarter of it)', `${DEFAULT_SNIFF_BUDGET_BYTES / 1024 / 1024}MiB`)
    .option('--idle-timeout <duration>', 'close an L4 connection after this long without a byte either way (0s: never)', formatDuration(DEFAULT_IDLE_TIMEOUT_MS))
    .option('--half-closed-timeout <duration>', 'the same once one side has finished sending', formatDuration(DEFAULT_HALF_CLOSED_TIMEOUT_MS))
    .option('--refusal-summary-interval <duration>', 'refused connections beyond the first of a kind are logged and recorded as one summary per interval', formatDuration(DEFAULT_REFUSAL_INTERVAL_MS))
    .option('--log-level <level>', 'trace|debug|info|warn|error', undefined)
    .action(async (flags: AgentFlags) => {
      const mesh = meshOptions(flags);
      const limits = limitOptions(flags);
      const log = deps.logger(flags.logLevel);
      const running = await agentModule().startAgent({
        node: flags.node,
        proxyIp: flags.proxyAddress,
        workloadsFile: flags.workloads,
        ...(flags.kubernetes || flags.kubeconfig
          ? { kubernetes: { kubeconfig: flags.kubeconfig, trustDomain: flags.trustDomain, ...(flags.cniConfDir ? { cniConfDir: flags.cniConfDir } : {}) } }
          : {}),
        identityLingerMs: parseDuration(flags.identityLinger, '--identity-linger'),
        cgroup: flags.cgroup,
        bpffs: flags.bpffs,
        runDir: flags.runDir,
        excludeCidrs: flags.excludeCidr,
        excludePorts: flags.excludePort,
        mesh,
        ...(flags.policyDir ? { policyDir: flags.policyDir } : {}),
        ...(flags.hostsFile ? { hostsFile: flags.hostsFile } : {}),
        dnsUpstreams: flags.dnsUpstream,
        dnsDomain: flags.dnsDomain,
        httpLimits: { headersTimeoutMs: parsePositiveDuration(flags.httpHeadersTimeout ?? '10s', '--http-headers-timeout') },
        accessLog: flags.accessLog,
        flowBuffer: flags.flowBuffer,
        summaryIntervalMs: parsePositiveDuration(flags.packetSummaryInterval, '--packet-summary-interval'),
        maxWireRules: flags.maxWireRules,
        metricsAddress: metricsAddress(flags),
        drainTimeoutMs: parseDuration(flags.drainTimeout ?? '30s', '--drain-timeout'),
        limits,
        ...(flags.maxPods !== undefined ? { maxPods: flags.maxPods } : {}),
        ...(flags.kernelConnections !== undefined ? { kernelConnections: flags.kernelConnections } : {}),
        ...(flags.traceOtlp !== undefined && { tracing: { url: flags.traceOtlp, sampleRate: flags.traceSampleRate } }),
        log,
      });
      // Free heap pages glibc keeps after a burst go back to the kernel (agent/runtime/malloc-trim.ts).
      const trimmer = startMallocTrim(() => native.mallocTrim());
      // A signal drains (a second one ends the process at once); so does a successor's take-over.
      void deps.waitForStop().then((signal) => running.drain(`signal ${signal}`));
      await running.stopped;
      trimmer.stop();
    });

  agent
    .command('uninstall')
    .description('detach every program and remove every pin of a node (the agent must be stopped)')
    .requiredOption('--node <name>', 'node name', process.env.PALISADE_NODE)
    .option('--bpffs <path>', 'bpffs mount point', '/sys/fs/bpf')
    .option('--run-dir <path>', 'directory for the node lock', '/run/palisade')
    .option('-o, --output <format>', 'text|json', 'text')
    .action((flags: { node: string; bpffs: string; runDir: string; output: string }) => {
      const removed = agentModule().uninstallNode({ node: flags.node, bpffs: flags.bpffs, runDir: flags.runDir, log: deps.logger() });
      if (flags.output === 'json') deps.stdout(`${JSON.stringify({ node: flags.node, removed })}\n`);
      else deps.stdout(removed.length ? `removed ${removed.length} pins of node ${flags.node}\n` : `node ${flags.node} had nothing installed\n`);
    });
}
