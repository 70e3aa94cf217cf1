/**
 * The benchmark's world, built from the test harness: a collector, two nodes with a real
 * `palisade agent` each, a client pod (enrolled) and a plain client pod (not enrolled) on
 * node 1, two server pods on node 2 (same nginx; one selected by the L7 policy), and the
 * haproxy pair in the node namespaces. Every proxy has its own cgroup v2 directory (for
 * cpu.stat) and its own CPU budget. Everything is torn down by teardown(), and by the
 * harness's exit hooks if the process dies first.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Datapath } from '../../../agent/datapath/datapath';
import {
  agentArgs,
  cliPath,
  JsonLines,
  registerExitCleanup,
  startTestCollector,
  sweepStale,
  Topology,
  waitFor,
  waitForPort,
  workloadsYaml,
  type NodeNs,
  type NsTarget,
  type PodNs,
  type TestCollector,
} from '../../harness';
import { createBudget, sweepStaleBudgets, type Budget } from './budget';
import {
  CLIENT_SA,
  FORBIDDEN_PATH,
  HAPROXY_HTTP_PORT,
  HAPROXY_TLS_PORT,
  haproxyClientSide,
  haproxyServerSide,
  L7_APP,
  l7PolicyYaml,
  makeTls,
  nginxConf,
  SERVER_PORT,
  SMALL_PATH,
  TRUST_DOMAIN,
  WHOAMI_PATH,
  writeWww,
} from './configs';

export const PATHS = ['direct', 'palisade-l4', 'palisade-l7', 'palisade-routed', 'haproxy'] as const;

/**
 * The routed path: Service `bench-routed` (this VIP, port 80 → nginx's port) selects the L4 server
 * pod, and an HTTPRoute (one rule, one backend, weight 100) is attached to it, so node 1's proxy
 * parses and routes every request (issue #18's per-request routing cost on the source node); node 2
 * delivers at L4 as on the palisade-l4 path.
 */
const ROUTED_VIP = '10.96.0.80';
const ROUTED_PORT = 80;
const ROUTED_SERVICES = (targetPort: number): string => `services:
  - {name: bench-routed, namespace: default, vips: [${ROUTED_VIP}], ports: [{port: ${ROUTED_PORT}, targetPort: ${targetPort}}], selector: {app: bench-server}}
`;
const ROUTED_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench-routed, namespace: default}
spec:
  parentRefs: [{kind: Service, name: bench-routed, port: ${ROUTED_PORT}}]
  rules:
  - backendRefs: [{name: bench-routed, port: ${ROUTED_PORT}, weight: 100}]
`;
export type PathName = (typeof PATHS)[number];
export const PROXIES = ['agent-1', 'agent-2', 'haproxy-1', 'haproxy-2'] as const;
export type ProxyName = (typeof PROXIES)[number];

/** Which pod a path's load starts in, and the address it is sent to. */
export interface PathTarget {
  pod: PodNs;
  host: string;
  port: number;
  /** the proxies that carry it (their CPU is the path's) */
  proxies: ProxyName[];
}

export interface ProxyProcess {
  name: ProxyName;
  child: ChildProcess;
  /** its own cgroup v2 directory */
  cgroup: string;
  logs: JsonLines | undefined;
  stderr: string[];
  exited: Promise<void>;
}

export interface StackOptions {
  /** bytes of the bulk file */
  bulkBytes: number;
  /** node flags for the agents (e.g. --cpu-prof) */
  agentNodeFlags: string[];
  log: (line: string) => void;
}

export interface Stack {
  topo: Topology;
  dir: string;
  budget: Budget;
  paths: Record<PathName, PathTarget>;
  proxies: Record<ProxyName, ProxyProcess>;
  /** agent settings, as run */
  agentSettings: string[];
  /** what the setup checks saw */
  checks: Record<string, string>;
  teardown(): Promise<void>;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Widen the ephemeral port range and let TIME_WAIT ports be reused (new-connection workload). */
function tuneNetns(nsName: string): void {
  run('ip', ['netns', 'exec', nsName, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65000', 'net.ipv4.tcp_tw_reuse=1']);
}

/** Join `procsFile` (a v1 cpu cgroup) before exec'ing the command, when given. */
function budgeted(procsFile: string | undefined, cmd: string, args: string[]): [string, string[]] {
  if (!procsFile) return [cmd, args];
  return ['sh', ['-c', 'echo $$ > "$0" && exec "$@"', procsFile, cmd, ...args]];
}

function lastLines(lines: string[]): string {
  return lines.slice(-5).join(' | ');
}

export async function buildStack(opts: StackOptions): Promise<Stack> {
  const log = opts.log;
  sweepStale();
  sweepStaleBudgets();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-bench-'));
  const unregisterDir = registerExitCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  let collector: TestCollector | undefined;
  let topo: Topology | undefined;
  let budget: Budget | undefined;
  const children: ChildProcess[] = [];
  const nodeNames: string[] = [];
  let unregisterPins = (): void => undefined;
  let unregisterBudget = (): void => undefined;

  const teardown = async (): Promise<void> => {
    // Agents first, gently (SIGTERM: they flush and write --cpu-prof profiles), then everything.
    const agents = children.filter((c) => (c as ChildProcess & { palisadeAgent?: boolean }).palisadeAgent);
    await Promise.all(
      agents.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const n of nodeNames) Datapath.uninstall(n);
    unregisterPins();
    await topo?.destroy();
    budget?.removeSync();
    unregisterBudget();
    await collector?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
    unregisterDir();
  };

  try {
    collector = await startTestCollector();
    const coll = collector;
    registerExitCleanup(() => fs.rmSync(path.dirname(coll.dataDir), { recursive: true, force: true }));
    topo = await Topology.create({ label: 'bench', nodes: 2 });
    const t = topo;
    const [node1, node2] = t.nodes as [NodeNs, NodeNs];
    nodeNames.push(node1.name, node2.name);
    // Registered after the topology's own hook, so it runs after its processes were killed.
    unregisterPins = registerExitCleanup(() => {
      for (const n of nodeNames) Datapath.uninstall(n);
    });

    const client = await t.addPod(node1, 'client');
    const plain = await t.addPod(node1, 'plain');
    const server = await t.addPod(node2, 'server');
    const serverL7 = await t.addPod(node2, 'server-l7');
    for (const ns of [node1.nsName, node2.nsName, client.nsName, plain.nsName, server.nsName, serverL7.nsName]) tuneNetns(ns);

    // Proxy cgroups (v2, for cpu.stat) inside the topology's subtree: removed with it.
    const cg: Record<ProxyName, string> = {} as Record<ProxyName, string>;
    for (const p of PROXIES) {
      cg[p] = path.join(t.cgroupPath, `proxy-${p}`);
      fs.mkdirSync(cg[p]);
    }
    const label = `palisade-bench-${process.pid}-${randomBytes(3).toString('hex')}`;
    budget = createBudget(label, [...PROXIES], cg, 1, os.getPriority());
    const b = budget;
    unregisterBudget = registerExitCleanup(() => b.removeSync());
    const target = (node: NodeNs, p: ProxyName): NsTarget => ({ netnsPath: node.netnsPath, cgroupPath: cg[p] });

    // nginx, the same in both server pods.
    const www = path.join(dir, 'www');
    writeWww(www, opts.bulkBytes);
    for (const pod of [server, serverL7]) {
      const ndir = path.join(dir, `nginx-${pod.name}`);
      fs.mkdirSync(path.join(ndir, 'tmp'), { recursive: true });
      fs.writeFileSync(path.join(ndir, 'nginx.conf'), nginxConf({ dir: ndir, www, ip: pod.ip }));
      const c = t.spawn(pod, 'nginx', ['-p', ndir, '-c', path.join(ndir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
      children.push(c);
      const err: string[] = [];
      c.stderr!.setEncoding('utf8').on('data', (d: string) => err.push(d.trim()));
      await waitForPort(pod, pod.ip, SERVER_PORT, 10_000).catch((e: Error) => {
        throw new Error(`nginx in ${pod.name} did not start: ${lastLines(err)} ${e.message}`);
      });
    }

    const proxies = {} as Record<ProxyName, ProxyProcess>;
    const startProxy = (name: ProxyName, node: NodeNs, cmd: string, args: string[], agent: boolean): ProxyProcess => {
      const [c0, a0] = budgeted(b.procsFile(name), cmd, args);
      const child = t.spawn(target(node, name), c0, a0, { stdio: ['ignore', 'ignore', 'pipe'] });
      if (agent) (child as ChildProcess & { palisadeAgent?: boolean }).palisadeAgent = true;
      children.push(child);
      const stderr: string[] = [];
      const logs = agent ? new JsonLines(child.stderr!) : undefined;
      if (!agent) child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(...d.trim().split('\n')));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      proxies[name] = { name, child, cgroup: cg[name], logs, stderr, exited };
      return proxies[name];
    };

    // The haproxy pair.
    const tls = makeTls(path.join(dir, 'tls'));
    const hap1Cfg = path.join(dir, 'haproxy-1.cfg');
    const hap2Cfg = path.join(dir, 'haproxy-2.cfg');
    fs.writeFileSync(hap1Cfg, haproxyClientSide({ listen: node1.proxyIp, peer: node2.underlayIp, tls }));
    fs.writeFileSync(hap2Cfg, haproxyServerSide({ listen: node2.underlayIp, server: server.ip, tls }));
    run('haproxy', ['-c', '-q', '-f', hap1Cfg]);
    run('haproxy', ['-c', '-q', '-f', hap2Cfg]);
    const hap2 = startProxy('haproxy-2', node2, 'haproxy', ['-db', '-f', hap2Cfg], false);
    const hap1 = startProxy('haproxy-1', node1, 'haproxy', ['-db', '-f', hap1Cfg], false);
    await waitForPort({ netnsPath: node1.netnsPath, cgroupPath: t.cgroupPath }, node2.underlayIp, HAPROXY_TLS_PORT, 10_000).catch((e: Error) => {
      throw new Error(`haproxy-2 did not start: ${lastLines(hap2.stderr)} ${e.message}`);
    });
    await waitForPort(plain, node1.proxyIp, HAPROXY_HTTP_PORT, 10_000).catch((e: Error) => {
      throw new Error(`haproxy-1 did not start: ${lastLines(hap1.stderr)} ${e.message}`);
    });

    // The agents: joined to the collector; node 2 enforces the L7 policy from its own policy dir.
    const policyDir = path.join(dir, 'policies');
    fs.mkdirSync(policyDir);
    fs.writeFileSync(path.join(policyDir, 'bench-l7.yaml'), l7PolicyYaml());
    const agentSettings = ['--access-log none', '--log-level info (the default: no line per request or connection)', 'flow records streamed to the collector', 'metrics on :15020'];
    const startAgent = (name: ProxyName, node: NodeNs, pods: Parameters<typeof workloadsYaml>[0], extra: string[], services = ''): ProxyProcess => {
      const adir = path.join(dir, name);
      fs.mkdirSync(adir);
      const workloadsFile = path.join(adir, 'workloads.yaml');
      fs.writeFileSync(workloadsFile, workloadsYaml(pods) + services);
      const tokenFile = path.join(adir, 'join-token');
      fs.writeFileSync(tokenFile, coll.token(node.name, { nodeCidr: node.podCidr }), { mode: 0o600 });
      const args = agentArgs(node, {
        cli: cliPath(),
        workloadsFile,
        cgroup: t.cgroupPath,
        runDir: path.join(adir, 'run'),
        mesh: { collectorSocket: coll.socketPath, caFile: coll.caFile, tokenFile, dataDir: path.join(adir, 'data') },
      });
      return startProxy(name, node, process.execPath, [...opts.agentNodeFlags, ...args, '--access-log', 'none', ...extra], true);
    };
    const agent1 = startAgent('agent-1', node1, [{ pod: client, serviceAccount: CLIENT_SA, labels: { app: 'bench-client' } }], [], ROUTED_SERVICES(SERVER_PORT));
    const agent2 = startAgent(
      'agent-2',
      node2,
      [
        { pod: server, serviceAccount: 'server', labels: { app: 'bench-server' } },
        { pod: serverL7, serviceAccount: 'server-l7', labels: { app: L7_APP } },
      ],
      ['--policy-dir', policyDir],
    );
    const ready = (a: ProxyProcess): Promise<void> =>
      Promise.race([
        a.logs!.waitFor((l) => l?.msg === 'outbound listener ready', 30_000).then(() => undefined),
        a.exited.then(() => {
          throw new Error(`${a.name} exited before ready: ${lastLines(a.logs!.other)} ${JSON.stringify(a.logs!.lines.slice(-3))}`);
        }),
      ]);
    await Promise.all([ready(agent1), ready(agent2)]);
    // the routed path's HTTPRoute, through the collector's store, once the registry has its Service's endpoint
    await waitFor(() => coll.running.snapshot().services?.find((x) => x.name === 'bench-routed')?.endpoints.some((e) => e.ready), 20_000, { what: 'Service bench-routed and its endpoint in the registry' });
    const applied = await coll.running.policies.apply([{ source: 'bench-routed.yaml', text: ROUTED_ROUTE }], false, 'bench');
    if (!applied.applied) throw new Error(`the routed path's HTTPRoute was refused: ${JSON.stringify(applied)}`);
    log(`agents ready (pids ${agent1.child.pid}, ${agent2.child.pid}); haproxy pids ${hap1.child.pid}, ${hap2.child.pid}`);

    const paths: Record<PathName, PathTarget> = {
      direct: { pod: plain, host: server.ip, port: SERVER_PORT, proxies: [] },
      'palisade-l4': { pod: client, host: server.ip, port: SERVER_PORT, proxies: ['agent-1', 'agent-2'] },
      'palisade-l7': { pod: client, host: serverL7.ip, port: SERVER_PORT, proxies: ['agent-1', 'agent-2'] },
      'palisade-routed': { pod: client, host: ROUTED_VIP, port: ROUTED_PORT, proxies: ['agent-1', 'agent-2'] },
      haproxy: { pod: plain, host: node1.proxyIp, port: HAPROXY_HTTP_PORT, proxies: ['haproxy-1', 'haproxy-2'] },
    };
    const checks = await verify(t, paths, { clientIp: client.ip, plainIp: plain.ip, node2ProxyIp: node2.proxyIp, node2Underlay: node2.underlayIp });
    log(`setup checks passed: ${Object.entries(checks).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
    return { topo: t, dir, budget: b, paths, proxies, agentSettings, checks, teardown };
  } catch (err) {
    await teardown();
    throw err;
  }
}

interface Reply {
  status: string;
  body: string;
}

async function curl(topo: Topology, pod: PodNs | NsTarget, url: string, extra: string[] = []): Promise<Reply> {
  const r = await topo.exec(pod, 'curl', ['-s', '-m', '5', '-o', '-', '-w', '\n%{http_code}', ...extra, url], { timeoutMs: 10_000 });
  const out = r.stdout;
  const nl = out.lastIndexOf('\n');
  return { status: out.slice(nl + 1).trim() || `curl exit ${r.code}`, body: out.slice(0, Math.max(0, nl)) };
}

/**
 * Each path really is what it claims, before anything is measured (else the bench fails):
 * direct reaches nginx from the client's own address; the mesh paths arrive from node 2's
 * proxy; the L7 path carries the verified caller (XFCC) and answers 403 outside its rules,
 * as the haproxy pair does; haproxy-2 refuses a caller without a client certificate.
 */
async function verify(
  topo: Topology,
  paths: Record<PathName, PathTarget>,
  ips: { clientIp: string; plainIp: string; node2ProxyIp: string; node2Underlay: string },
): Promise<Record<string, string>> {
  const url = (p: PathName, suffix: string): string => `http://${paths[p].host}:${paths[p].port}${suffix}`;
  const expect = (what: string, ok: boolean, seen: unknown): void => {
    if (!ok) throw new Error(`setup check failed: ${what} (saw ${JSON.stringify(seen)})`);
  };
  const checks: Record<string, string> = {};
  // The mesh may need a moment for the registry and the policy: retry the first requests.
  const first = async (p: PathName): Promise<Reply> =>
    waitFor(async () => {
      const r = await curl(topo, paths[p].pod, url(p, WHOAMI_PATH));
      return r.status === '200' ? r : undefined;
    }, 20_000, { what: `${p}: GET ${WHOAMI_PATH} answered 200`, intervalMs: 200 });

  const direct = await first('direct');
  expect('direct: nginx sees the client pod itself', direct.body.startsWith(`${ips.plainIp}|`), direct.body);
  checks.direct = `peer ${direct.body.split('|')[0]}`;

  const l4 = await first('palisade-l4');
  expect('palisade-l4: delivered by node 2\'s proxy', l4.body.startsWith(`${ips.node2ProxyIp}|`), l4.body);
  const l4Admin = await curl(topo, paths['palisade-l4'].pod, url('palisade-l4', FORBIDDEN_PATH));
  expect('palisade-l4: no HTTP policy (nginx answers 404 for /admin)', l4Admin.status === '404', l4Admin.status);
  checks['palisade-l4'] = `peer ${l4.body.split('|')[0]}, ${FORBIDDEN_PATH} -> ${l4Admin.status}`;

  const l7 = await first('palisade-l7');
  const xfcc = `URI=spiffe://${TRUST_DOMAIN}/ns/default/sa/${CLIENT_SA}`;
  expect('palisade-l7: delivered by node 2\'s proxy with the verified caller (XFCC)', l7.body.startsWith(`${ips.node2ProxyIp}|`) && l7.body.includes(xfcc), l7.body);
  const l7Ok = await curl(topo, paths['palisade-l7'].pod, url('palisade-l7', SMALL_PATH));
  const l7Admin = await waitFor(async () => {
    const r = await curl(topo, paths['palisade-l7'].pod, url('palisade-l7', FORBIDDEN_PATH));
    return r.status === '403' ? r : undefined;
  }, 10_000, { what: `palisade-l7: GET ${FORBIDDEN_PATH} refused with 403`, intervalMs: 200 });
  const l7Post = await curl(topo, paths['palisade-l7'].pod, url('palisade-l7', SMALL_PATH), ['-X', 'POST', '--data', 'x']);
  expect(`palisade-l7: GET ${SMALL_PATH} allowed`, l7Ok.status === '200' && l7Ok.body.length === 1024, l7Ok.status);
  expect(`palisade-l7: POST ${SMALL_PATH} refused`, l7Post.status === '403', l7Post.status);
  checks['palisade-l7'] = `peer ${l7.body.split('|')[0]} with XFCC, GET ${SMALL_PATH} -> ${l7Ok.status}, GET ${FORBIDDEN_PATH} -> ${l7Admin.status}, POST -> ${l7Post.status}`;

  // routed: the route's flow on node 1 is not read here; nginx sees node 2's proxy (L4 delivery), and a
  // path no policy refuses reaches nginx (404), unlike the L7 path's 403
  const routed = await first('palisade-routed');
  expect('palisade-routed: delivered by node 2\'s proxy', routed.body.startsWith(`${ips.node2ProxyIp}|`), routed.body);
  const routedAdmin = await curl(topo, paths['palisade-routed'].pod, url('palisade-routed', FORBIDDEN_PATH));
  expect('palisade-routed: routed to the L4 server (nginx answers 404 for /admin)', routedAdmin.status === '404', routedAdmin.status);
  checks['palisade-routed'] = `peer ${routed.body.split('|')[0]}, ${FORBIDDEN_PATH} -> ${routedAdmin.status}`;

  const hap = await first('haproxy');
  expect('haproxy: delivered by haproxy-2 in node 2 with the caller\'s certificate', hap.body.startsWith(`${ips.node2ProxyIp}|`) && hap.body.includes('Subject=client'), hap.body);
  const hapAdmin = await curl(topo, paths.haproxy.pod, url('haproxy', FORBIDDEN_PATH));
  const hapPost = await curl(topo, paths.haproxy.pod, url('haproxy', SMALL_PATH), ['-X', 'POST', '--data', 'x']);
  expect(`haproxy: GET ${FORBIDDEN_PATH} refused`, hapAdmin.status === '403', hapAdmin.status);
  expect(`haproxy: POST ${SMALL_PATH} refused`, hapPost.status === '403', hapPost.status);
  const noCert = await curl(topo, paths.haproxy.pod, `https://${ips.node2Underlay}:${HAPROXY_TLS_PORT}${SMALL_PATH}`, ['-k', '--tlsv1.3']);
  expect('haproxy-2 refuses a caller without a client certificate', noCert.status !== '200', noCert.status);
  checks.haproxy = `peer ${hap.body.split('|')[0]} with the client certificate, GET ${FORBIDDEN_PATH} -> ${hapAdmin.status}, POST -> ${hapPost.status}, no client cert -> ${noCert.status}`;
  return checks;
}
