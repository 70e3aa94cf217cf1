/**
 * The DNS proxy with the real kernel capture: pods' DNS to any resolver reaches the agent on
 * 15053 (glibc's connected UDP, unconnected UDP, TCP), mesh names are answered by the agent,
 * the rest forwarded to a stand-in node resolver (test/harness/dns-upstream.ts) on an external
 * host; egress host rules accept only addresses the pod itself resolved; hostile and misbehaving
 * DNS leaves the proxy serving and allows nothing.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../../agent/datapath/datapath';
import { parseResolvConf } from '../../../agent/dns/resolv-conf';
import {
  JsonLines,
  requirePrivileges,
  startFixture,
  startAgentProcess,
  sweepStale,
  tearDown,
  tempDir,
  Topology,
  waitFor,
  type AgentProcess,
  type ExternalHost,
  type NodeNs,
  type PodNs,
} from '../../harness';

/** A resolver no pod could reach without the capture: nothing has this address. */
const CLUSTER_DNS = '10.96.0.10';
/** The resolver glibc in a pod asks: the host's (pods here share its /etc/resolv.conf), unreachable from a pod too. */
const POD_RESOLVER = parseResolvConf(fs.readFileSync('/etc/resolv.conf', 'utf8'))[0]?.ip;

const EGRESS = (dns: 'Resolve' | 'Enforce'): string => `apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata: {name: client-out, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  dns: ${dns}
  allow:
    - hosts: ["*.example.test"]
      ports: [80]
`;

const HTTP_SERVER = (ip: string): string => `require('http').createServer((q, s) => s.end('ext ' + q.headers.host)).listen(80, '${ip}', () => console.log('listening'))`;

/** GET / with a Host header to an address, from a pod: the status, or the error code. */
const HTTP_GET = `const [ip, host] = process.argv.slice(1);
require('http').get({ host: ip, port: 80, headers: { host }, timeout: 5000 }, (r) => { r.resume(); r.on('end', () => console.log(r.statusCode)); })
  .on('error', (e) => console.log(e.code)).on('timeout', function () { this.destroy(); console.log('timeout'); });`;

interface FlowLine {
  event: 'flow';
  protocol: string;
  direction: string;
  verdict: string;
  reason: string;
  policy?: string;
  source: { workload?: string; ip: string };
  destination: { ip: string; port: number; host?: string };
  dns?: { type: string; rcode: string; answers: string[] };
}

describe('DNS proxy (real eBPF capture)', function () {
  this.timeout(90_000);
  let topo: Topology;
  let node: NodeNs;
  let client: PodNs;
  let client2: PodNs;
  let web: PodNs;
  let ext: ExternalHost;
  let ext2: ExternalHost;
  let agent: AgentProcess;
  let upstreamLog: JsonLines;
  let policyDir: string;
  let runDir: string;

  const harnessScript = (name: string): string => path.resolve(__dirname, '..', '..', 'harness', name);
  const flows = (): FlowLine[] => agent.logs.lines.filter((l): l is FlowLine => (l as FlowLine)?.event === 'flow');
  const dnsFlows = (): FlowLine[] => flows().filter((f) => f.protocol === 'dns');
  const upstreamAsked = (name: string, type = 1): number =>
    upstreamLog.lines.filter((l) => (l as { event?: string; name?: string; type?: number })?.event === 'query' && (l as { name: string }).name === name && (l as { type: number }).type === type).length;
  const loaded = (): number => agent.logs.lines.filter((l) => (l as { event?: string })?.event === 'policy-loaded').length;

  async function ask(pod: PodNs, mode: 'udp' | 'connected' | 'tcp' | 'raw', name: string, server = CLUSTER_DNS): Promise<Record<string, unknown>> {
    const r = await topo.exec(pod, process.execPath, [harnessScript('dns-client.js'), mode, server, name], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  /** `getent ahostsv4 NAME` in the pod (glibc: connected UDP, TCP after a truncated answer): its addresses. */
  async function getent(pod: PodNs, name: string): Promise<{ code: number | null; addresses: string[] }> {
    const r = await topo.exec(pod, 'getent', ['ahostsv4', name], { timeoutMs: 20_000 });
    const addresses = [...new Set(r.stdout.split('\n').map((l) => l.split(/\s+/)[0]).filter((a): a is string => !!a))];
    return { code: r.code, addresses };
  }

  async function httpGet(pod: PodNs, ip: string, host: string): Promise<string> {
    const r = await topo.exec(pod, process.execPath, ['-e', HTTP_GET, ip, host], { timeoutMs: 15_000 });
    return r.stdout.trim();
  }

  async function usePolicy(text: string): Promise<void> {
    const n = loaded();
    const tmp = path.join(policyDir, '.egress.tmp');
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(policyDir, 'egress.yaml'));
    await waitFor(() => loaded() > n || undefined, 5000, { what: 'the agent to load the policy' });
  }

  const agentOptions = (): Parameters<typeof startAgentProcess>[2] => ({
    pods: [
      { pod: client, labels: { app: 'client' } },
      { pod: client2, labels: { app: 'client' } },
      { pod: web, labels: { app: 'web' } },
    ],
    extraArgs: ['--dns-upstream', `${ext.ip}:53`, '--policy-dir', policyDir, '--access-log', 'all'],
    runDir,
  });

  before(async function () {
    requirePrivileges();
    assert.ok(POD_RESOLVER, '/etc/resolv.conf names an IPv4 nameserver (getent in the pods asks it)');
    sweepStale();
    topo = await Topology.create({ label: 'dns', nodes: 1 });
    node = topo.nodes[0]!;
    client = await topo.addPod(node, 'client');
    client2 = await topo.addPod(node, 'client2');
    web = await topo.addPod(node, 'web');
    ext = await topo.addExternalHost('ext');
    ext2 = await topo.addExternalHost('ext2');
    const table = {
      'named.example.test': [ext.ip],
      'other.example.test': [ext.ip],
      'ttl2.example.test': [ext.ip],
      bogus: [ext2.ip],
    };
    upstreamLog = (await startFixture(topo, ext, process.execPath, [harnessScript('dns-upstream.js'), ext.ip, '53', JSON.stringify(table)])).lines;
    for (const host of [ext, ext2]) {
      const s = topo.spawn(host, process.execPath, ['-e', HTTP_SERVER(host.ip)], { stdio: ['ignore', 'pipe', 'pipe'] });
      await new Promise<void>((resolve) => s.stdout!.once('data', () => resolve()));
    }
    policyDir = tempDir('dns-policies');
    fs.writeFileSync(path.join(policyDir, 'egress.yaml'), EGRESS('Resolve'));
    runDir = tempDir('dns-run');
    agent = startAgentProcess(topo, node, agentOptions());
    await agent.ready;
  });

  after(() => tearDown({ agents: [agent], topo, dirs: [policyDir, runDir] })); // the topology kills the servers it spawned

  it('mesh names resolve through the agent from a real pod: glibc (connected UDP), an unconnected socket, TCP', async () => {
    assert.deepEqual((await getent(client, 'web.default.svc.cluster.local')).addresses, [web.ip]);
    assert.deepEqual((await getent(client, 'client2')).addresses, [client2.ip], 'a short name, read in the pod\'s namespace');
    const udp = await ask(client, 'udp', 'web.default.svc.cluster.local');
    assert.deepEqual([udp.from, udp.rcode, udp.answers], [`${CLUSTER_DNS}:53`, 0, [web.ip]], 'the answer comes from the resolver the pod asked');
    const connected = await ask(client, 'connected', 'web.default');
    assert.deepEqual([connected.peer, connected.from, connected.answers], [`${CLUSTER_DNS}:53`, `${CLUSTER_DNS}:53`, [web.ip]], 'getpeername shows what was dialled');
    const tcp = await ask(client, 'tcp', 'web.default.svc.cluster.local');
    assert.deepEqual([tcp.peer, tcp.answers], [`${CLUSTER_DNS}:53`, [web.ip]]);
    assert.equal(upstreamAsked('web.default.svc.cluster.local'), 0, 'mesh names never go upstream');
  });

  it('a resolver on the pod\'s loopback is captured too, over UDP and TCP (the TCP one by dns.bpf.c straight to :15053)', async () => {
    const udp = await ask(client, 'udp', 'web.default.svc.cluster.local', '127.0.0.53');
    assert.deepEqual([udp.from, udp.answers], ['127.0.0.53:53', [web.ip]]);
    const tcp = await ask(client, 'tcp', 'web.default.svc.cluster.local', '127.0.0.53');
    assert.deepEqual([tcp.peer, tcp.answers], ['127.0.0.53:53', [web.ip]]);
  });

  it('forwards other names to the node\'s resolver, and every query is a dns flow record (name, answers, rcode, pod)', async () => {
    assert.deepEqual((await getent(client, 'named.example.test')).addresses, [ext.ip]);
    const f = dnsFlows().find((x) => x.destination.host === 'named.example.test' && x.dns?.type === 'A');
    assert.ok(f, 'the query\'s flow');
    assert.deepEqual([f.direction, f.source.workload, f.destination.ip, f.destination.port, f.dns?.rcode, f.dns?.answers, f.verdict, f.reason], [
      'outbound',
      'client',
      POD_RESOLVER,
      53,
      'NOERROR',
      [ext.ip],
      'allowed',
      'forwarded',
    ]);
    assert.equal((await getent(client, 'missing.example.test')).code, 2, 'NXDOMAIN passed on');
  });

  it('an egress host rule is satisfied only by addresses this pod resolved for that name', async () => {
    assert.equal(await httpGet(client2, ext.ip, 'other.example.test'), '403', 'never resolved: denied');
    assert.deepEqual((await getent(client, 'other.example.test')).addresses, [ext.ip]);
    assert.equal(await httpGet(client2, ext.ip, 'other.example.test'), '403', 'another pod\'s lookup does not count');
    assert.equal(await httpGet(client, ext.ip, 'other.example.test'), '200', 'its own lookup does');
    assert.equal(await httpGet(client, ext2.ip, 'other.example.test'), '403', 'an address the name did not resolve to (hard-coded) does not');
    const denied = flows().filter((f) => f.direction === 'egress' && f.verdict === 'denied' && f.destination.host === 'other.example.test');
    assert.ok(denied.length >= 3 && denied.every((f) => f.reason === 'host-address-mismatch'), JSON.stringify(denied));
  });

  it('an agent restart keeps what pods resolved: the allowed connection needs no new lookup', async () => {
    await agent.stop('SIGTERM');
    agent = startAgentProcess(topo, node, agentOptions());
    await agent.ready;
    assert.ok(agent.logs.lines.some((l) => (l as { msg?: string; restored?: number })?.msg?.startsWith('dns: what pods resolved') && (l as { restored: number }).restored > 0));
    assert.equal(await httpGet(client, ext.ip, 'other.example.test'), '200');
    assert.equal(await httpGet(client2, ext.ip, 'other.example.test'), '403');
  });

  it('DNS over TCP: glibc retries a truncated answer over TCP through the capture and gets it whole', async () => {
    const { addresses } = await getent(client, 'huge.example.test');
    assert.equal(addresses.length, 150);
    const udp = dnsFlows().find((f) => f.destination.host === 'huge.example.test' && f.reason.endsWith('-truncated'));
    assert.ok(udp, 'the UDP answer went out truncated');
  });

  it('hostile datagrams and misbehaving upstreams leave the proxy serving and allow nothing', async () => {
    // Asked all at once: each waits out a timeout (the client's for raw bytes that get nothing,
    // the proxy's upstream timeout for a SERVFAIL), which one after another took 10 s.
    const raws = ['', 'ffff', '1234010000010000000000000377777703777777c00c00010001', 'ab'.repeat(600)];
    for (const r of await Promise.all(raws.map((hex) => ask(client, 'raw', hex)))) {
      assert.ok(r.timeout || r.rcode === 1, JSON.stringify(r));
    }
    const failing = ['garbage.example.test', 'wrongq.example.test', 'silent.example.test'];
    const [wrongId, ...failed] = await Promise.all([ask(client, 'udp', 'wrongid.example.test'), ...failing.map((name) => ask(client, 'udp', name))]);
    failing.forEach((name, i) => assert.equal(failed[i]!.rcode, 2, `${name}: SERVFAIL (${JSON.stringify(failed[i])})`));
    assert.deepEqual(wrongId!.answers, ['192.0.2.60'], 'the forged answer with another ID was ignored');
    const forged = ['garbage.example.test', 'wrongq.example.test', 'wrongid.example.test'];
    const statuses = await Promise.all(forged.map((name) => httpGet(client, ext2.ip, name)));
    forged.forEach((name, i) => assert.equal(statuses[i], '403', `${name}: the forged address (${ext2.ip}) was never learned`));
    assert.deepEqual((await getent(client, 'web.default.svc.cluster.local')).addresses, [web.ip], 'still serving');
    assert.ok(dnsFlows().some((f) => f.reason === 'malformed-query'));
  });

  it('keeps answers for their TTL: asked upstream once within it, again after it', async () => {
    assert.deepEqual((await getent(client, 'ttl2.example.test')).addresses, [ext.ip]);
    assert.deepEqual((await getent(client2, 'ttl2.example.test')).addresses, [ext.ip]);
    assert.equal(upstreamAsked('ttl2.example.test'), 1, 'the second pod was answered from the cache');
    await new Promise((r) => setTimeout(r, 2200));
    await getent(client, 'ttl2.example.test');
    assert.equal(upstreamAsked('ttl2.example.test'), 2, 'the TTL ran out');
  });

  it('dns: Enforce answers NXDOMAIN for names no allow rule covers, recorded with the policy; mesh names and allowed names still resolve', async () => {
    await usePolicy(EGRESS('Enforce'));
    const asked = upstreamAsked('blocked.other.test');
    assert.equal((await getent(client, 'blocked.other.test')).code, 2);
    assert.equal(upstreamAsked('blocked.other.test'), asked, 'never forwarded');
    const f = dnsFlows().find((x) => x.destination.host === 'blocked.other.test');
    assert.deepEqual([f?.verdict, f?.reason, f?.policy, f?.dns?.rcode], ['denied', 'host-not-allowed', 'default/client-out', 'NXDOMAIN']);
    assert.deepEqual((await getent(client, 'named.example.test')).addresses, [ext.ip]);
    assert.deepEqual((await getent(client, 'web')).addresses, [web.ip]);
    assert.deepEqual((await getent(web, 'blocked.other.test')).code, 2, 'a workload no policy selects is forwarded (NXDOMAIN upstream)');
    assert.ok(upstreamAsked('blocked.other.test') > asked);
  });

  it('counts what the kernel captured (TCP to a loopback resolver; the rest went to the outbound listener: redirect.bpf.c\'s connect4 runs first)', async () => {
    const dp = Datapath.open(node.name);
    try {
      const s = dp.dnsStats();
      assert.ok(s.udp > 10 && s.tcp === 1, JSON.stringify(s));
      assert.deepEqual([s.storageFail, s.peerFail, s.origFail], [0, 0, 0]);
    } finally {
      dp.close();
    }
  });
});
