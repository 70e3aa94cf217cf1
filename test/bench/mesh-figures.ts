/**
 * Figures for the mesh (not a test): time to first byte through the mesh vs direct,
 * TLS handshakes per 1000 connections, agent resident memory when idle, install and
 * enroll times. Run: node dist/test/bench/mesh-figures.js (root; its own namespaces and cgroup).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../agent/datapath/datapath';
import { cliPath, fixturePath, startMeshAgent, startTestCollector, Topology, type AgentProcess } from '../harness';

async function json(topo: Topology, target: Parameters<Topology['exec']>[0], args: string[]): Promise<any> {
  const r = await topo.exec(target, process.execPath, args, { timeoutMs: 300_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

async function main(): Promise<void> {
  const n = Number(process.env.COUNT ?? 500);
  const collector = await startTestCollector();
  const topo = await Topology.create({ label: 'figures', nodes: 2 });
  const agents: AgentProcess[] = [];
  try {
    const [node1, node2] = topo.nodes as [(typeof topo.nodes)[0], (typeof topo.nodes)[0]];
    const client = await topo.addPod(node1, 'client');
    const direct = await topo.addPod(node1, 'direct');
    const web = await topo.addPod(node2, 'web');
    topo.spawn(web, process.execPath, [path.resolve(cliPath(), '..', 'demo', 'web-app.js'), 'web', web.ip, '8080'], { stdio: 'ignore' });
    topo.spawn(web, process.execPath, [fixturePath('tcp-echo-server.js'), web.ip, '7000'], { stdio: 'ignore' });
    agents.push(startMeshAgent(topo, node1, collector, { pods: [{ pod: client, serviceAccount: 'client' }] }));
    agents.push(startMeshAgent(topo, node2, collector, { pods: [{ pod: web, serviceAccount: 'web' }] }));
    await Promise.all(agents.map((a) => a.ready));
    await new Promise((r) => setTimeout(r, 1000));
    const url = `http://${web.ip}:8080/`;
    await json(topo, client, [fixturePath('http-ttfb.js'), url, '20']); // warm-up
    const viaMesh = await json(topo, client, [fixturePath('http-ttfb.js'), url, String(n)]);
    const viaDirect = await json(topo, direct, [fixturePath('http-ttfb.js'), url, String(n)]);
    const hs = (a: AgentProcess): number => a.logs.lines.filter((l: any) => l?.msg === 'hbone connection established').length;
    const before = hs(agents[0]!);
    const many = await json(topo, client, [fixturePath('tcp-many.js'), web.ip, '7000', '1000']);
    const handshakes = hs(agents[0]!) - before;
    await new Promise((r) => setTimeout(r, 2000));
    const installed = agents.map((a) => (a.logs.lines.find((l: any) => l?.msg === 'datapath installed') as any)?.ms);
    const enrolled = agents.map((a) => (a.logs.lines.find((l: any) => l?.msg === 'workloads enrolled') as any)?.ms);
    const figures = {
      ttfbMs: { mesh: viaMesh.ttfbMs, direct: viaDirect.ttfbMs, failures: viaMesh.failures + viaDirect.failures, samples: n },
      handshakesPer1000Connections: handshakes,
      connectionsOk: many.ok,
      agentRssMbIdle: agents.map((a) => rssMb(a.child.pid!)),
      installMs: installed,
      enrollMs: enrolled,
    };
    process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  } finally {
    for (const a of agents) await a.stop('SIGTERM');
    for (const node of topo.nodes) Datapath.uninstall(node.name);
    await topo.destroy();
    await collector.cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
