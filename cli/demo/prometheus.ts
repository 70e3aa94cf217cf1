/**
 * `palisade demo up --with-prometheus`: Debian's Prometheus (`apt-get install prometheus`) in a
 * namespace of its own on the demo's node network, scraping both agents' /metrics (:15020 on each
 * node's address) every second, as a Prometheus in a cluster would. Two relays (cli/demo/relay.ts)
 * carry its web port to the host through a unix socket, for a browser or Grafana
 * (default 127.0.0.1:9090). Its data lives in the demo's directory and goes with `demo down`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArgument, PalisadeError } from '../../common/errors';
import { METRICS_PORT } from '../../agent/metrics/server';
import type { NsTarget, Topology } from '../../test/harness';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
/** Its address on the node network (the ext host is .100, its second address .110). */
export const PROMETHEUS_IP = '172.31.0.120';
export const DEFAULT_PROMETHEUS_LISTEN = '127.0.0.1:9090';
export const SCRAPE_INTERVAL_S = 1;
/** Where Prometheus listens inside its namespace; the relays carry this port to the host. */
const INNER_LISTEN = '127.0.0.1:9090';

export interface PrometheusState {
  pid: number;
  log: string;
  /** on the host: what a browser or Grafana opens */
  listen: string;
  dataDir: string;
  relays: Array<{ pid: number; log: string }>;
}

export interface ScrapeTarget {
  node: string;
  address: string;
}

/** The configuration file (JSON, which Prometheus reads as YAML): one job, one target per agent. */
export function prometheusConfig(targets: readonly ScrapeTarget[], intervalS = SCRAPE_INTERVAL_S): string {
  const config = {
    global: { scrape_interval: `${intervalS}s`, scrape_timeout: `${intervalS}s`, evaluation_interval: `${intervalS}s` },
    scrape_configs: [
      {
        job_name: 'palisade-agents',
        metrics_path: '/metrics',
        static_configs: targets.map((t) => ({ targets: [t.address], labels: { node: t.node } })),
      },
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** `127.0.0.1:9090` → the same; anything but a loopback IPv4 address and a port is refused. */
export function parsePrometheusListen(s: string): string {
  const m = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw invalidArgument(`--prometheus-listen ${JSON.stringify(s)}: want a loopback address and port, like ${DEFAULT_PROMETHEUS_LISTEN}`);
  return s;
}

export interface PrometheusDeps {
  /** start a detached process in `target` logging to `log`; resolves to its pid */
  startDaemon(target: NsTarget, args: string[], log: string, cmd?: string): number;
  waitForLog(file: string, needle: string, pid: number, timeoutMs: number): Promise<void>;
  /** the relay script (dist/cli/demo/relay.js) */
  relayScript: string;
}

/** Start Prometheus, its relays, and resolve once the host port answers. */
export async function startPrometheus(topo: Topology, dir: string, listen: string, deps: PrometheusDeps): Promise<PrometheusState> {
  if (!fs.existsSync(PROMETHEUS_BIN)) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `${PROMETHEUS_BIN} is missing: apt-get install prometheus (or make deps-test)`);
  const host = await topo.addExternalHost('prometheus', PROMETHEUS_IP);
  const base = path.join(dir, 'prometheus');
  const dataDir = path.join(base, 'data');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const configFile = path.join(base, 'prometheus.yml');
  fs.writeFileSync(configFile, prometheusConfig(topo.nodes.map((n) => ({ node: n.name, address: `${n.underlayIp}:${METRICS_PORT}` }))));
  const logs = path.join(dir, 'logs');
  const log = path.join(logs, 'prometheus.log');
  const pid = deps.startDaemon(
    host,
    [`--config.file=${configFile}`, `--storage.tsdb.path=${dataDir}`, '--storage.tsdb.retention.time=1d', `--web.listen-address=${INNER_LISTEN}`],
    log,
    PROMETHEUS_BIN,
  );
  const state: PrometheusState = { pid, log, listen, dataDir, relays: [] };
  const socket = path.join(base, 'web.sock');
  const relay = (target: NsTarget, name: string, from: string, to: string): { pid: number; log: string } => {
    const relayLog = path.join(logs, `${name}.log`);
    const r = { pid: deps.startDaemon(target, [deps.relayScript, from, to], relayLog), log: relayLog };
    state.relays.push(r);
    return r;
  };
  try {
    await deps.waitForLog(log, 'Server is ready to receive web requests.', pid, 30_000);
    const inner = relay(host, 'prometheus-relay-ns', `unix:${socket}`, `tcp:${INNER_LISTEN}`);
    await deps.waitForLog(inner.log, '"listening"', inner.pid, 10_000);
    const cg = path.join(topo.cgroupPath, 'prometheus-relay');
    fs.mkdirSync(cg, { recursive: true });
    const outer = relay({ netnsPath: '/proc/self/ns/net', cgroupPath: cg }, 'prometheus-relay-host', `tcp:${listen}`, `unix:${socket}`);
    await deps.waitForLog(outer.log, '"listening"', outer.pid, 10_000);
  } catch (err) {
    for (const p of [pid, ...state.relays.map((r) => r.pid)]) killQuietly(p);
    throw err;
  }
  return state;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
}
