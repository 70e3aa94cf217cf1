/**
 * DNS proxy figures (not a test): latency p50/p99 and the agent's CPU per 1000 queries, at a fixed
 * open-loop rate from a pod, for a cached name, a mesh name and names that go upstream every time
 * (TTL 0), against the same resolver asked directly by a pod outside the mesh.
 * Run: node dist/test/bench/dns-proxy.js [--rate 1000] [--seconds 10] (root; its own namespaces).
 * CPU is usage_usec of the node's cgroup, which holds the agent and nothing else.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../agent/datapath/datapath';
import { JsonLines, startAgentProcess, Topology, type AgentProcess } from '../harness';

interface Load {
  sent: number;
  answered: number;
  lost: number;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

function cpuUsec(cgroup: string): number {
  const m = /^usage_usec (\d+)$/m.exec(fs.readFileSync(path.join(cgroup, 'cpu.stat'), 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function main(): Promise<void> {
  const rate = flag('--rate', 1000);
  const seconds = flag('--seconds', 10);
  const topo = await Topology.create({ label: 'dnsbench', nodes: 1 });
  let agent: AgentProcess | undefined;
  try {
    const node = topo.nodes[0]!;
    const pod = await topo.addPod(node, 'client');
    const outside = await topo.addPod(node, 'outside');
    const web = await topo.addPod(node, 'web');
    const ext = await topo.addExternalHost('resolver');
    const script = (name: string): string => path.resolve(__dirname, ...name.split('/'));
    const upstream = topo.spawn(ext, process.execPath, [script('../harness/dns-upstream.js'), ext.ip, '53', JSON.stringify({ 'cached.example.test': [ext.ip] })], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new JsonLines(upstream.stdout!).waitFor((l) => (l as { event?: string })?.event === 'listening', 10_000);
    agent = startAgentProcess(topo, node, {
      pods: [{ pod }, { pod: web }],
      extraArgs: ['--dns-upstream', `${ext.ip}:53`, '--access-log', 'none'],
    });
    await agent.ready;
    const load = async (from: typeof pod, server: string, name: string, n = seconds): Promise<Load & { cpuPer1000: number }> => {
      const before = cpuUsec(node.cgroupPath);
      const r = await topo.exec(from, process.execPath, [script('dns/loadgen.js'), server, String(rate), String(n), name], { timeoutMs: (n + 30) * 1000 });
      const used = (cpuUsec(node.cgroupPath) - before) / 1e6;
      const out = JSON.parse(r.stdout.trim()) as Load;
      return { ...out, cpuPer1000: (used / out.sent) * 1000 };
    };
    await load(pod, '10.96.0.10', 'cached.example.test', 2); // warm-up (JIT, cache)
    const rows: Array<[string, Load & { cpuPer1000: number }]> = [
      ['direct to the resolver (pod outside the mesh)', await load(outside, ext.ip, 'ttl0.q{i}.example.test')],
      ['through the proxy: cached name', await load(pod, '10.96.0.10', 'cached.example.test')],
      ['through the proxy: mesh name', await load(pod, '10.96.0.10', 'web.default.svc.cluster.local')],
      ['through the proxy: forwarded (TTL 0)', await load(pod, '10.96.0.10', 'ttl0.q{i}.example.test')],
    ];
    const us = (v: number): string => (Number.isFinite(v) ? `${Math.round(v)}` : '-');
    process.stdout.write(`DNS proxy, open loop ${rate} queries/s for ${seconds} s each (UDP, one socket), latency in µs from the scheduled send\n`);
    process.stdout.write(`${'workload'.padEnd(48)}${'p50'.padStart(8)}${'p90'.padStart(8)}${'p99'.padStart(8)}${'max'.padStart(8)}  ${'answered'.padStart(11)}  agent CPU s/1000 q\n`);
    for (const [what, r] of rows) {
      const cpu = what.startsWith('direct') ? '-' : r.cpuPer1000.toFixed(3);
      process.stdout.write(`${what.padEnd(48)}${us(r.p50).padStart(8)}${us(r.p90).padStart(8)}${us(r.p99).padStart(8)}${us(r.max).padStart(8)}  ${`${r.answered}/${r.sent}`.padStart(11)}  ${cpu}\n`);
    }
  } finally {
    await agent?.stop('SIGTERM');
    for (const node of topo.nodes) Datapath.uninstall(node.name);
    await topo.destroy();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
