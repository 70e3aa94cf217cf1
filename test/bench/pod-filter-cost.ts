/**
 * Figures for the per-pod filters (not a test): ns per packet each tc program of bpf/pod.bpf.c
 * spends, measured by the kernel itself (BPF_PROG_TEST_RUN through `bpftool prog run … repeat N`)
 * on the programs a real agent pinned, with the packet's ifindex set to an enrolled pod's host-side
 * interface, so the maps it reads are the agent's. One node, one enrolled pod, one pod outside the
 * mesh; the packets are those every meshed connection carries and the two cheapest drops.
 * Run: node dist/test/bench/pod-filter-cost.js [repeat, default 2000000]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath, pinDirFor } from '../../agent/datapath/datapath';
import { PROG_PREFIX } from '../../agent/datapath/pod-wire';
import { startAgentProcess, tempDir, type AgentProcess } from '../harness/agent';
import { Topology } from '../harness/topology';

const REPEAT = Number(process.argv[2] ?? 2_000_000);
/** offsetof(struct __sk_buff, ifindex); the rest of the context stays zero, as test runs require. */
const SKB_IFINDEX = 40;
const SKB_SIZE = 192;

interface Packet {
  smac: string;
  dmac: string;
  src: string;
  dst: string;
  proto: 6 | 17;
  sport: number;
  dport: number;
  /** TCP flags */
  flags?: number;
  payload: number;
}

const bytes = (s: string, sep: string, base: number): Buffer => Buffer.from(s.split(sep).map((x) => parseInt(x, base)));

function checksum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) + (b[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/** An Ethernet + IPv4 + TCP/UDP frame (the programs check the IP header, not the L4 checksum). */
export function frame(p: Packet): Buffer {
  const l4 = Buffer.alloc(p.proto === 6 ? 20 : 8);
  l4.writeUInt16BE(p.sport, 0);
  l4.writeUInt16BE(p.dport, 2);
  if (p.proto === 6) {
    l4.writeUInt32BE(1000, 4);
    l4.writeUInt32BE(2000, 8);
    l4[12] = 5 << 4;
    l4[13] = p.flags ?? 0x10;
    l4.writeUInt16BE(65535, 14);
  } else l4.writeUInt16BE(8 + p.payload, 4);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4.length + p.payload, 2);
  ip[6] = 0x40; // don't fragment
  ip[8] = 64;
  ip[9] = p.proto;
  bytes(p.src, '.', 10).copy(ip, 12);
  bytes(p.dst, '.', 10).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([bytes(p.dmac, ':', 16), bytes(p.smac, ':', 16), Buffer.from([0x08, 0x00]), ip, l4, Buffer.alloc(p.payload, 0x61)]);
}

async function main(): Promise<void> {
  const topo = await Topology.create({ label: 'podcost', nodes: 1 });
  const node = topo.nodes[0]!;
  let running: AgentProcess | undefined;
  try {
    const client = await topo.addPod(node, 'client');
    const web = await topo.addPod(node, 'web');
    const outside = await topo.addPod(node, 'outside');
    running = startAgentProcess(topo, node, { pods: [{ pod: client }, { pod: web, strict: true }] });
    await running.ready;
    const link = async (target: Parameters<Topology['exec']>[0], dev: string): Promise<{ ifindex: number; address: string }> =>
      (JSON.parse((await topo.exec(target, 'ip', ['-j', 'link', 'show', 'dev', dev])).stdout) as Array<{ ifindex: number; address: string }>)[0]!;
    const host = await link(node, client.hostIf);
    const pod = await link(client, 'eth0');
    const outsideHost = await link(node, outside.hostIf);
    const out = { smac: pod.address, dmac: host.address };
    const back = { smac: host.address, dmac: pod.address };
    const cases: Array<[string, string, number, Packet]> = [
      ['from_pod', 'enrolled pod → proxy :15001, TCP ACK, 1400 B (every meshed packet out)', host.ifindex, { ...out, src: client.ip, dst: node.proxyIp, proto: 6, sport: 40000, dport: 15001, payload: 1400 }],
      ['to_pod', 'proxy → enrolled pod, TCP ACK, 1400 B (every meshed packet in)', host.ifindex, { ...back, src: node.proxyIp, dst: client.ip, proto: 6, sport: 15001, dport: 40000, payload: 1400 }],
      ['from_pod', 'enrolled pod, spoofed source: dropped and counted', host.ifindex, { ...out, src: '10.0.1.77', dst: '172.31.0.100', proto: 6, sport: 40000, dport: 80, flags: 0x02, payload: 0 }],
      ['from_pod', 'enrolled pod, UDP no policy allows: dropped and counted', host.ifindex, { ...out, src: client.ip, dst: '172.31.0.100', proto: 17, sport: 40000, dport: 5140, payload: 64 }],
      ['from_pod', 'a pod outside the mesh (its interface is not in the map): passes', outsideHost.ifindex, { ...out, src: outside.ip, dst: '172.31.0.100', proto: 6, sport: 40000, dport: 80, payload: 1400 }],
    ];
    const dir = tempDir('podcost');
    const ctx = Buffer.alloc(SKB_SIZE);
    console.log(`per-pod filters, BPF_PROG_TEST_RUN × ${REPEAT} each; load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    for (const [i, [prog, what, ifindex, packet]] of cases.entries()) {
      ctx.writeUInt32LE(ifindex, SKB_IFINDEX);
      fs.writeFileSync(path.join(dir, `${i}.pkt`), frame(packet));
      fs.writeFileSync(path.join(dir, `${i}.ctx`), ctx);
      const pinned = path.join(pinDirFor(node.name), `${PROG_PREFIX}palisade_${prog}`);
      const args = [`--net=${node.netnsPath}`, 'bpftool', 'prog', 'run', 'pinned', pinned, 'data_in', path.join(dir, `${i}.pkt`), 'ctx_in', path.join(dir, `${i}.ctx`), 'repeat', String(REPEAT)];
      const res = execFileSync('nsenter', args, { encoding: 'utf8' });
      const ret = /Return value: (\d+)/.exec(res)?.[1];
      const ns = /duration \(average\): (\d+)ns/.exec(res)?.[1];
      console.log(`  ${prog.padEnd(9)} ${what.padEnd(74)} ${ret === '2' ? 'drop' : ret === '0' ? 'pass' : `ret ${ret}`}  ${ns} ns`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  } finally {
    if (running) await running.stop('SIGKILL');
    Datapath.uninstall(node.name);
    await topo.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
