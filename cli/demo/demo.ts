/**
 * `palisade demo`: a local mesh on this machine built from the test harness —
 * nodes and pods are network namespaces, each node runs a real `palisade agent`
 * attached to the demo's own cgroup subtree (never the host's root cgroup). The
 * agents enroll pods as on Kubernetes: from the demo's Kubernetes API (./kube-api.ts)
 * joined with palisade-cni's ADD and DEL, the pods made by the CNI chain (./demo-kube.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file';
import { invalidArgument, PalisadeError } from '../../common/errors';
import { removeDemoConfig, writeDemoConfig } from '../config';
import { spiffeId } from '../../common/identity';
import { Datapath } from '../../agent/datapath/datapath';
import { TokenStore } from '../../collector/tokens';
import { generateKeyPair } from '../../common/pki';
import { CertificateAuthority } from '../../collector/mesh-ca';
import { agentArgs, ipBatch, spawnIn, Topology, waitFor, workloadsYaml, type TopologyDescription } from '../../test/harness';
import { alive, distRoot, startDaemon, waitForLog } from './daemons';
import { demoRunDir, openDemoKubelets, startKubeApi, type DemoKube, type DemoPodRecord, type DemoPodSpec } from './demo-kube';
import { NODE_KUBECONFIG } from './kube-api';
import { demoPodLabels } from './pod-request';
import { demoServices, serviceStatus, servicesYaml, type DemoServiceStatus } from './services';
import { startPrometheus, type PrometheusState } from './prometheus';
import { STATE_LOCK, withStateLock } from './state-lock';

import { DEFAULT_DEMO_DIR, TRUST_DOMAIN, WEB_PORT } from './settings';
export { DEFAULT_DEMO_DIR, TRUST_DOMAIN, WEB_PORT };

const PODS: DemoPodSpec[] = [
  { name: 'client', node: 'node-1', serviceAccount: 'client', strict: false, labels: demoPodLabels('client') },
  { name: 'web-1', node: 'node-1', serviceAccount: 'web', app: 'web', strict: true, labels: { ...demoPodLabels('web'), version: 'v1' } },
  { name: 'web-2', node: 'node-2', serviceAccount: 'web', app: 'web', strict: true, labels: { ...demoPodLabels('web'), version: 'v2' } },
];
/** How long an agent keeps a certificate after its identity's last pod left (the demo's pods come and go). */
const IDENTITY_LINGER = '5s';
const COLLECTOR_LISTEN = '127.0.0.1:15012';
/** The host outside the mesh, and the names the agents resolve to it (via the demo's hosts file). */
export const EXT_NAMES = ['allowed.example.test', 'blocked.example.test'];
const EXT_IP = '172.31.0.100';
/** A second address of the ext host that no name resolves to: SNI/Host spoofing lands here. */
const EXT_UNNAMED_IP = '172.31.0.110';

export interface DemoState {
  createdAt: string;
  topology: TopologyDescription;
  collector?: { pid: number; log: string; listen: string; socket: string; dataDir: string };
  agents: Array<{ node: string; pid: number; log: string }>;
  apps: Array<{ pod: string; pid: number; log: string }>;
  /** The demo's Kubernetes API (./kube-api.ts) and each node's way to it. */
  kube?: DemoKube;
  /** The pods made through the CNI chain (./demo-kube.ts), in the order they were made. */
  pods?: DemoPodRecord[];
  ext?: { pid: number; log: string; ip: string; unnamedIp: string; names: string[]; caFile: string };
  policyDir?: string;
  hostsFile?: string;
  /** `--with-prometheus` (cli/demo/prometheus.ts) */
  prometheus?: PrometheusState;
}

export interface DemoUpOptions {
  /** take a running demo down and start over (otherwise it is kept, with its flows, policies and audit log) */
  recreate?: boolean;
  /** also start Prometheus, scraping both agents, its web port on this host address */
  prometheusListen?: string;
}

export interface DemoPodStatus {
  name: string;
  node: string;
  ip: string;
  namespace: string;
  serviceAccount: string;
  identity: string;
  strict: boolean;
  labels: Record<string, string>;
  app: string | null;
}

function stateFile(dir: string): string {
  return path.join(dir, 'state.json');
}

/** Write the state file whole (a new file renamed over the old one). */
export function writeState(dir: string, state: DemoState): void {
  writeFileAtomic(stateFile(dir), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

export function readState(dir = DEFAULT_DEMO_DIR): DemoState | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile(dir), 'utf8')) as DemoState;
  } catch {
    return undefined;
  }
}

/** The demo's processes by name, and which of them are not running. */
export function demoProcesses(state: DemoState): Array<{ name: string; pid: number; running: boolean }> {
  const all = [
    ...(state.collector ? [{ name: 'collector', pid: state.collector.pid }] : []),
    ...(state.kube ? [{ name: 'kubernetes API', pid: state.kube.pid }, ...state.kube.bridges.map((b) => ({ name: `kubernetes API forwarder ${b.node}`, pid: b.pid }))] : []),
    ...state.agents.map((a) => ({ name: `agent ${a.node}`, pid: a.pid })),
    ...state.apps.map((a) => ({ name: a.pod, pid: a.pid })),
    ...(state.ext ? [{ name: 'ext', pid: state.ext.pid }] : []),
    ...(state.prometheus ? [{ name: 'prometheus', pid: state.prometheus.pid }, ...state.prometheus.relays.map((r, i) => ({ name: `prometheus relay ${i + 1}`, pid: r.pid }))] : []),
  ];
  return all.map((p) => ({ ...p, running: alive(p.pid) }));
}

/**
 * Bring the demo up; resolves to its state and whether it was created now. A demo that is
 * already up and whole is kept as it is (its flows, policies and audit log) unless `recreate`;
 * one with a stopped process is refused, naming it (recreate, or `demo down`). All of it under
 * the demo's lock (./state-lock.ts): a `demo pod add` meanwhile waits for the demo to be whole.
 */
export async function demoUp(dir = DEFAULT_DEMO_DIR, say: (line: string) => void = () => undefined, opts: DemoUpOptions = {}): Promise<{ state: DemoState; created: boolean }> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return withStateLock(dir, () => upLocked(dir, say, opts), () => {
    throw new PalisadeError('PALISADE_ERR_CONFLICT', `${dir} was removed while the demo was starting (a palisade demo down at the same time)`);
  });
}

async function upLocked(dir: string, say: (line: string) => void, opts: DemoUpOptions): Promise<{ state: DemoState; created: boolean }> {
  const running = readState(dir);
  if (running && opts.recreate) {
    say('a demo is already up: taking it down first (--recreate)');
    await takeDown(dir);
  } else if (running) {
    const stopped = demoProcesses(running).filter((p) => !p.running);
    if (stopped.length > 0) {
      throw new PalisadeError(
        'PALISADE_ERR_CONFLICT',
        `a demo is up in ${dir} but not all of it runs (${stopped.map((p) => `${p.name} stopped`).join(', ')}): palisade demo up --recreate starts over, palisade demo down removes it`,
      );
    }
    return { state: running, created: false };
  }
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true, mode: 0o700 });
  const topo = await Topology.create({ label: 'demo', nodes: 2, persistent: true });
  const state: DemoState = { createdAt: new Date().toISOString(), topology: topo.describe(), agents: [], apps: [] };
  const save = (): void => {
    state.topology = topo.describe();
    writeState(dir, state);
  };
  save(); // from here on, `demo down` can clean up whatever happens
  try {
    state.ext = await startExt(topo, dir);
    save();
    await waitForLog(state.ext.log, '"listening"', state.ext.pid, 10_000);
    const hostsFile = path.join(dir, 'hosts');
    fs.writeFileSync(hostsFile, `# names the demo's agents resolve (egress checks)\n${EXT_IP} ${EXT_NAMES.join(' ')}\n`);
    const policyDir = path.join(dir, 'policies');
    fs.mkdirSync(policyDir, { recursive: true, mode: 0o755 });
    state.policyDir = policyDir;
    state.hostsFile = hostsFile;
    const collectorDir = path.join(dir, 'collector');
    const socket = path.join(dir, 'collector.sock');
    const collectorCg = path.join(topo.cgroupPath, 'collector');
    fs.mkdirSync(collectorDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(collectorCg, { recursive: true });
    const collectorLog = path.join(dir, 'logs', 'collector.log');
    const collectorPid = startDaemon(
      { netnsPath: '/proc/self/ns/net', cgroupPath: collectorCg },
      [
        path.join(distRoot(), 'cli', 'main.js'),
        'collector',
        '--listen',
        COLLECTOR_LISTEN,
        '--agent-socket',
        socket,
        '--data',
        collectorDir,
        '--policy-dir',
        policyDir,
      ],
      collectorLog,
    );
    state.collector = { pid: collectorPid, log: collectorLog, listen: COLLECTOR_LISTEN, socket, dataDir: collectorDir };
    save();
    // The Kubernetes API comes up meanwhile: the two do not wait for each other.
    const kube = startKubeApi(topo, dir, (k) => {
      state.kube = k;
      save();
    });
    kube.catch(() => undefined); // awaited below, where its failure is thrown
    await waitForLog(collectorLog, 'collector ready', collectorPid, 20_000);
    const kubeconfig = (state.kube = await kube).hostKubeconfig;
    const tokens = new TokenStore(collectorDir);

    const started: Array<{ pid: number; log: string }> = [];
    for (const node of topo.nodes) {
      const tokenFile = path.join(dir, `${node.name}-join-token`);
      fs.writeFileSync(tokenFile, tokens.create({ node: node.name, nodeCidr: node.podCidr, scopes: [] }, 10 * 60_000).token, { mode: 0o600 });
      // The node's pods come from Kubernetes and CNI; the file declares the Services (hosts without Kubernetes do so).
      const file = path.join(dir, `${node.name}-workloads.yaml`);
      fs.writeFileSync(file, workloadsYaml([]) + servicesYaml(demoServices(WEB_PORT)));
      const log = path.join(dir, 'logs', `agent-${node.name}.log`);
      const args = agentArgs(node, {
        cli: path.join(distRoot(), 'cli', 'main.js'),
        workloadsFile: file,
        cgroup: topo.cgroupPath,
        runDir: demoRunDir(dir, node.name),
        mesh: { collectorSocket: socket, caFile: path.join(collectorDir, 'ca.crt'), tokenFile, dataDir: path.join(dir, node.name) },
      });
      args.push('--hosts-file', hostsFile, '--packet-summary-interval', '2s');
      args.push('--kubernetes', '--kubeconfig', path.join(dir, NODE_KUBECONFIG), '--identity-linger', IDENTITY_LINGER);
      const pid = startDaemon(node, args, log);
      state.agents.push({ node: node.name, pid, log });
      save();
      started.push({ pid, log });
    }
    // The agents come up side by side; each is ready once its workload sources have synced.
    await Promise.all(started.map(async ({ pid, log }) => {
      await waitForLog(log, 'outbound listener ready', pid, 30_000);
      await waitForLog(log, 'workload sources synced', pid, 30_000);
    }));

    // Pods: one node's one after the other (host-local hands out addresses in order), the nodes side by side.
    const kubelets = await openDemoKubelets(topo, dir, kubeconfig);
    const made = new Map<string, DemoPodRecord>();
    await Promise.all(
      topo.nodes.map(async (node) => {
        for (const spec of PODS.filter((p) => p.node === node.name)) made.set(spec.name, await kubelets.add(spec));
      }),
    );
    state.pods = PODS.map((p) => made.get(p.name)!);
    save();
    await Promise.all(PODS.filter((p) => p.app === 'web').map((spec) => startWebApp(state, spec.name, dir, save)));
    if (opts.prometheusListen !== undefined) {
      state.prometheus = await startPrometheus(topo, dir, opts.prometheusListen, { startDaemon, waitForLog, relayScript: path.join(distRoot(), 'cli', 'demo', 'relay.js') });
      save();
    }
    writeDemoConfig({ collectorDir, listen: COLLECTOR_LISTEN }); // `palisade observe` with no flags
    return { state, created: true };
  } catch (err) {
    await removeDemo(dir);
    throw err;
  }
}

/** Take the demo down and remove its directory; false when there was no demo (nothing removed). */
export async function demoDown(dir = DEFAULT_DEMO_DIR): Promise<boolean> {
  return withStateLock(dir, () => removeDemo(dir), () => false);
}

/** takeDown, then the directory with the lock file (a waiter then finds no demo). The caller holds the lock. */
async function removeDemo(dir: string): Promise<boolean> {
  const was = await takeDown(dir);
  if (was) fs.rmSync(dir, { recursive: true, force: true });
  return was;
}

/**
 * Stop the demo's processes, remove its pins, namespaces and files, all but the lock file, which
 * the caller holds; false when there is no demo (a directory without state.json is left alone).
 */
async function takeDown(dir: string): Promise<boolean> {
  const state = readState(dir);
  if (!state) return false;
  const pids = demoProcesses(state)
    .filter((p) => p.running)
    .map((p) => p.pid);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  await waitFor(() => pids.every((p) => !alive(p)) || undefined, 5000, { what: 'demo processes to stop' }).catch(() => {
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
  });
  for (const node of state.topology.nodes) Datapath.uninstall(node.name);
  await Topology.destroyDescribed(state.topology);
  removeDemoConfig({ collectorDir: state.collector?.dataDir ?? path.join(dir, 'collector'), listen: state.collector?.listen ?? COLLECTOR_LISTEN });
  for (const entry of fs.readdirSync(dir)) {
    if (entry !== STATE_LOCK) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
  return true;
}

export function demoStatus(state: DemoState): {
  pods: DemoPodStatus[];
  agents: Array<{ node: string; pid: number; running: boolean }>;
  collector: { pid: number; listen: string; running: boolean } | null;
  ext: { ip: string; unnamedIp: string; names: string[]; ports: number[]; caFile: string; running: boolean } | null;
  policyDir: string | null;
  prometheus: { pid: number; listen: string; running: boolean } | null;
  services: DemoServiceStatus[];
} {
  const pods = state.topology.pods.map((p) => {
    const spec = state.pods?.find((s) => s.name === p.name);
    const namespace = spec?.namespace ?? 'default';
    return {
      name: p.name,
      node: p.node,
      ip: p.ip,
      namespace,
      serviceAccount: spec?.serviceAccount ?? p.name,
      identity: spiffeId(TRUST_DOMAIN, namespace, spec?.serviceAccount ?? p.name),
      strict: spec?.strict ?? false,
      labels: spec?.labels ?? {},
      app: spec?.app ? `http :${WEB_PORT}` : null,
    };
  });
  return {
    prometheus: state.prometheus ? { pid: state.prometheus.pid, listen: state.prometheus.listen, running: alive(state.prometheus.pid) } : null,
    ext: state.ext
      ? { ip: state.ext.ip, unnamedIp: state.ext.unnamedIp, names: state.ext.names, ports: [80, 443], caFile: state.ext.caFile, running: alive(state.ext.pid) }
      : null,
    policyDir: state.policyDir ?? null,
    collector: state.collector ? { pid: state.collector.pid, listen: state.collector.listen, running: alive(state.collector.pid) } : null,
    pods,
    // Only a demo whose agents declare them (made since the demo had Services).
    services: state.kube ? serviceStatus(demoServices(WEB_PORT), pods) : [],
    agents: state.agents.map((a) => ({ node: a.node, pid: a.pid, running: alive(a.pid) })),
  };
}

/** The demo's web app in a pod, waited for until it listens. */
export async function startWebApp(state: DemoState, podName: string, dir: string, save: () => void): Promise<void> {
  const pod = state.topology.pods.find((p) => p.name === podName)!;
  const log = path.join(dir, 'logs', `${podName}.log`);
  const pid = startDaemon(pod, [path.join(distRoot(), 'cli', 'demo', 'web-app.js'), podName, pod.ip, String(WEB_PORT)], log);
  state.apps.push({ pod: podName, pid, log });
  save();
  await waitForLog(log, '"listening"', pid, 10_000);
}

/** The ext host: its own namespace on the node network, a second unnamed address, HTTP + HTTPS. */
async function startExt(topo: Topology, dir: string): Promise<NonNullable<DemoState['ext']>> {
  const host = await topo.addExternalHost('ext', EXT_IP);
  await ipBatch(host.nsName, [`addr add ${EXT_UNNAMED_IP}/24 dev ul0`]);
  const certDir = path.join(dir, 'ext');
  fs.mkdirSync(certDir, { recursive: true, mode: 0o700 });
  const ca = CertificateAuthority.loadOrCreate(path.join(certDir, 'ca'), 'demo.test');
  const key = await generateKeyPair();
  fs.writeFileSync(path.join(certDir, 'ext.key'), key.privateKeyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(certDir, 'ext.crt'), ca.issue(key.publicKeyPem, { dnsNames: EXT_NAMES, usage: 'server', ttlSeconds: 7 * 86_400, commonName: EXT_NAMES[0] }));
  const caFile = path.join(dir, 'ext-ca.crt');
  fs.writeFileSync(caFile, ca.certPem);
  const log = path.join(dir, 'logs', 'ext.log');
  const pid = startDaemon(host, [path.join(distRoot(), 'cli', 'demo', 'ext-server.js'), certDir], log);
  return { pid, log, ip: EXT_IP, unnamedIp: EXT_UNNAMED_IP, names: EXT_NAMES, caFile };
}

/** Run a command inside a demo pod (its netns and cgroup), like `kubectl exec`. */
export function demoExec(state: DemoState, podName: string, argv: string[]): Promise<number> {
  const pod = state.topology.pods.find((p) => p.name === podName) ?? state.topology.externalHosts.find((h) => h.name === podName);
  if (!pod) {
    const names = [...state.topology.pods, ...state.topology.externalHosts].map((p) => p.name).join(', ');
    throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no demo pod ${JSON.stringify(podName)} (pods: ${names})`);
  }
  const [cmd, ...args] = argv;
  if (!cmd) throw invalidArgument('nothing to run: palisade demo exec POD -- CMD [ARGS...]');
  return new Promise((resolve, reject) => {
    const child = spawnIn(pod, cmd, args, { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
