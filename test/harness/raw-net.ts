/**
 * test/fixtures/raw-net.py from the tests: packets an attacker in a pod crafts (AF_PACKET, raw
 * sockets: CAP_NET_RAW, which every pod gets by default), a sniffer that says what arrived, a UDP
 * echo server, UDP and ICMP clients.
 */
import type { ChildProcess } from 'node:child_process';
import { fixturePath, startFixture, type JsonLines, type Spawner } from './fixtures';
import { collect, type NsTarget } from './proc';

export type { Spawner } from './fixtures';

export type RawResult = Record<string, unknown>;

/** One raw-net.py command run to its end; its last JSON line. */
export async function rawNet(s: Spawner, target: NsTarget, args: string[], timeoutMs = 10_000): Promise<RawResult> {
  const child = s.spawn(target, 'python3', [fixturePath('raw-net.py'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const r = await collect(child, { timeoutMs });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as RawResult;
  } catch {
    throw new Error(`raw-net.py ${args[0]} printed no JSON (code ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

/** A frame as raw-net.py `frame` builds it. */
export interface FrameSpec {
  /** udp6: src and dst are IPv6 addresses, dstMac defaults to broadcast */
  kind: 'tcp' | 'udp' | 'icmp' | 'arp' | 'udp6';
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  flags?: 'S' | 'A' | 'PA' | 'SA' | 'R';
  payload?: string;
  count?: number;
  srcMac?: string;
  dstMac?: string;
  arpOp?: 1 | 2;
  arpSenderIp?: string;
  arpSenderMac?: string;
  arpTargetIp?: string;
}

export function sendFrames(s: Spawner, target: NsTarget, ifname: string, spec: FrameSpec): Promise<RawResult> {
  return rawNet(s, target, ['frame', ifname, JSON.stringify(spec)]);
}

export interface Running {
  child: ChildProcess;
  lines: JsonLines;
  /** Lines with this event. */
  events(event: string): RawResult[];
  stop(): void;
}

async function startRunning(s: Spawner, target: NsTarget, args: string[], readyEvent: string): Promise<Running> {
  const { child, lines } = await startFixture(s, target, 'python3', [fixturePath('raw-net.py'), ...args], { ready: readyEvent, name: `raw-net.py ${args[0]}` });
  return {
    child,
    lines,
    events: (event) => lines.lines.filter((l): l is RawResult => (l as RawResult)?.event === event),
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Frames arriving on `ifname` whose payload holds `marker` (or ARP whose sender IP is `marker`). */
export function startSniffer(s: Spawner, target: NsTarget, ifname: string, marker: string, seconds = 60): Promise<Running> {
  return startRunning(s, target, ['sniff', ifname, String(seconds), marker], 'ready');
}

/** A UDP server that records and echoes every datagram. */
export function startUdpServer(s: Spawner, target: NsTarget, ip: string, port: number): Promise<Running> {
  return startRunning(s, target, ['udp-server', ip, String(port)], 'listening');
}
