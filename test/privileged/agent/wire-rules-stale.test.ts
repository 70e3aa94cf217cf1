/**
 * UDP/ICMP kernel rules that cannot be written fail closed (agent/wire/rule-plan.ts): a real agent
 * whose rule table is made tiny (--max-wire-rules), a real pod sending real datagrams. A policy
 * change that takes a port away and cannot be written (too many entries) must leave that port
 * DENIED — before the fix the old, looser rules stayed in force with only a log line — and the
 * metrics and the collector's status (what `palisade status` prints) must say the rules are stale
 * until a set that fits is written again.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../../agent/datapath/datapath';
import {
  nodeMetrics,
  rawNet,
  requirePrivileges,
  startAgentProcess,
  startMeshAgent,
  startTestCollector,
  startUdpServer,
  sweepStale,
  tearDown,
  tempDir,
  Topology,
  waitFor,
  type AgentProcess,
  type ExternalHost,
  type NodeNs,
  type PodNs,
  type TestCollector,
} from '../../harness';

/** UDP the filters dropped from `pod` because no rule allows it (the kernel's counter). */
function notAllowed(node: NodeNs, pod: PodNs): bigint {
  const dp = Datapath.open(node.name);
  try {
    const id = dp.pods().find((p) => p.ip === pod.ip)?.podId;
    assert.ok(id !== undefined, `${pod.name} is enrolled`);
    let n = 0n;
    for (const d of dp.drops()) if (d.podId === id && d.reason === 'udp-not-allowed') n += d.packets;
    return n;
  } finally {
    dp.close();
  }
}

function policy(ports: number[]): string {
  return `apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata: {name: web-out, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  allow:
    - cidrs: ["172.31.0.100/32"]
      ports: [${ports.join(', ')}]
      protocol: UDP
`;
}

describe('UDP/ICMP rules that cannot be written fail closed (real eBPF, real packets)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let node: NodeNs;
  let web: PodNs;
  let ext: ExternalHost;
  let agent: AgentProcess;
  let collector: TestCollector;
  let policyDir: string;
  let marker = 0;
  const mark = (what: string): string => `${what}-${process.pid}-${++marker}`;

  before(async function () {
    requirePrivileges();
    sweepStale();
    topo = await Topology.create({ label: 'wirestale', nodes: 1 });
    node = topo.nodes[0]!;
    web = await topo.addPod(node, 'web');
    ext = await topo.addExternalHost('ext');
    assert.equal(ext.ip, '172.31.0.100', 'the policies name the ext host by address');
    policyDir = tempDir('wirestale-policies');
    fs.writeFileSync(path.join(policyDir, 'web.yaml'), policy([5140]));
    for (const port of [5140, 5141]) await startUdpServer(topo, ext, ext.ip, port); // killed with the topology
    collector = await startTestCollector();
    agent = startWebAgent();
    await agent.ready;
    await waitFor(() => agent.logs.lines.some((l) => (l as { event?: string; entries?: number }).event === 'wire-rules' && (l as { entries: number }).entries > 0) || undefined, 10_000, {
      what: 'the first UDP rules in force',
    });
  });

  after(() => tearDown({ agents: [agent], topo, collector, dirs: [policyDir] }));

  const startWebAgent = (): AgentProcess =>
    startMeshAgent(topo, node, collector, {
      pods: [{ pod: web, serviceAccount: 'web', labels: { app: 'web' } }],
      extraArgs: ['--policy-dir', policyDir, '--max-wire-rules', '8', '--packet-summary-interval', '1s'],
      readyTimeoutMs: 30_000,
    });

  /** What `palisade status` shows for the node: the collector's status answer. */
  const staleInStatus = (): string | undefined =>
    collector.running.policies.status({ flowsStored: 0, auditRecords: 0 }).nodes.find((n) => n.node === node.name)?.wireRulesStale;

  async function metrics(): Promise<{ stale: number; failures: number }> {
    const families = await nodeMetrics(topo, node, `${node.underlayIp}:15020`); // a meshed agent serves them on the node address
    const read = (name: string): number => {
      const v = families.get(name)?.samples[0]?.value;
      assert.ok(v !== undefined, `${name} is exported`);
      return v;
    };
    return { stale: read('palisade_wire_rules_stale'), failures: read('palisade_wire_rule_failures_total') };
  }

  const ask = (port: number) => rawNet(topo, web, ['udp-ask', ext.ip, String(port), mark(`udp-${port}`), '2']);

  it('before: the allowed port answers, and the rules are current', async function () {
    const payload = mark('udp-5140');
    assert.deepEqual(await rawNet(topo, web, ['udp-ask', ext.ip, '5140', payload, '2']), { ok: true, reply: payload, from: ext.ip });
    assert.deepEqual(await metrics(), { stale: 0, failures: 0 });
  });

  it('regression (a tightening that did not fit left the old rule in force): the port taken away is denied at once', async function () {
    const lines = agent.logs.lines.length;
    // 5140 taken away; 30 other ports need 30 entries, past the table's 8.
    fs.writeFileSync(path.join(policyDir, 'web.yaml'), policy(Array.from({ length: 30 }, (_, i) => 5141 + i)));
    await waitFor(() => agent.logs.lines.slice(lines).some((l) => (l as { event?: string }).event === 'wire-rules-stale') || undefined, 10_000, {
      what: 'the agent to give up writing the new rules',
    });
    const before = notAllowed(node, web);
    const r = await ask(5140);
    assert.equal(r.ok, false, 'no answer: the datagram never left the pod');
    assert.ok(notAllowed(node, web) > before, 'dropped by the filter, counted');
    assert.equal((await ask(5141)).ok, false, 'nor does the new port open before its rules are in');
    const m = await metrics();
    assert.equal(m.stale, 1, 'one pod is held closed');
    assert.ok(m.failures >= 1, `failures counted: ${m.failures}`);
    const shown = await waitFor(staleInStatus, 5000, { what: 'palisade status to show the node\'s rules stale' });
    assert.match(shown, /30 UDP\/ICMP rule entries do not fit .*at most 8.*denied until they are written/);
  });

  it('retries with backoff, and a set that fits again is written: current, the new port open', async function () {
    const failures = (await metrics()).failures;
    await waitFor(async () => ((await metrics()).failures > failures ? true : undefined), 10_000, { what: 'a retry (1 s, then 2 s)' });
    const lines = agent.logs.lines.length;
    fs.writeFileSync(path.join(policyDir, 'web.yaml'), policy([5141]));
    await waitFor(() => agent.logs.lines.slice(lines).some((l) => (l as { event?: string }).event === 'wire-rules-current') || undefined, 10_000, {
      what: 'the rules to be current again',
    });
    assert.equal((await metrics()).stale, 0);
    await waitFor(() => (staleInStatus() === undefined ? true : undefined), 5000, { what: 'palisade status to show the node current again' });
    const r = await ask(5141);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal((await ask(5140)).ok, false, 'the port taken away stays closed');
  });

  it('an agent that starts with no UDP rule to write replaces what the one before left (it cannot know what is in force)', async function () {
    await agent.stop('SIGKILL'); // its rules (5141 open) stay pinned in the kernel
    fs.rmSync(path.join(policyDir, 'web.yaml'));
    // Outside the mesh this time (the node's certificate went with the killed agent's data dir).
    agent = startAgentProcess(topo, node, { pods: [{ pod: web, serviceAccount: 'web', labels: { app: 'web' } }], extraArgs: ['--policy-dir', policyDir] });
    await agent.ready;
    await waitFor(() => agent.logs.lines.some((l) => (l as { event?: string; entries?: number }).event === 'wire-rules' && (l as { entries: number }).entries === 0) || undefined, 10_000, {
      what: 'the new agent to write its (empty) rules',
    });
    const r = await ask(5141);
    assert.equal(r.ok, false, `the old agent's rule no longer lets 5141 out: ${JSON.stringify(r)}`);
  });
});
