/** Run `palisade agent` as a real process inside a node namespace of a Topology. */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JsonLines, startFixture, type Fixture, type Spawner } from './fixtures';
import type { NodeNs, PodNs, Topology } from './topology';

export interface AgentPodSpec {
  pod: PodNs;
  namespace?: string;
  serviceAccount?: string;
  strict?: boolean;
  labels?: Record<string, string>;
  /** Name its host-side interface in the workloads file (otherwise the agent derives it). */
  interface?: boolean;
}

export interface AgentProcess {
  node: NodeNs;
  child: ChildProcess;
  /** pino JSON lines the agent wrote to stderr */
  logs: JsonLines;
  workloadsFile: string;
  runDir: string;
  /** Resolves when the agent said its outbound listener is ready; rejects if it exited first. */
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** The compiled CLI entry point (dist/cli/main.js). */
export function cliPath(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'dist', 'cli', 'main.js');
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`dist/cli/main.js not found above ${__dirname}; run make build`);
  }
}

/** The demo's web app (dist/cli/demo/web-app.js, answering as `name`) on pod:port, once it listens. */
export function startWebApp(s: Spawner, pod: PodNs, name: string, port = 8080): Promise<Fixture> {
  return startFixture(s, pod, process.execPath, [path.resolve(cliPath(), '..', 'demo', 'web-app.js'), name, pod.ip, String(port)], { name: `web-app ${name}` });
}

export function workloadsYaml(pods: AgentPodSpec[]): string {
  const lines = ['workloads:'];
  for (const p of pods) {
    lines.push(
      `  - name: ${p.pod.name}`,
      `    namespace: ${p.namespace ?? 'default'}`,
      `    serviceAccount: ${p.serviceAccount ?? p.pod.name}`,
      `    netns: ${p.pod.netnsPath}`,
      `    ip: ${p.pod.ip}`,
      `    strict: ${p.strict ? 'true' : 'false'}`,
    );
    if (p.interface) lines.push(`    interface: ${p.pod.hostIf}`);
    if (p.labels) lines.push(`    labels: ${JSON.stringify(p.labels)}`);
  }
  if (pods.length === 0) lines[0] = 'workloads: []';
  return `${lines.join('\n')}\n`;
}

export function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `palisade-${label}-`));
}

/** Where an agent joins the mesh (all paths absolute). */
export interface AgentMeshArgs {
  collectorSocket: string;
  /** More collectors (replicas), each a further `--collector`, used in turn after the first. */
  moreCollectorSockets?: string[];
  caFile: string;
  tokenFile: string;
  dataDir: string;
}

/** The `palisade agent` command line for a node; the one place tests and the demo build it. */
export function agentArgs(
  node: NodeNs,
  o: { cli: string; workloadsFile: string; cgroup: string; runDir: string; mesh?: AgentMeshArgs },
): string[] {
  const args = [o.cli, 'agent', '--node', node.name, '--proxy-address', node.proxyIp, '--workloads', o.workloadsFile];
  args.push('--cgroup', o.cgroup, '--run-dir', o.runDir);
  if (o.mesh) {
    args.push('--collector', `unix:${o.mesh.collectorSocket}`, '--collector-ca', o.mesh.caFile);
    for (const more of o.mesh.moreCollectorSockets ?? []) args.push('--collector', `unix:${more}`);
    args.push('--join-token-file', o.mesh.tokenFile, '--data-dir', o.mesh.dataDir, '--node-address', node.underlayIp);
  }
  return args;
}

export interface StartAgentOptions {
  pods: AgentPodSpec[];
  /** cgroup the programs attach to; default: the topology's own subtree. */
  cgroup?: string;
  extraArgs?: string[];
  /** appended to the workloads file: a `services:` section (YAML) */
  servicesYaml?: string;
  runDir?: string;
  mesh?: AgentMeshArgs;
  /** How long to wait for 'outbound listener ready' (default 15 s). */
  readyTimeoutMs?: number;
  /** The agent's file descriptor limit (soft and hard), set with prlimit before it starts. */
  nofile?: number;
}

export function startAgentProcess(topo: Topology, node: NodeNs, opts: StartAgentOptions): AgentProcess {
  const dir = tempDir(node.name);
  const runDir = opts.runDir ?? path.join(dir, 'run');
  const workloadsFile = path.join(dir, 'workloads.yaml');
  fs.writeFileSync(workloadsFile, workloadsYaml(opts.pods) + (opts.servicesYaml ?? ''));
  const args = [
    ...agentArgs(node, { cli: cliPath(), workloadsFile, cgroup: opts.cgroup ?? topo.cgroupPath, runDir, mesh: opts.mesh }),
    ...(opts.extraArgs ?? []),
  ];
  // prlimit execs the agent: the process (and its pid) is the agent's, with the limit from its first instruction.
  const child = opts.nofile
    ? topo.spawn(node, 'prlimit', [`--nofile=${opts.nofile}:${opts.nofile}`, process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : topo.spawn(node, process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs = new JsonLines(child.stderr!);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal });
    }),
  );
  const ready = Promise.race([
    logs.waitFor<unknown>((l) => l?.msg === 'outbound listener ready', opts.readyTimeoutMs ?? 15_000).then(() => undefined),
    exited.then(({ code, signal }) => {
      throw new Error(`agent ${node.name} exited before ready (${code ?? signal}): ${logs.other.join(' | ')}`);
    }),
  ]);
  ready.catch(() => undefined);
  return {
    node,
    child,
    logs,
    workloadsFile,
    runDir,
    ready,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
