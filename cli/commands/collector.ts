/**
 * `palisade collector` (run the collector), `palisade collector token create` (a join token bound
 * to one node) and `palisade collector node list|revoke` (the nodes that joined). The token and
 * node commands work on the data directory, whether the collector runs or not.
 */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_LISTEN, parseListenAddress } from '../../collector/listen';
import { CertificateAuthority } from '../../collector/mesh-ca';
import { describeScopes, parseNodeCidr, parseScopes } from '../../collector/nodes/node-binding';
import { TokenStore } from '../../collector/tokens';
import { parseSinkSpecs } from '../../collector/sinks/sink-spec';
import { parseCaSecretRef } from '../../collector/kubernetes/ca-secret';
import { parsePositiveDuration } from '../../common/duration';
import { invalidArgument, PalisadeError } from '../../common/errors';
import { parseTraceUrl } from '../../common/trace-link';
import { DEFAULT_TRUST_DOMAIN, isDnsLabel, isTrustDomain } from '../../common/identity';
import { isNodeName } from '../../common/pki';
import type { CliDeps } from '../deps';
import { collectValue } from '../options';
import { formatTable } from '../table';

// The collector's code (its store, API, SQLite) and the node records are loaded when a command
// needs them, not when `palisade` declares its commands: `palisade agent` does not load them.
const nodeRecords = async (dir: string) => new (await import('../../collector/nodes/node-records')).NodeRecords(dir);

export const DEFAULT_COLLECTOR_DATA_DIR = '/var/lib/palisade/collector';

interface RunFlags {
  listen: string;
  agentSocket?: string;
  data: string;
  trustDomain: string;
  workloadCertTtl: string;
  nodeCertTtl: string;
  policyDir?: string;
  flowRetention: string;
  flowMaxRows: string;
  flowMaxBytes?: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  caSecret?: string;
  namespace?: string;
  replicaLease: string;
  flowSink: string[];
  traceUrl?: string;
  logLevel?: string;
}

interface TokenCreateFlags {
  data: string;
  ttl: string;
  output: string;
  node?: string;
  nodeCidr?: string;
  scope?: string[];
}

interface NodeFlags {
  data: string;
  output: string;
}

/** A token or node command only means something for a collector's data directory (its CA is there). */
function collectorDataDir(data: string): string {
  if (!fs.existsSync(path.join(data, 'ca.crt'))) {
    throw new PalisadeError('PALISADE_ERR_DATA_DIR', `${data} is not a collector data directory (no ca.crt): start the collector with --data ${data} first`);
  }
  return data;
}

function nodeName(text: string | undefined): string {
  if (text === undefined) throw invalidArgument('--node is required: a token joins exactly one node (--node NAME)');
  if (!isNodeName(text)) throw invalidArgument(`invalid --node ${JSON.stringify(text.slice(0, 64))}: lowercase letters, digits, '.', '-', '_', at most 63`);
  return text;
}

const seconds = (text: string, what: string): number => Math.ceil(parsePositiveDuration(text, what) / 1000);

function positiveInteger(text: string, what: string): number {
  const n = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!(n > 0)) throw invalidArgument(`invalid ${what} ${JSON.stringify(text.slice(0, 64))}: expected a positive whole number`);
  return n;
}

/** `--replica-lease`: whole seconds, 1 s to 1 h (a Lease's duration is in seconds). */
function leaseSeconds(text: string): number {
  const ms = parsePositiveDuration(text, '--replica-lease');
  if (ms % 1000 !== 0 || ms > 3_600_000) throw invalidArgument(`invalid --replica-lease ${JSON.stringify(text.slice(0, 64))}: whole seconds from 1s to 1h`);
  return ms / 1000;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** `500MB`, `2GiB`, `1073741824`: bytes. */
function byteSize(text: string, what: string): number {
  const m = /^(\d{1,15})([a-z]{0,3})$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!(n > 0) || !Number.isSafeInteger(n)) {
    throw invalidArgument(`invalid ${what} ${JSON.stringify(text.slice(0, 64))}: expected a size like 500MB or 2GiB`);
  }
  return n;
}

function checkOutput(output: string): 'text' | 'json' {
  if (output === 'text' || output === 'json') return output;
  throw invalidArgument(`invalid -o ${JSON.stringify(output)}: use text or json`);
}

export function registerCollectorCommands(program: Command, deps: CliDeps): void {
  const collector = program.command('collector').description('the central collector: mesh CA, join tokens, workload registry, flow store and API');
  collector
    .command('run', { isDefault: true })
    .description('run the collector (the default: `palisade collector --data DIR ...`)')
    .option('--listen <host:port>', 'address agents connect to', DEFAULT_LISTEN)
    .option('--agent-socket <path>', 'also serve agents on this Unix socket (for agents in other network namespaces)')
    .option('--data <dir>', 'data directory (CA key and certificate, join tokens, admin.token, flows.db)', DEFAULT_COLLECTOR_DATA_DIR)
    .option('--trust-domain <td>', 'SPIFFE trust domain of the mesh', DEFAULT_TRUST_DOMAIN)
    .option('--workload-cert-ttl <duration>', 'lifetime of workload certificates', '24h')
    .option('--node-cert-ttl <duration>', 'lifetime of node certificates', '30d')
    .option('--policy-dir <dir>', 'AuthorizationPolicy / EgressPolicy files pushed to every agent (watched for changes)')
    .option('--flow-retention <duration>', 'delete stored flows older than this', '7d')
    .option('--flow-max-rows <n>', 'keep at most this many stored flows (oldest deleted first)', '10000000')
    .option('--flow-max-bytes <size>', 'also keep the flow database under this size (e.g. 2GiB)')
    .option('--kubernetes', 'services and policies from the Kubernetes API (Services + EndpointSlices, AuthorizationPolicy, EgressPolicy)')
    .option('--kubeconfig <file>', 'with --kubernetes: the API from this kubeconfig (default: the pod\'s service account)')
    .option('--ca-secret <namespace/name>', 'with --kubernetes: the mesh CA from this Secret (ca.crt, ca.key; created when missing), shared by every collector replica, not the data directory')
    .option('--namespace <namespace>', 'with --kubernetes: the collector\'s own namespace, where each replica keeps its liveness Lease (default: the pod\'s, else the kubeconfig context\'s, else default)')
    .option('--replica-lease <duration>', 'with --kubernetes: this replica\'s Lease duration; the other replicas treat its nodes as offline when it is not renewed for this long (whole seconds)', '15s')
    .option('--flow-sink <sink>', 'also send every stored flow to otlp=<http(s) URL> (OTLP logs over HTTP/protobuf, e.g. http://otel-collector:4318/v1/logs); repeatable; sqlite is always on', collectValue, [])
    .option('--trace-url <template>', "link trace ids in the dashboard to your tracing UI: a URL with {traceId}, e.g. 'https://jaeger.example/trace/{traceId}'")
    .option('--log-level <level>', 'trace|debug|info|warn|error', undefined)
    .action(async (flags: RunFlags) => {
      parseListenAddress(flags.listen);
      if (!isTrustDomain(flags.trustDomain)) {
        throw invalidArgument(`invalid --trust-domain ${JSON.stringify(flags.trustDomain)}`);
      }
      const workloadCertTtlSeconds = seconds(flags.workloadCertTtl, '--workload-cert-ttl');
      const nodeCertTtlSeconds = seconds(flags.nodeCertTtl, '--node-cert-ttl');
      const flowRetentionMs = parsePositiveDuration(flags.flowRetention, '--flow-retention');
      const flowMaxRows = positiveInteger(flags.flowMaxRows, '--flow-max-rows');
      const flowMaxBytes = flags.flowMaxBytes === undefined ? undefined : byteSize(flags.flowMaxBytes, '--flow-max-bytes');
      const flowSinks = parseSinkSpecs(flags.flowSink);
      const traceUrl = flags.traceUrl === undefined ? undefined : parseTraceUrl(flags.traceUrl);
      if (flags.caSecret !== undefined && !flags.kubernetes && !flags.kubeconfig) throw invalidArgument('--ca-secret needs --kubernetes (the Secret is read through the Kubernetes API)');
      const caSecret = flags.caSecret === undefined ? undefined : parseCaSecretRef(flags.caSecret);
      const replicaLeaseSeconds = leaseSeconds(flags.replicaLease);
      if (flags.namespace !== undefined && !isDnsLabel(flags.namespace)) throw invalidArgument(`invalid --namespace ${JSON.stringify(flags.namespace.slice(0, 64))}: a namespace name (lowercase letters, digits, '-')`);
      const log = deps.logger(flags.logLevel);
      const { startCollector } = await import('../../collector/collector');
      const running = await startCollector({
        listen: flags.listen,
        agentSocket: flags.agentSocket,
        dataDir: flags.data,
        trustDomain: flags.trustDomain,
        workloadCertTtlSeconds,
        nodeCertTtlSeconds,
        ...(flags.policyDir ? { policyDir: flags.policyDir } : {}),
        flowRetentionMs,
        flowMaxRows,
        ...(flowMaxBytes !== undefined ? { flowMaxBytes } : {}),
        ...(flags.kubernetes || flags.kubeconfig
          ? { kubernetes: { kubeconfig: flags.kubeconfig, ...(caSecret ? { caSecret } : {}), ...(flags.namespace !== undefined ? { namespace: flags.namespace } : {}), replicaLeaseSeconds } }
          : {}),
        flowSinks,
        ...(traceUrl !== undefined && { traceUrl }),
        log,
      });
      const signal = await deps.waitForStop();
      log.info({ signal }, 'stopping');
      await running.stop();
    });

  const token = collector.command('token').description('join tokens for agents');
  token
    .command('create')
    .description('create a single-use join token for one node (works while the collector is stopped or running)')
    .option('--node <name>', 'the node this token joins (required): no other node can join with it')
    .option('--node-cidr <cidr>', "the node's pod range (IPv4): it may register workloads only at addresses inside it")
    .option('--scope <ns/sa>', 'namespace/serviceaccount or namespace/* the node may run; repeat for several (default: any)', collectValue)
    .option('--data <dir>', 'the collector\'s data directory', DEFAULT_COLLECTOR_DATA_DIR)
    .option('--ttl <duration>', 'how long the token can be used', '1h')
    .option('-o, --output <format>', 'text|json', 'text')
    .action((flags: TokenCreateFlags) => {
      const output = checkOutput(flags.output);
      const node = nodeName(flags.node);
      const ttlMs = parsePositiveDuration(flags.ttl, '--ttl');
      const nodeCidr = flags.nodeCidr === undefined ? undefined : parseNodeCidr(flags.nodeCidr);
      const scopes = parseScopes(flags.scope ?? []);
      const created = new TokenStore(collectorDataDir(flags.data)).create({ node, ...(nodeCidr === undefined ? {} : { nodeCidr }), scopes }, ttlMs);
      if (output === 'json') {
        const { binding } = created;
        deps.stdout(`${JSON.stringify({ token: created.token, id: created.id, expiresAt: created.expiresAt.toISOString(), ...binding })}\n`);
      } else {
        deps.stdout(`${created.token}\n`);
      }
    });

  const nodeCmd = collector.command('node').description('the nodes that joined: list them, revoke one');
  nodeCmd
    .command('list')
    .description('every node that joined: its pod range, scope, and when its certificate expires')
    .option('--data <dir>', 'the collector\'s data directory', DEFAULT_COLLECTOR_DATA_DIR)
    .option('-o, --output <format>', 'text|json', 'text')
    .action(async (flags: NodeFlags) => {
      const output = checkOutput(flags.output);
      const nodes = (await nodeRecords(collectorDataDir(flags.data))).list();
      if (output === 'json') return deps.stdout(`${JSON.stringify({ nodes })}\n`);
      if (nodes.length === 0) return deps.stdout('no node has joined\n');
      const rows = nodes.map((n) => [n.node, n.status, n.nodeCidr ?? 'any', describeScopes(n.scopes), n.joinedAt, n.certificateExpires]);
      deps.stdout(formatTable(['NODE', 'STATUS', 'POD RANGE', 'SCOPE', 'JOINED', 'CERTIFICATE EXPIRES'], rows));
    });
  nodeCmd
    .command('revoke')
    .argument('<node>', 'the node to revoke')
    .description("refuse the node's certificates from now on (its session is closed, its workloads leave the registry); it can join again with a new token")
    .option('--data <dir>', 'the collector\'s data directory', DEFAULT_COLLECTOR_DATA_DIR)
    .option('-o, --output <format>', 'text|json', 'text')
    .action(async (name: string, flags: NodeFlags) => {
      const output = checkOutput(flags.output);
      const node = nodeName(name);
      const revoked = (await nodeRecords(collectorDataDir(flags.data))).revoke(node);
      if (output === 'json') return deps.stdout(`${JSON.stringify({ node, revokedCertificates: revoked })}\n`);
      deps.stdout(
        `node ${node} revoked: ${revoked} certificate${revoked === 1 ? '' : 's'} refused from now on; ` +
          `to join it again: palisade collector token create --node ${node}\n`,
      );
    });

  collector
    .command('ca')
    .description('the mesh CA')
    .command('create')
    .description('create the mesh CA (ca.key, ca.crt) in a directory, e.g. for a Kubernetes Secret; an existing pair is kept')
    .requiredOption('--out <dir>', 'where to write ca.key (0600) and ca.crt')
    .option('--trust-domain <td>', 'SPIFFE trust domain of the mesh', DEFAULT_TRUST_DOMAIN)
    .action((flags: { out: string; trustDomain: string }) => {
      if (!isTrustDomain(flags.trustDomain)) throw invalidArgument(`invalid --trust-domain ${JSON.stringify(flags.trustDomain)}`);
      CertificateAuthority.loadOrCreate(flags.out, flags.trustDomain);
      deps.stdout(`${path.join(flags.out, 'ca.crt')}\n${path.join(flags.out, 'ca.key')}\n`);
    });
}
