/** `palisade collector` (run the collector) and `palisade collector token create`. */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_TRUST_DOMAIN, startCollector } from '../../collector/collector';
import { DEFAULT_LISTEN, parseListenAddress } from '../../collector/listen';
import { CertificateAuthority } from '../../collector/mesh-ca';
import { TokenStore } from '../../collector/tokens';
import { parsePositiveDuration } from '../../common/duration';
import { invalidArgument, PalisadeError } from '../../common/errors';
import { isTrustDomain } from '../../common/identity';
import type { CliDeps } from '../deps';

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
  logLevel?: string;
}

interface TokenCreateFlags {
  data: string;
  ttl: string;
  output: string;
}

const seconds = (text: string, what: string): number => Math.ceil(parsePositiveDuration(text, what) / 1000);

function positiveInteger(text: string, what: string): number {
  const n = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!(n > 0)) throw invalidArgument(`invalid ${what} ${JSON.stringify(text.slice(0, 64))}: expected a positive whole number`);
  return n;
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
      const log = deps.logger(flags.logLevel);
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
        ...(flags.kubernetes || flags.kubeconfig ? { kubernetes: { kubeconfig: flags.kubeconfig } } : {}),
        log,
      });
      const signal = await deps.waitForStop();
      log.info({ signal }, 'stopping');
      await running.stop();
    });

  const token = collector.command('token').description('join tokens for agents');
  token
    .command('create')
    .description('create a single-use join token (works while the collector is stopped or running)')
    .option('--data <dir>', 'the collector\'s data directory', DEFAULT_COLLECTOR_DATA_DIR)
    .option('--ttl <duration>', 'how long the token can be used', '1h')
    .option('-o, --output <format>', 'text|json', 'text')
    .action((flags: TokenCreateFlags) => {
      const output = checkOutput(flags.output);
      const ttlMs = parsePositiveDuration(flags.ttl, '--ttl');
      // A token only means something to a collector that owns this data dir (its CA is there).
      if (!fs.existsSync(path.join(flags.data, 'ca.crt'))) {
        throw new PalisadeError(
          'PALISADE_ERR_DATA_DIR',
          `${flags.data} is not a collector data directory (no ca.crt): start the collector with --data ${flags.data} first`,
        );
      }
      const created = new TokenStore(flags.data).create(ttlMs);
      if (output === 'json') {
        deps.stdout(`${JSON.stringify({ token: created.token, id: created.id, expiresAt: created.expiresAt.toISOString() })}\n`);
      } else {
        deps.stdout(`${created.token}\n`);
      }
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
