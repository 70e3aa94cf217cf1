/**
 * The per-pod filters on the wire (bpf/pod.bpf.c) against what an attacker in an enrolled pod can
 * do with the CAP_NET_RAW every pod gets: real agents, real packets crafted with AF_PACKET and raw
 * sockets (test/fixtures/raw-net.py), a sniffer where they would arrive. Every refusal must be
 * counted in the kernel and reported as a denied flow summary whose counts add up; with matching
 * UDP/ICMP policy the allowed traffic arrives, replies included. Regression tests carry the
 * attack of issue #14 in their name: each passed through on the code before.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../../agent/datapath/datapath';
import type { Direction, DropReason } from '../../../agent/datapath/pod-codec';
import type { FlowRecord } from '../../../common/flow';
import {
  cliPath,
  rawNet,
  nodeMetric,
  requirePrivileges,
  runClient,
  sendFrames,
  startAgentProcess,
  startEchoServer,
  startSniffer,
  startUdpServer,
  sweepStale,
  tearDown,
  tempDir,
  Topology,
  waitFor,
  type AgentProcess,
  type EchoServer,
  type ExternalHost,
  type NodeNs,
  type PodNs,
  type Running,
} from '../../harness';

type FlowLine = FlowRecord & { event: 'flow' };

/** Packets the filters dropped for one pod, reason and direction (the kernel's counter). */
function dropped(node: NodeNs, pod: PodNs, reason: DropReason, direction: Direction): bigint {
  const dp = Datapath.open(node.name);
  try {
    const id = dp.pods().find((p) => p.ip === pod.ip)?.podId;
    assert.ok(id, `${pod.name} is enrolled`);
    return dp.drops().filter((d) => d.podId === id && d.reason === reason && d.direction === direction).reduce((n, d) => n + d.packets, 0n);
  } finally {
    dp.close();
  }
}

function flows(agent: AgentProcess): FlowLine[] {
  return agent.logs.lines.filter((l): l is FlowLine => (l as FlowLine)?.event === 'flow');
}

function lastFlow(agent: AgentProcess, pred: (f: FlowLine) => boolean): FlowLine {
  const hit = flows(agent).filter(pred).pop();
  assert.ok(hit, 'a matching flow record');
  return hit;
}

/** Packets the agent's denied summaries for this pod and reason account for. */
function summarized(agent: AgentProcess, pod: PodNs, reason: string): number {
  return flows(agent)
    .filter((f) => f.verdict === 'denied' && f.reason === reason && (f.source.workload === pod.name || f.destination.workload === pod.name))
    .reduce((n, f) => n + (f.count ?? 0), 0);
}

describe('Per-pod filters on the wire (real eBPF, real packets)', function () {
  this.timeout(120_000);

  let topo: Topology;
  let node1: NodeNs;
  let node2: NodeNs;
  let client: PodNs; // node-1, enrolled: the attacker
  let web: PodNs; // node-1, enrolled, strict
  let stranger: PodNs; // node-1, not enrolled
  let web2: PodNs; // node-2, enrolled, strict
  let ext: ExternalHost;
  let agent1: AgentProcess;
  let agent2: AgentProcess;
  let webServer: EchoServer;
  let nodeService: EchoServer;
  let policyDir: string;
  const running: Running[] = [];
  let marker = 0;
  const mark = (what: string): string => `${what}-${process.pid}-${++marker}`;

  const agent1Spec = (): Parameters<typeof startAgentProcess>[2] => ({
    extraArgs: ['--access-log', 'all', '--packet-summary-interval', '1s', '--policy-dir', policyDir, '--log-level', 'debug'],
    pods: [
      { pod: client, serviceAccount: 'client', labels: { app: 'client' } },
      { pod: web, serviceAccount: 'web', strict: true, labels: { app: 'web' }, interface: true },
    ],
  });

  before(async function () {
    requirePrivileges();
    sweepStale();
    topo = await Topology.create({ label: 'podwire', nodes: 2 });
    [node1, node2] = topo.nodes as [NodeNs, NodeNs];
    client = await topo.addPod(node1, 'client');
    web = await topo.addPod(node1, 'web');
    stranger = await topo.addPod(node1, 'stranger');
    web2 = await topo.addPod(node2, 'web2');
    ext = await topo.addExternalHost('ext');
    policyDir = tempDir('podwire-policies');
    webServer = await startEchoServer(topo, web, web.ip, 7000);
    nodeService = await startEchoServer(topo, node1, '0.0.0.0', 10250); // a node-local service, like kubelet
    for (const [target, ip] of [[ext, ext.ip], [web, web.ip], [web2, web2.ip]] as const) running.push(await startUdpServer(topo, target, ip, 5140));
    agent1 = startAgentProcess(topo, node1, agent1Spec());
    agent2 = startAgentProcess(topo, node2, { pods: [{ pod: web2, serviceAccount: 'web', strict: true }], extraArgs: ['--packet-summary-interval', '1s'] });
    await Promise.all([agent1.ready, agent2.ready]);
  });

  after(() => tearDown({ agents: [agent1, agent2], topo, dirs: [policyDir] })); // the topology kills the servers it spawned

  /** palisade_dropped_packets_total of the client (from the pod) for `reason`, as node-1 reads it; throws if not exported. */
  const droppedMetric = (reason: string): Promise<number> =>
    nodeMetric(topo, node1, `${node1.proxyIp}:15020`, 'palisade_dropped_packets_total', { namespace: 'default', workload: 'client', reason, direction: 'from-pod' });
  const udpServer = (i: number): Running => running[i]!;
  const extUdp = (): Running => udpServer(0);
  const webUdp = (): Running => udpServer(1);
  const web2Udp = (): Running => udpServer(2);
  const received = (server: Running, payload: string): number => server.events('datagram').filter((d) => d.payload === payload).length;

  /** The counter moved by exactly `n` (or at least 1 with n undefined), and the summaries say the same. */
  async function countedAndReported(agent: AgentProcess, node: NodeNs, pod: PodNs, reason: DropReason, direction: Direction, before: bigint, reportedBefore: number, n?: number): Promise<void> {
    const now = dropped(node, pod, reason, direction);
    if (n === undefined) assert.ok(now > before, `${reason} counted for ${pod.name}`);
    else assert.equal(now - before, BigInt(n), `${reason} counted once per packet for ${pod.name}`);
    await waitFor(() => summarized(agent, pod, reason) - reportedBefore === Number(now - before) || undefined, 8000, {
      what: `denied summaries of ${reason} for ${pod.name} adding up to ${now - before}`,
    });
  }

  describe('UDP', function () {
    it('regression (UDP from an enrolled pod reached the ext host): a datagram to the ext host is dropped, counted and summarized', async function () {
      const payload = mark('udp-out');
      const [before, reported] = [dropped(node1, client, 'udp-not-allowed', 'from-pod'), summarized(agent1, client, 'udp-not-allowed')];
      await rawNet(topo, client, ['udp-send', ext.ip, '5140', payload, '3']);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(received(extUdp(), payload), 0, 'nothing reached the ext host');
      await countedAndReported(agent1, node1, client, 'udp-not-allowed', 'from-pod', before, reported);
      const summary = lastFlow(agent1, (f) => f.reason === 'udp-not-allowed' && f.source.workload === 'client');
      assert.deepEqual([summary.protocol, summary.direction, summary.destination.ip, summary.destination.port, summary.mtls], ['udp', 'egress', ext.ip, 5140, false]);
    });

    it('regression (plaintext UDP reached a strict pod on another node): dropped at the source', async function () {
      const payload = mark('udp-strict');
      const before = dropped(node1, client, 'udp-not-allowed', 'from-pod');
      await rawNet(topo, client, ['udp-send', web2.ip, '5140', payload, '2']);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(received(web2Udp(), payload), 0);
      assert.ok(dropped(node1, client, 'udp-not-allowed', 'from-pod') > before);
    });

    it('UDP from a pod outside the mesh to a strict pod is dropped at the strict pod, exactly once per packet', async function () {
      const payload = mark('udp-stranger');
      const [before, reported] = [dropped(node1, web, 'strict-udp-not-allowed', 'to-pod'), summarized(agent1, web, 'strict-udp-not-allowed')];
      await sendFrames(topo, stranger, 'eth0', { kind: 'udp', src: stranger.ip, dst: web.ip, sport: 40001, dport: 5140, payload, count: 4 });
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(received(webUdp(), payload), 0);
      await countedAndReported(agent1, node1, web, 'strict-udp-not-allowed', 'to-pod', before, reported, 4);
    });
  });

  describe('TCP around the proxy', function () {
    it('regression (an AF_PACKET handshake from an unowned pod-subnet address reached the ext host): the SYN is dropped as spoofed', async function () {
      const payload = mark('syn-spoof');
      const sniff = await startSniffer(topo, ext, 'ul0', payload);
      running.push(sniff);
      const [before, reported] = [dropped(node1, client, 'spoofed-source', 'from-pod'), summarized(agent1, client, 'spoofed-source')];
      await sendFrames(topo, client, 'eth0', { kind: 'tcp', src: '10.0.1.77', dst: ext.ip, sport: 40000, dport: 80, flags: 'S', payload, count: 3 });
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(sniff.events('ip'), [], 'nothing reached the ext host');
      await countedAndReported(agent1, node1, client, 'spoofed-source', 'from-pod', before, reported, 3);
      const summary = lastFlow(agent1, (f) => f.reason === 'spoofed-source' && f.source.workload === 'client');
      assert.deepEqual([summary.source.ip, summary.destination.ip, summary.protocol], ['10.0.1.77', ext.ip, 'tcp'], 'the summary shows the address the pod claimed');
      sniff.stop();
    });

    it('a hand-made SYN from the pod\'s own address to anything but the proxy is dropped, and so is an ACK with data outside every connection', async function () {
      const payload = mark('raw-tcp');
      const sniff = await startSniffer(topo, ext, 'ul0', payload);
      running.push(sniff);
      const syn = dropped(node1, client, 'tcp-not-redirected', 'from-pod');
      const ack = dropped(node1, client, 'tcp-no-connection', 'from-pod');
      await sendFrames(topo, client, 'eth0', { kind: 'tcp', src: client.ip, dst: ext.ip, sport: 40002, dport: 80, flags: 'S', payload, count: 2 });
      await sendFrames(topo, client, 'eth0', { kind: 'tcp', src: client.ip, dst: ext.ip, sport: 40002, dport: 80, flags: 'PA', payload: `GET / ${payload}`, count: 2 });
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(sniff.events('ip'), []);
      assert.equal(dropped(node1, client, 'tcp-not-redirected', 'from-pod') - syn, 2n);
      assert.equal(dropped(node1, client, 'tcp-no-connection', 'from-pod') - ack, 2n);
      sniff.stop();
    });

    it('regression (a pod reached a node-local port through the proxy address): TCP and UDP to 10.0.x.1:10250 are dropped', async function () {
      const before = dropped(node1, client, 'proxy-port', 'from-pod');
      const accepts = nodeService.accepts().length;
      const res = await runClient(topo, client, node1.proxyIp, 10250, 10, 1500);
      assert.equal(res.ok, false, JSON.stringify(res));
      await rawNet(topo, client, ['udp-send', node1.proxyIp, '10250', mark('udp-proxy'), '1']);
      assert.equal(nodeService.accepts().length, accepts, 'the node-local service never saw it');
      await waitFor(() => dropped(node1, client, 'proxy-port', 'from-pod') >= before + 2n || undefined, 3000, { what: 'proxy-port drops' });
    });

    it('a node-local port through the node\'s own address is refused by the proxy, as a denied flow', async function () {
      const accepts = nodeService.accepts().length;
      const res = await runClient(topo, client, node1.underlayIp, 10250, 10, 3000);
      assert.equal(res.ok, false, JSON.stringify(res));
      assert.equal(nodeService.accepts().length, accepts);
      const f = await agent1.logs.waitFor<FlowLine>((l) => l?.event === 'flow' && l.reason === 'node-local-destination', 3000);
      assert.deepEqual([f.verdict, f.source.workload, f.destination.ip, f.destination.port], ['denied', 'client', node1.underlayIp, 10250]);
    });

    it('still carries what the mesh carries: a redirected connection to a strict pod, the DNS port on the proxy address', async function () {
      const res = await runClient(topo, client, web.ip, 7000, 64 * 1024, 5000);
      assert.ok(res.ok && res.sha256Match, JSON.stringify(res));
      assert.equal(webServer.accepts().at(-1)!.remoteAddress, node1.proxyIp);
    });
  });

  describe('spoofing', function () {
    it('regression (ARP spoofing of the proxy address towards a strict pod): the forged ARP reply never reaches it', async function () {
      const mac = (await rawNet(topo, client, ['mac', 'eth0'])).mac as string;
      const sniff = await startSniffer(topo, web, 'eth0', node1.proxyIp);
      running.push(sniff);
      const [before, reported] = [dropped(node1, client, 'spoofed-arp', 'from-pod'), summarized(agent1, client, 'spoofed-arp')];
      await sendFrames(topo, client, 'eth0', { kind: 'arp', arpOp: 2, arpSenderIp: node1.proxyIp, arpTargetIp: web.ip, count: 3 });
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(sniff.events('arp').filter((a) => a.senderMac === mac), [], 'no ARP from the client claiming the proxy address arrived');
      await countedAndReported(agent1, node1, client, 'spoofed-arp', 'from-pod', before, reported, 3);
      const summary = lastFlow(agent1, (f) => f.reason === 'spoofed-arp');
      assert.deepEqual([summary.protocol, summary.source.ip, summary.destination.ip], ['arp', node1.proxyIp, web.ip]);
      sniff.stop();
    });

    it('regression (a SYN from the proxy address reached a strict pod): neither an enrolled pod nor one outside the mesh gets it in', async function () {
      const payload = mark('syn-proxy');
      const sniff = await startSniffer(topo, web, 'eth0', payload);
      running.push(sniff);
      const webMac = (await rawNet(topo, web, ['mac', 'eth0'])).mac as string;
      const spoofed = dropped(node1, client, 'spoofed-source', 'from-pod');
      const strict = dropped(node1, web, 'strict-not-from-agent', 'to-pod');
      // From the attacker: its source check stops it. From a pod without filters of its own: the
      // strict pod's filter stops it, because the packet comes from no socket of the agent.
      await sendFrames(topo, client, 'eth0', { kind: 'tcp', src: node1.proxyIp, dst: web.ip, sport: 41000, dport: 7000, flags: 'S', payload, dstMac: webMac });
      await sendFrames(topo, stranger, 'eth0', { kind: 'tcp', src: node1.proxyIp, dst: web.ip, sport: 41001, dport: 7000, flags: 'S', payload, dstMac: webMac, count: 2 });
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(sniff.events('ip'), [], 'no SYN reached the strict pod');
      assert.equal(dropped(node1, client, 'spoofed-source', 'from-pod') - spoofed, 1n);
      assert.equal(dropped(node1, web, 'strict-not-from-agent', 'to-pod') - strict, 2n);
      sniff.stop();
    });

    it('a pod cannot send as another pod or with another MAC', async function () {
      const source = dropped(node1, client, 'spoofed-source', 'from-pod');
      const macs = dropped(node1, client, 'spoofed-mac', 'from-pod');
      await sendFrames(topo, client, 'eth0', { kind: 'udp', src: web2.ip, dst: ext.ip, sport: 5000, dport: 5140, payload: mark('as-web2') });
      await sendFrames(topo, client, 'eth0', { kind: 'udp', src: client.ip, dst: ext.ip, sport: 5000, dport: 5140, payload: mark('mac'), srcMac: '02:00:00:00:00:99' });
      assert.equal(dropped(node1, client, 'spoofed-source', 'from-pod') - source, 1n);
      assert.equal(dropped(node1, client, 'spoofed-mac', 'from-pod') - macs, 1n);
    });
  });

  describe('ICMP', function () {
    it('regression (ICMP echo with a payload left the pod): no echo with data reaches the ext host', async function () {
      const payload = mark('exfil');
      const sniff = await startSniffer(topo, ext, 'ul0', payload);
      running.push(sniff);
      const [before, reported] = [dropped(node1, client, 'icmp-not-allowed', 'from-pod'), summarized(agent1, client, 'icmp-not-allowed')];
      const ping = await rawNet(topo, client, ['ping', ext.ip, payload, '1.5']);
      assert.deepEqual(ping, { ok: false, error: 'timeout' });
      assert.deepEqual(sniff.events('ip'), []);
      await countedAndReported(agent1, node1, client, 'icmp-not-allowed', 'from-pod', before, reported, 1);
      sniff.stop();
    });
  });

  describe('UDP and ICMP under policy', function () {
    const egress = `apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata: {name: web-out, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  allow:
    - cidrs: ["172.31.0.100/32"]
      ports: [5140]
      protocol: UDP
    - cidrs: ["172.31.0.100/32"]
      protocol: ICMP
---
apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata: {name: client-to-web, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  allow:
    - cidrs: ["0.0.0.0/0"]
    - cidrs: ["10.0.1.0/24"]
      ports: [5140]
      protocol: UDP
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-syslog, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
    - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]
      to: [{operation: {ports: ["5140", "7000"]}}]
`;

    before(async function () {
      const applied = agent1.logs.lines.length;
      fs.writeFileSync(path.join(policyDir, 'wire.yaml'), egress);
      await waitFor(() => agent1.logs.lines.slice(applied).some((l) => (l as { event?: string; entries?: number }).event === 'wire-rules' && (l as { entries: number }).entries > 0) || undefined, 10_000, {
        what: 'the agent to write the UDP/ICMP rules of the new policies',
      });
    });

    it('lets a strict pod reach the ext host over UDP where a policy allows it, and the reply back', async function () {
      const payload = mark('udp-allowed');
      const r = await rawNet(topo, web, ['udp-ask', ext.ip, '5140', payload, '3']);
      assert.deepEqual(r, { ok: true, reply: payload, from: ext.ip });
      assert.equal(extUdp().events('datagram').find((d) => d.payload === payload)?.from, web.ip, 'it arrived from the pod itself, not through the proxy');
      const f = await agent1.logs.waitFor<FlowLine>((l) => l?.event === 'flow' && l.protocol === 'udp' && l.verdict === 'allowed' && l.source.workload === 'web', 5000);
      assert.deepEqual([f.reason, f.policy, f.destination.ip, f.destination.port, f.mtls], ['allowed-by-cidr', 'default/web-out', ext.ip, 5140, false]);
      assert.ok((f.count ?? 0) >= 2 && f.bytesSent > 0 && f.bytesReceived > 0, JSON.stringify(f));
    });

    it('still drops UDP to a port the policy does not name', async function () {
      const before = dropped(node1, web, 'udp-not-allowed', 'from-pod');
      const r = await rawNet(topo, web, ['udp-ask', ext.ip, '5141', mark('udp-5141'), '1']);
      assert.equal(r.ok, false);
      assert.ok(dropped(node1, web, 'udp-not-allowed', 'from-pod') > before);
    });

    it('lets the allowed ICMP echo out with its payload, and its reply in', async function () {
      const payload = mark('ping-allowed');
      assert.deepEqual(await rawNet(topo, web, ['ping', ext.ip, payload, '3']), { ok: true, reply: payload });
    });

    it('UDP to a strict pod on a port an AuthorizationPolicy names, from a mesh workload it allows: arrives, and the answer gets back', async function () {
      const payload = mark('udp-in');
      const r = await rawNet(topo, client, ['udp-ask', web.ip, '5140', payload, '3']);
      assert.deepEqual(r, { ok: true, reply: payload, from: web.ip });
      const f = await agent1.logs.waitFor<FlowLine>((l) => l?.event === 'flow' && l.protocol === 'udp' && l.verdict === 'allowed' && l.direction === 'inbound' && l.destination.workload === 'web', 5000);
      assert.deepEqual([f.verdict, f.reason, f.policy, f.source.workload, f.mtls], ['allowed', 'allowed-by-policy', 'default/web-syslog', 'client', false]);
    });

    it('the same port from a pod outside the mesh stays closed', async function () {
      const payload = mark('udp-in-stranger');
      const before = dropped(node1, web, 'strict-udp-not-allowed', 'to-pod');
      await sendFrames(topo, stranger, 'eth0', { kind: 'udp', src: stranger.ip, dst: web.ip, sport: 40003, dport: 5140, payload });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(received(webUdp(), payload), 0);
      assert.equal(dropped(node1, web, 'strict-udp-not-allowed', 'to-pod') - before, 1n);
    });
  });

  describe('IPv6', function () {
    it('a pod\'s IPv6 to a routable address is dropped, and its summary names both IPv6 addresses (not 0.0.0.0)', async function () {
      const before = dropped(node1, client, 'ipv6', 'from-pod');
      await sendFrames(topo, client, 'eth0', { kind: 'udp6', src: 'fd00:77::10', dst: '2001:db8::53', sport: 40020, dport: 5140, payload: mark('v6'), count: 2 });
      await waitFor(() => (dropped(node1, client, 'ipv6', 'from-pod') - before >= 2n) || undefined, 5000, { what: 'the ipv6 drops counted' });
      const f = await waitFor(() => flows(agent1).find((x) => x.reason === 'ipv6' && x.destination.ip === '2001:db8::53'), 8000, { what: 'a denied ipv6 summary naming 2001:db8::53' });
      assert.deepEqual([f.verdict, f.source.workload, f.source.ip, f.source.port, f.destination.port, f.protocol], ['denied', 'client', 'fd00:77::10', 40020, 5140, 'udp']);
      assert.equal(flows(agent1).filter((x) => x.reason === 'ipv6' && (x.source.ip === '0.0.0.0' || x.destination.ip === '0.0.0.0')).length, 0, 'no IPv6 summary names 0.0.0.0');
    });

    it('link-local chatter (fe80:: to ff02::) is dropped and counted in the metrics, and makes no flow record', async function () {
      const before = dropped(node1, client, 'ipv6-link-local', 'from-pod');
      await sendFrames(topo, client, 'eth0', { kind: 'udp6', src: 'fe80::10', dst: 'ff02::1', sport: 40021, dport: 5140, payload: mark('ll'), count: 3 });
      const counted = await waitFor(() => {
        const n = dropped(node1, client, 'ipv6-link-local', 'from-pod') - before;
        return n >= 3n ? n : undefined;
      }, 5000, { what: 'the link-local drops counted' });
      await waitFor(async () => (await droppedMetric('ipv6-link-local')) >= Number(counted) || undefined, 8000, {
        what: 'palisade_dropped_packets_total to count the link-local packets',
      });
      assert.equal(flows(agent1).filter((x) => x.reason === 'ipv6-link-local').length, 0, 'never a flow record');
    });
  });

  describe('metrics', function () {
    it('exports palisade_dropped_packets_total per pod, reason and direction, equal to the summaries', async function () {
      const { value } = await waitFor(async () => ({ value: await droppedMetric('spoofed-arp') }), 5000, { what: 'palisade_dropped_packets_total of the client\'s spoofed ARP' });
      assert.equal(value, summarized(agent1, client, 'spoofed-arp'));
    });
  });

  describe('restart and uninstall', function () {
    const tcFilters = (pod: PodNs, dir: 'ingress' | 'egress'): Array<{ options?: { prog?: { id: number } } }> => {
      const out = execFileSync('nsenter', [`--net=${pod.node.netnsPath}`, 'tc', '-j', 'filter', 'show', 'dev', pod.hostIf, dir], { encoding: 'utf8' }).trim();
      return (out ? (JSON.parse(out) as Array<{ options?: { prog?: { id: number } } }>) : []).filter((f) => f.options?.prog);
    };

    it('keeps a dead agent\'s pods confined, and the next agent reports what was dropped meanwhile and re-enrolls idempotently', async function () {
      await agent1.stop('SIGKILL');
      const [before, reported] = [dropped(node1, client, 'spoofed-source', 'from-pod'), summarized(agent1, client, 'spoofed-source')];
      assert.equal(reported > 0, true);
      await sendFrames(topo, client, 'eth0', { kind: 'tcp', src: '10.0.1.78', dst: ext.ip, sport: 40010, dport: 80, flags: 'S', count: 5 });
      assert.equal(dropped(node1, client, 'spoofed-source', 'from-pod') - before, 5n, 'the filters held while no agent ran');
      const filters = tcFilters(client, 'ingress');
      assert.equal(filters.length, 1);

      agent1 = startAgentProcess(topo, node1, agent1Spec());
      await agent1.ready;
      await waitFor(() => summarized(agent1, client, 'spoofed-source') === 5 || undefined, 8000, { what: 'the new agent to report the 5 drops of the outage' });
      const after = tcFilters(client, 'ingress');
      assert.equal(after.length, 1, 'still one filter: replaced, not added');
      assert.notEqual(after[0]!.options!.prog!.id, filters[0]!.options!.prog!.id, 'the new agent\'s program');
    });

    it('uninstall takes the filters off every pod\'s interface and their programs out of the kernel', async function () {
      await agent1.stop('SIGTERM');
      const ids = [client, web].flatMap((p) => [...tcFilters(p, 'ingress'), ...tcFilters(p, 'egress')]).map((f) => f.options!.prog!.id);
      assert.equal(ids.length, 4);
      const r = spawnSync(process.execPath, [cliPath(), 'agent', 'uninstall', '--node', node1.name, '--run-dir', tempDir('uninstall'), '-o', 'json'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      for (const p of [client, web]) assert.deepEqual([tcFilters(p, 'ingress'), tcFilters(p, 'egress')], [[], []]);
      await waitFor(() => {
        const live = (JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as Array<{ id: number }>).map((p) => p.id);
        return ids.every((id) => !live.includes(id)) || undefined;
      }, 5000, { what: 'the per-pod programs to leave the kernel' });
      // The pod is on its own again: UDP leaves it.
      const payload = mark('after-uninstall');
      await rawNet(topo, client, ['udp-send', ext.ip, '5140', payload, '1']);
      await waitFor(() => received(extUdp(), payload) === 1 || undefined, 3000, { what: 'UDP from the unenrolled pod' });
    });
  });
});
