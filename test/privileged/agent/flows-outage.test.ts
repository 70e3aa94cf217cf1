/**
 * Loss is never silent: the collector is down for 60 s while traffic continues. When it returns,
 * every flow each agent produced is either stored or counted as lost — exactly — and an agent
 * whose buffer was big enough lost none. The data path never waited on the reporter.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiClient } from '../../../common/api-client';
import {
  fixturePath,
  JsonLines,
  nodeMetric,
  requirePrivileges,
  startMeshAgent,
  startTestCollector,
  startWebApp,
  sweepStale,
  tearDown,
  Topology,
  waitFor,
  type AgentProcess,
  type NodeNs,
  type PodNs,
  type TestCollector,
} from '../../harness';

const OUTAGE_S = 60;

describe('flow reporting across a collector outage (real eBPF, real collector)', function () {
  this.timeout(240_000);
  let topo: Topology;
  let n1: NodeNs;
  let n2: NodeNs;
  let client: PodNs;
  let web: PodNs;
  let collector: TestCollector;
  let a1: AgentProcess;
  let a2: AgentProcess;

  before(async function () {
    requirePrivileges();
    sweepStale();
    topo = await Topology.create({ label: 'outage', nodes: 2 });
    [n1, n2] = topo.nodes as [NodeNs, NodeNs];
    client = await topo.addPod(n1, 'client');
    web = await topo.addPod(n2, 'web');
    await startWebApp(topo, web, 'web');
    collector = await startTestCollector();
    // node-1 can buffer only 200 flows: it must lose some during the outage, and say how many.
    a1 = startMeshAgent(topo, n1, collector, { pods: [{ pod: client, serviceAccount: 'client' }], extraArgs: ['--flow-buffer', '200'] });
    a2 = startMeshAgent(topo, n2, collector, { pods: [{ pod: web, serviceAccount: 'web', strict: true }] });
    await Promise.all([a1.ready, a2.ready]);
  });

  after(() => tearDown({ agents: [a1, a2], topo, collector }));

  /** A meshed agent serves its metrics on the node's address. */
  const metric = (node: NodeNs, name: string): Promise<number> => nodeMetric(topo, node, `${node.underlayIp}:15020`, name);

  const api = (): ApiClient =>
    new ApiClient({
      url: `https://127.0.0.1:${collector.running.port}`,
      token: fs.readFileSync(path.join(collector.dataDir, 'admin.token'), 'utf8').trim(),
      caPem: fs.readFileSync(collector.caFile, 'utf8'),
    });

  it(`accounts for every flow after ${OUTAGE_S} s without a collector: produced = stored + lost`, async () => {
    await collector.stop();
    const poll = topo.spawn(client, process.execPath, [fixturePath('http-poll.js'), web.ip, '8080', '/', '50', String(OUTAGE_S)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const polls = new JsonLines(poll.stdout!);
    const done = await polls.waitFor<{ requests: number }>((l) => l?.event === 'done', (OUTAGE_S + 20) * 1000);
    assert.deepEqual(
      polls.lines.filter((l) => typeof (l as { status?: number }).status === 'number').map((l) => (l as { status: number }).status),
      [200],
      'traffic kept flowing while the collector was down',
    );
    assert.ok(done.requests > OUTAGE_S * 10, `${done.requests} requests`);
    await collector.resume();

    const account = async (node: NodeNs): Promise<{ produced: number; stored: number; lost: number }> => {
      let last = { produced: -1, stored: 0, lost: 0 };
      await waitFor(
        async () => {
          const produced = await metric(node, 'palisade_flows_produced_total');
          const stats = await api().stats();
          const mine = stats.nodes[node.name] ?? { stored: 0, lost: 0 };
          last = { produced, stored: mine.stored, lost: mine.lost };
          return produced === mine.stored + mine.lost || undefined;
        },
        30_000,
        { what: `${node.name}: produced = stored + lost (last ${JSON.stringify(last)})` },
      );
      return last;
    };
    const s1 = await account(n1);
    const s2 = await account(n2);
    process.stdout.write(`      node-1 (buffer 200): ${JSON.stringify(s1)}; node-2 (default buffer): ${JSON.stringify(s2)}\n`);
    assert.ok(s1.produced >= done.requests, 'node-1 produced a flow per connection');
    assert.ok(s1.lost > 0, 'node-1 could not keep everything, and says so');
    assert.equal(s1.lost, await metric(n1, 'palisade_flows_lost_total'));
    assert.equal(s2.lost, 0, 'node-2 kept everything');
    assert.ok(s2.stored >= done.requests);
  });
});
