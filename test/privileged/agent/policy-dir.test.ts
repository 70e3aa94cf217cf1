/**
 * `palisade agent --policy-dir` without a collector: the agent's own directory of policies,
 * enforced on the same-node path (L4 authorization, and per request for HTTP-level policies) and on
 * egress (CIDR rules for raw TCP),
 * reloaded on change, a bad change rejected while the previous policies stay in force.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../../agent/datapath/datapath';
import {
  agentArgs,
  cliPath,
  denyFromYaml,
  fixturePath,
  requirePrivileges,
  runClient,
  scaled,
  startAgentProcess,
  startEchoServer,
  sweepStale,
  tempDir,
  Topology,
  waitFor,
  workloadsYaml,
  type AgentProcess,
  type EchoServer,
  type NodeNs,
  type PodNs,
} from '../../harness';

const DENY_CLIENT = denyFromYaml({ name: 'deny-client', app: 'web', serviceAccount: 'client', ports: [7000] });

const EGRESS_CIDR = (cidr: string, port: number): string => `apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata:
  name: client-out
  namespace: default
spec:
  selector:
    matchLabels:
      app: client
  allow:
    - cidrs: ["${cidr}"]
      ports: [${port}]
`;

const ALLOW_GET = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-get
  namespace: default
spec:
  selector:
    matchLabels:
      app: web
  action: ALLOW
  rules:
    - to:
        - operation:
            methods: ["GET"]
`;

/** A one-line HTTP server for the web pod: 200 and its method for every request. */
const HTTP_SERVER = (ip: string, port: number): string =>
  `require('http').createServer((q, s) => s.end('served ' + q.method)).listen(${port}, '${ip}', () => console.log('listening'))`;

interface FlowLine {
  event: 'flow';
  direction: string;
  protocol: string;
  verdict: string;
  reason: string;
  policy?: string;
  rule?: number;
  http?: { method: string; path: string; status: number };
  destination: { ip: string; port: number };
  source: { workload?: string };
}

describe('agent --policy-dir (real eBPF, no collector)', function () {
  this.timeout(60_000);
  let topo: Topology;
  let node: NodeNs;
  let client: PodNs;
  let web: PodNs;
  let agent: AgentProcess;
  let policyDir: string;
  let ext: { ip: string };
  let webServer: EchoServer;

  const flows = (): FlowLine[] => agent.logs.lines.filter((l): l is FlowLine => (l as FlowLine)?.event === 'flow');
  const loaded = (): number => agent.logs.lines.filter((l) => (l as { event?: string })?.event === 'policy-loaded').length;
  const write = (name: string, text: string): void => {
    const tmp = path.join(policyDir, `.${name}.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(policyDir, name));
  };

  before(async function () {
    requirePrivileges();
    sweepStale();
    topo = await Topology.create({ label: 'policydir', nodes: 1 });
    node = topo.nodes[0]!;
    client = await topo.addPod(node, 'client');
    web = await topo.addPod(node, 'web');
    const host = await topo.addExternalHost('ext');
    ext = host;
    webServer = await startEchoServer(topo, web, web.ip, 7000);
    await startEchoServer(topo, host, host.ip, 7000);
    await startEchoServer(topo, host, host.ip, 7001);
    policyDir = tempDir('policies');
    agent = startAgentProcess(topo, node, {
      pods: [
        { pod: client, serviceAccount: 'client', labels: { app: 'client', 'palisade.dev/access-log': 'on' } },
        { pod: web, serviceAccount: 'web', strict: true, labels: { app: 'web', 'palisade.dev/access-log': 'on' } },
      ],
      extraArgs: ['--policy-dir', policyDir],
    });
    await agent.ready;
  });

  after(async function () {
    await agent?.stop('SIGKILL');
    for (const n of topo?.nodes ?? []) Datapath.uninstall(n.name);
    await topo?.destroy();
    if (policyDir) fs.rmSync(policyDir, { recursive: true, force: true });
  });

  it('a DENY written to the directory refuses new connections on the same-node path, with the policy in the flow', async () => {
    assert.equal((await runClient(topo, client, web.ip, 7000, 1000)).ok, true, 'allowed before any policy');
    const n = loaded();
    write('deny-client.yaml', DENY_CLIENT);
    await waitFor(() => loaded() > n || undefined, 3000, { what: 'the agent to load the new policy' });
    const accepted = webServer.accepts().length;
    const r = await runClient(topo, client, web.ip, 7000, 1000);
    assert.equal(r.ok, false);
    assert.equal(webServer.accepts().length, accepted, 'the denied connection never reached the pod');
    const f = flows().find((x) => x.verdict === 'denied' && x.destination.port === 7000);
    assert.ok(f, 'denied flow');
    assert.equal(f.policy, 'default/deny-client');
    assert.equal(f.rule, 0);
    assert.equal(f.reason, 'denied-by-policy');
    assert.equal(f.direction, 'inbound');
  });

  it('rejects an invalid change with file:line problems and keeps the previous policy in force', async () => {
    const rejected = (): number => agent.logs.lines.filter((l) => (l as { event?: string })?.event === 'policy-rejected').length;
    const before = rejected();
    write('bad.yaml', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: bad\nspec:\n  action: MAYBE\n');
    await waitFor(() => rejected() > before || undefined, 3000, { what: 'the agent to reject the file' });
    const line = agent.logs.lines.filter((l) => (l as { event?: string })?.event === 'policy-rejected').pop() as { problems: string[] };
    assert.ok(line.problems.some((p) => p.includes('bad.yaml:6:') && p.includes('MAYBE')), line.problems.join('\n'));
    assert.equal((await runClient(topo, client, web.ip, 7000, 1000)).ok, false, 'the DENY still holds');
    fs.rmSync(path.join(policyDir, 'bad.yaml'));
    const n = loaded();
    fs.rmSync(path.join(policyDir, 'deny-client.yaml'));
    await waitFor(() => loaded() > n || undefined, 3000, { what: 'the agent to load the empty directory' });
    assert.equal((await runClient(topo, client, web.ip, 7000, 1000)).ok, true, 'allowed again');
  });

  it('an HTTP-level policy on the same-node path decides each request: GET reaches the pod, DELETE gets the mesh\'s 403, each a flow with the policy', async () => {
    const server = topo.spawn(web, process.execPath, ['-e', HTTP_SERVER(web.ip, 8080)]);
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout!.once('data', () => resolve());
        server.once('exit', (code) => reject(new Error(`http server exited (${code})`)));
      });
      const n = loaded();
      write('web-get.yaml', ALLOW_GET);
      await waitFor(() => loaded() > n || undefined, 3000, { what: 'the agent to load the HTTP policy' });
      const casesDir = tempDir('http-cases');
      const cases = path.join(casesDir, 'cases.json');
      fs.writeFileSync(cases, JSON.stringify([
        { name: 'get', request: `GET /items HTTP/1.1\r\nHost: web:8080\r\nConnection: close\r\n\r\n` },
        { name: 'delete', request: `DELETE /items HTTP/1.1\r\nHost: web:8080\r\nConnection: close\r\n\r\n` },
      ]));
      const r = await topo.exec(client, process.execPath, [fixturePath('http-raw.js'), web.ip, '8080', cases], { timeoutMs: 15_000 });
      fs.rmSync(casesDir, { recursive: true, force: true });
      const got = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; statuses: number[]; body: string });
      assert.deepEqual(got.map((g) => [g.name, g.statuses]), [['get', [200]], ['delete', [403]]], r.stdout + r.stderr);
      assert.equal(got[0]!.body.includes('served GET'), true, 'the GET reached the pod');
      assert.equal(got[1]!.body.includes('served'), false, 'the DELETE never did');
      await waitFor(() => flows().filter((f) => f.protocol === 'http').length >= 2 || undefined, 3000, { what: 'the two HTTP flows' });
      const http = flows().filter((f) => f.protocol === 'http');
      const get = http.find((f) => f.http?.method === 'GET')!;
      assert.deepEqual([get.direction, get.verdict, get.reason, get.policy, get.rule, get.http!.status], ['inbound', 'allowed', 'allowed-by-policy', 'default/web-get', 0, 200]);
      const del = http.find((f) => f.http?.method === 'DELETE')!;
      assert.deepEqual([del.direction, del.verdict, del.reason, del.policy, del.http!.status], ['inbound', 'denied', 'no-allow-policy-matched', 'default/web-get', 403]);
    } finally {
      server.kill('SIGKILL');
      const n = loaded();
      fs.rmSync(path.join(policyDir, 'web-get.yaml'), { force: true });
      await waitFor(() => loaded() > n || undefined, 3000, { what: 'the agent to load the empty directory' });
    }
  });

  it('egress: a CIDR rule allows raw TCP to its port only; a pod without an EgressPolicy is unaffected', async () => {
    assert.equal((await runClient(topo, client, ext.ip, 7001, 1000)).ok, true, 'no egress policy yet');
    const n = loaded();
    write('client-out.yaml', EGRESS_CIDR(`${ext.ip}/32`, 7000));
    await waitFor(() => loaded() > n || undefined, 3000, { what: 'the agent to load the egress policy' });
    assert.equal((await runClient(topo, client, ext.ip, 7000, 1000)).ok, true, 'allowed port');
    const denied = await runClient(topo, client, ext.ip, 7001, 1000);
    assert.equal(denied.ok, false, 'another port');
    assert.equal((await runClient(topo, web, ext.ip, 7001, 1000)).ok, true, 'web has no egress policy');
    await waitFor(() => flows().some((f) => f.direction === 'egress' && f.verdict === 'denied') || undefined, 3000, { what: 'the denied egress flow' });
    const f = flows().find((x) => x.direction === 'egress' && x.verdict === 'denied')!;
    assert.equal(f.destination.port, 7001);
    assert.equal(f.reason, 'no-rule-matched');
    const ok = flows().find((x) => x.direction === 'egress' && x.verdict === 'allowed' && x.source.workload === 'client' && x.destination.port === 7000)!;
    assert.equal(ok.reason, 'allowed-by-cidr');
    assert.equal(ok.policy, 'default/client-out');
  });

  it('refuses to start on a policy directory that does not validate, before touching the kernel, with one line naming file and line', async () => {
    const dir = tempDir('badpolicies');
    const other = await topo.addPod(node, 'other');
    try {
      fs.writeFileSync(path.join(dir, 'x.yaml'), 'apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata:\n  name: x\nspec:\n  allow:\n    - cidrs: ["10.0.0.300/8"]\n');
      const workloads = path.join(dir, 'w.workloads');
      fs.writeFileSync(workloads, workloadsYaml([{ pod: other }]));
      const args = agentArgs({ ...node, name: 'policydir-bad' } as NodeNs, { cli: cliPath(), workloadsFile: workloads, cgroup: topo.cgroupPath, runDir: path.join(dir, 'run') });
      const r = spawnSync('nsenter', [`--net=${node.netnsPath}`, process.execPath, ...args.slice(0), '--policy-dir', dir], { encoding: 'utf8', timeout: scaled(20_000) });
      assert.equal(r.status, 1, r.stderr);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('palisade:'));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /x\.yaml:7:.*10\.0\.0\.300\/8/);
      assert.equal(fs.existsSync('/sys/fs/bpf/palisade/policydir-bad'), false, 'nothing was installed');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
