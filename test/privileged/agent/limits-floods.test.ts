/**
 * Per-pod fairness against real agents in the mesh (issue 15): node-1's agent runs with its file
 * descriptor limit lowered to 1,200 (prlimit), as in the report, which gives 379 outbound
 * connections and 94 per pod.
 *
 *   - one pod's idle flood (700 idle connections) used to exhaust the agent's descriptors, and every
 *     other pod failed (client → web-2 reset, client → web-1 503); now the flood gets its 94 and
 *     other pods' traffic sees 0 failures; the same holds on the inbound (HBONE) side of a node
 *     whose per-pod cap is 20: a remote pod's streams past it get 503;
 *   - 12,000 denied connections used to cost 12,000 warn lines, 12,000 access-log lines and 12,000
 *     stored flows; now a few lines, and flows whose counts add up to 12,000 exactly, in the agent's
 *     access log and in the collector's store alike.
 *
 * The agent's RSS under each flood is printed for the report.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FlowRecord } from '../../../common/flow';
import {
  denyFromYaml,
  fixturePath,
  nodeMetrics,
  requirePrivileges,
  sampleRss,
  startEchoServer,
  startFlood,
  startMeshAgent,
  startTestCollector,
  sweepStale,
  tearDown,
  tempDir,
  Topology,
  waitFor,
  type AgentProcess,
  type NodeNs,
  type PodNs,
  type TestCollector,
} from '../../harness';
import { sample } from '../../unit/agent/metrics/prom-text';

const FD_LIMIT = 1200;
/** capsForFdLimit(1200): what the agent derives, and the test relies on. */
const PER_POD = 94;
const SUMMARY_INTERVAL_S = 2;
/** node-2's cap per source pod, on its inbound (HBONE) side too. */
const NODE2_PER_POD = 20;

type FlowLine = FlowRecord & { event: 'flow' };

describe('agent per-pod fairness under floods, descriptor limit 1,200 (real eBPF, mesh)', function () {
  this.timeout(300_000);
  let topo: Topology;
  let collector: TestCollector;
  let node1: NodeNs;
  let node2: NodeNs;
  let client: PodNs;
  let flood: PodNs;
  let web1: PodNs;
  let web2: PodNs;
  let agent1: AgentProcess;
  let agent2: AgentProcess;
  let dir: string;

  const metrics1 = (): ReturnType<typeof nodeMetrics> => nodeMetrics(topo, node1, `${node1.underlayIp}:15020`);
  const refusedTotal = async (reason: string): Promise<number> =>
    (await metrics1()).get('palisade_connections_refused_total')?.samples.filter((s) => s.labels.reason === reason).reduce((n, s) => n + s.value, 0) ?? 0;

  /** `count` sequential connections from `pod` to ip:port, each echoing 64 bytes. */
  async function traffic(pod: PodNs, ip: string, port: number, count: number): Promise<{ ok: boolean; failures: number; errors: Record<string, number> }> {
    const r = await topo.exec(pod, process.execPath, [fixturePath('tcp-many.js'), ip, String(port), String(count)], { timeoutMs: 120_000 });
    return JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as { ok: boolean; failures: number; errors: Record<string, number> };
  }

  before(async function () {
    requirePrivileges();
    sweepStale();
    dir = tempDir('floods');
    collector = await startTestCollector();
    topo = await Topology.create({ label: 'floods', nodes: 2 });
    [node1, node2] = topo.nodes as [NodeNs, NodeNs];
    client = await topo.addPod(node1, 'client');
    flood = await topo.addPod(node1, 'flood');
    web1 = await topo.addPod(node1, 'web1');
    web2 = await topo.addPod(node2, 'web2');
    await startEchoServer(topo, web1, web1.ip, 7000);
    await startEchoServer(topo, web1, web1.ip, 7001);
    await startEchoServer(topo, web2, web2.ip, 7000);
    const policies = path.join(dir, 'policies');
    fs.mkdirSync(policies);
    fs.writeFileSync(path.join(policies, 'deny-flood.yaml'), denyFromYaml({ name: 'deny-flood', app: 'web', serviceAccount: 'flood', ports: [7001] }));
    agent1 = startMeshAgent(topo, node1, collector, {
      pods: [
        { pod: client, serviceAccount: 'client' },
        { pod: flood, serviceAccount: 'flood' },
        { pod: web1, serviceAccount: 'web', labels: { app: 'web' } },
      ],
      nofile: FD_LIMIT,
      extraArgs: ['--policy-dir', policies, '--access-log', 'all', '--refusal-summary-interval', `${SUMMARY_INTERVAL_S}s`],
    });
    agent2 = startMeshAgent(topo, node2, collector, {
      pods: [{ pod: web2, serviceAccount: 'web', labels: { app: 'web' } }],
      extraArgs: ['--max-connections-per-pod', String(NODE2_PER_POD)],
    });
    await Promise.all([agent1.ready, agent2.ready]);
    const ready = agent1.logs.lines.find((l: any) => l?.msg === 'outbound listener ready') as { limits: { fdLimit: number; connections: { perPod: number } } };
    assert.deepEqual([ready.limits.fdLimit, ready.limits.connections.perPod], [FD_LIMIT, PER_POD], 'the agent runs with the lowered limit');
  });

  after(() => tearDown({ agents: [agent1, agent2], topo, collector, dirs: [dir] }));

  it('one pod holding 700 idle connections gets its share (94); every other pod\'s traffic, same node and across nodes, sees 0 failures', async function () {
    const refusedBefore = await refusedTotal('pod-connection-limit');
    const rss = sampleRss(agent1.child.pid!);
    const idle = startFlood(topo, flood, { ip: web1.ip, port: 7000, count: 700, concurrency: 100, holdMs: 30_000 });
    await waitFor(async () => ((await refusedTotal('pod-connection-limit')) - refusedBefore >= 700 - PER_POD ? true : undefined), 30_000, {
      what: 'the flood beyond its share to be refused',
      intervalMs: 250,
    });
    const m = await metrics1();
    assert.equal(sample(m, 'palisade_proxy_connections', { side: 'outbound' })!.value, PER_POD, 'the flood holds exactly its share');
    const [local, remote] = [await traffic(client, web1.ip, 7000, 150), await traffic(client, web2.ip, 7000, 150)];
    const mem = rss.stop();
    process.stdout.write(`      agent-1 RSS under the idle flood: ${mem.before} MiB before, ${mem.peak} MiB peak\n`);
    assert.deepEqual([local.failures, local.errors], [0, {}], 'client → web-1 (same node)');
    assert.deepEqual([remote.failures, remote.errors], [0, {}], 'client → web-2 (across nodes)');
    idle.child.kill('SIGKILL');
    await idle.done.catch(() => undefined);
    assert.equal((await refusedTotal('pod-connection-limit')) - refusedBefore, 700 - PER_POD, 'every refusal counted, once');
    const lines = agent1.logs.lines.filter((l: any) => l?.event === 'refused' && l.reason === 'pod-connection-limit');
    assert.ok(lines.length <= 3, `${lines.length} refusal lines for ${700 - PER_POD} refusals`);
  });

  it('a remote pod\'s idle flood over HBONE gets its share of the destination node\'s streams (503 past it); other pods still get through', async function () {
    const refused2 = async (): Promise<number> =>
      sample(await nodeMetrics(topo, node2, `${node2.underlayIp}:15020`), 'palisade_connections_refused_total', { direction: 'inbound', reason: 'pod-connection-limit' })?.value ?? 0;
    const before = await refused2();
    const idle = startFlood(topo, flood, { ip: web2.ip, port: 7000, count: 50, concurrency: 10, holdMs: 30_000 });
    await waitFor(async () => ((await refused2()) - before >= 50 - NODE2_PER_POD ? true : undefined), 30_000, { what: 'node-2 to refuse past the share', intervalMs: 250 });
    const other = await traffic(client, web2.ip, 7000, 100);
    idle.child.kill('SIGKILL');
    await idle.done.catch(() => undefined);
    assert.deepEqual([other.failures, other.errors], [0, {}], 'client → web-2');
    assert.equal((await refused2()) - before, 50 - NODE2_PER_POD, 'each stream past the share refused once');
    const seen = agent1.logs.lines.find((l: any) => l?.event === 'refused' && l.reason === 'tunnel-refused-503' && l.source?.workload === 'flood');
    assert.ok(seen, 'the source node says why its connections were refused');
  });

  it('12,000 denied connections: a bounded number of log lines, and flows whose counts add up to 12,000 exactly (agent and collector)', async function () {
    await waitFor(async () => (sample(await metrics1(), 'palisade_proxy_connections', { side: 'outbound' })!.value === 0 ? true : undefined), 10_000, {
      what: 'the idle flood to be gone',
      intervalMs: 250,
    });
    const denied = (f: FlowRecord): boolean => f.verdict === 'denied' && f.source.workload === 'flood' && f.destination.port === 7001;
    const count = (flows: FlowRecord[]): number => flows.filter(denied).reduce((n, f) => n + (f.count ?? 1), 0);
    const linesBefore = agent1.logs.lines.length;
    const started = Date.now();
    const rss = sampleRss(agent1.child.pid!);
    const r = await startFlood(topo, flood, { ip: web1.ip, port: 7001, count: 12_000, concurrency: 50, waitMs: 2000 }).done;
    const mem = rss.stop();
    process.stdout.write(`      agent-1 RSS under 12,000 denied connections: ${mem.before} MiB before, ${mem.peak} MiB peak (flood ${r.ms} ms)\n`);
    // Reset by the agent, each one (some before the client saw its handshake complete).
    assert.deepEqual([r.attempted, r.errors, r.openAtEnd], [12_000, { ECONNRESET: 12_000 }, 0], JSON.stringify(r));
    // The interval in which the flood ended writes its summaries at its end.
    const flowsNow = (): FlowLine[] => agent1.logs.lines.slice(linesBefore).filter((l): l is FlowLine => (l as FlowLine)?.event === 'flow');
    await waitFor(() => (count(flowsNow()) >= 12_000 ? true : undefined), (SUMMARY_INTERVAL_S + 3) * 1000, { what: 'the last summary' });
    assert.equal(count(flowsNow()), 12_000, 'the access log adds up exactly');
    const lines = agent1.logs.lines.slice(linesBefore);
    const intervals = Math.ceil((Date.now() - started) / (SUMMARY_INTERVAL_S * 1000)) + 1;
    process.stdout.write(`      12,000 denied connections: ${lines.length} log lines, ${flowsNow().filter(denied).length} flow records, over ${intervals} intervals of ${SUMMARY_INTERVAL_S} s\n`);
    // Per interval at most: the first refusal's line and flow, the summary flow, the summary line.
    assert.ok(lines.length <= 4 * intervals, `${lines.length} log lines for 12,000 denied connections over ${intervals} intervals`);
    assert.ok(flowsNow().filter(denied).length <= 2 * intervals, `${flowsNow().filter(denied).length} flow records`);
    await waitFor(
      () => (count(collector.running.flows.query({ node: node1.name, verdict: 'denied', limit: 10_000 })) === 12_000 ? true : undefined),
      15_000,
      { what: 'the collector to store flows adding up to 12,000' },
    );
    assert.ok(collector.running.flows.query({ node: node1.name, verdict: 'denied', limit: 10_000 }).filter(denied).length <= 2 * intervals);
  });
});
