/**
 * The sniff budget against a real agent: one pod opens 4,000 connections that each send the start
 * of a TLS ClientHello and stall, to a destination whose EgressPolicy needs the name (so the proxy
 * reads the hello before deciding). Regression (issue 15): each stalled hello was read up to 64 KiB
 * and held until the sniff timeout — the agent grew by 100–280 MB. Now a hello is read to 16 KiB at
 * most and all of them together stay within the budget (16 MiB, a pod's share 4 MiB); the agent's
 * RSS is measured from a fresh agent and printed for the report.
 *
 * Measured on this machine (fresh agent, peak RSS growth): 4,000 connections that send nothing cost
 * ~40 MiB (sockets); main grew 275 MiB under the 63 KB hellos and 105 MiB under the 16 KiB ones,
 * this code 70 and 52 MiB — connection overhead, the budget, and read buffers awaiting GC.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  nodeMetrics,
  requirePrivileges,
  sampleRss,
  startAgentProcess,
  startEchoServer,
  startFlood,
  sweepStale,
  tearDown,
  tempDir,
  Topology,
  type AgentProcess,
  type ExternalHost,
  type FloodResult,
  type NodeNs,
  type PodNs,
} from '../../harness';
import { sample } from '../../unit/agent/metrics/prom-text';

const EGRESS_BY_NAME = `apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata:
  name: by-name
  namespace: default
spec:
  selector:
    matchLabels:
      egress: by-name
  allow:
    - hosts: ["allowed.example.test"]
      ports: [443]
`;

const MIB = 1024 * 1024;
/** Peak RSS growth allowed under either flood: sockets (~40 MiB), a pod's sniff share, GC slack. */
const RSS_GROWTH_MIB = 128;

describe('agent sniff budget: 4,000 stalled ClientHellos from one pod (real eBPF)', function () {
  this.timeout(180_000);
  let topo: Topology;
  let node: NodeNs;
  let flood: PodNs;
  let client: PodNs;
  let ext: ExternalHost;
  let agent: AgentProcess;
  let dir: string;

  const metrics = (): ReturnType<typeof nodeMetrics> => nodeMetrics(topo, node, `${node.proxyIp}:15020`);

  async function stalledHellos(send: number, hello: number): Promise<{ flood: FloodResult; rss: { before: number; peak: number; last: number } }> {
    const rss = sampleRss(agent.child.pid!);
    const result = await startFlood(topo, flood, { ip: ext.ip, port: 443, count: 4000, concurrency: 400, send, hello, holdMs: 2000 }).done;
    const mem = rss.stop();
    assert.equal(result.attempted, 4000, JSON.stringify(result));
    return { flood: result, rss: mem };
  }

  before(async function () {
    requirePrivileges();
    sweepStale();
    topo = await Topology.create({ label: 'sniff', nodes: 1 });
    node = topo.nodes[0]!;
    flood = await topo.addPod(node, 'flood');
    client = await topo.addPod(node, 'client');
    ext = await topo.addExternalHost('ext');
    await startEchoServer(topo, ext, ext.ip, 443);
    dir = tempDir('sniff');
    fs.mkdirSync(path.join(dir, 'policies'));
    fs.writeFileSync(path.join(dir, 'policies', 'egress.yaml'), EGRESS_BY_NAME);
    fs.writeFileSync(path.join(dir, 'hosts'), `${ext.ip} allowed.example.test\n`);
  });

  // A fresh agent for each flood: its RSS starts where an idle agent's does.
  beforeEach(async function () {
    await agent?.stop('SIGKILL');
    agent = startAgentProcess(topo, node, {
      pods: [
        { pod: flood, serviceAccount: 'flood', labels: { egress: 'by-name' } },
        { pod: client, serviceAccount: 'client', labels: { egress: 'by-name' } },
      ],
      // Every flood connection is admitted: the sniff budget, not the connection cap, is what binds here.
      extraArgs: [
        '--policy-dir', path.join(dir, 'policies'), '--hosts-file', path.join(dir, 'hosts'), '--access-log', 'all',
        '--max-connections-per-pod', '5000', '--max-connections', '8000',
      ],
    });
    await agent.ready;
  });

  after(() => tearDown({ agents: [agent], topo, dirs: [dir] }));

  it('63 KB of a hello announcing 65,000 bytes is read no further than 16 KiB and refused at once: the agent does not hold 4,000 × 63 KB', async function () {
    const { flood: r, rss } = await stalledHellos(63 * 1024, 65_000);
    process.stdout.write(`      agent RSS, 4,000 stalled 63 KB hellos: ${rss.before} MiB before, ${rss.peak} MiB peak, ${rss.last} MiB after (flood ${r.ms} ms)\n`);
    const m = await metrics();
    const highWater = sample(m, 'palisade_sniff_bytes', { state: 'high_water' })!.value;
    const perPod = sample(m, 'palisade_sniff_bytes', { state: 'per_pod_budget' })!.value;
    assert.equal(perPod, 4 * MIB);
    assert.ok(highWater <= perPod, `held at most one pod's share: ${highWater} bytes`);
    assert.equal(r.openAtEnd, 0, `every stalled connection was closed by the agent: ${JSON.stringify(r)}`);
    assert.ok(rss.peak - rss.before < RSS_GROWTH_MIB, `RSS grew ${(rss.peak - rss.before).toFixed(1)} MiB (the issue: 100–280 MB)`);
  });

  it('16 KiB hellos that stall are held within the pod\'s share; the rest are refused (pod-sniff-budget), counted, and another pod is still read', async function () {
    const before = sample(await metrics(), 'palisade_connections_refused_total', { reason: 'pod-sniff-budget' })?.value ?? 0;
    const flooding = stalledHellos(16 * 1024 - 100, 16 * 1024 - 4);
    // While the flood holds its share, the other pod's hello is read and decided by its name.
    await new Promise((r) => setTimeout(r, 1500));
    // The name resolved through the node's DNS proxy (--hosts-file): a host rule holds only the pod's own lookups.
    const curl = await topo.exec(client, 'curl', ['-sk', '-m', '3', 'https://allowed.example.test/'], { timeoutMs: 10_000 });
    const { flood: r, rss } = await flooding;
    process.stdout.write(`      agent RSS, 4,000 stalled 16 KiB hellos: ${rss.before} MiB before, ${rss.peak} MiB peak, ${rss.last} MiB after (flood ${r.ms} ms)\n`);
    const m = await metrics();
    const highWater = sample(m, 'palisade_sniff_bytes', { state: 'high_water' })!.value;
    assert.ok(highWater <= 4 * MIB, `held at most one pod's share: ${highWater} bytes`);
    assert.ok(highWater > 3 * MIB, `the share was used: ${highWater} bytes`);
    const refused = (sample(m, 'palisade_connections_refused_total', { reason: 'pod-sniff-budget' })?.value ?? 0) - before;
    assert.ok(refused > 1000, `connections past the share were refused and counted: ${refused}`);
    const allowed = agent.logs.lines.find((l: any) => l?.event === 'flow' && l.source?.workload === 'client' && l.destination?.host === 'allowed.example.test');
    assert.ok(allowed, `the other pod's connection was read and allowed by name (curl: ${curl.code} ${curl.stderr})`);
    assert.equal((allowed as { verdict: string }).verdict, 'allowed');
    assert.ok(rss.peak - rss.before < RSS_GROWTH_MIB, `RSS grew ${(rss.peak - rss.before).toFixed(1)} MiB`);
  });
});
