/**
 * The DNS proxy's listeners on PROXY_IP:15053 (ztunnel's port), UDP and TCP, and DNS over TCP
 * handed over by the outbound listener. Which pod asks is known from the kernel only
 * (bpf/dns.bpf.c): a datagram is looked up by its source in palisade_dns_peers, a TCP connection
 * by its source in palisade_conns; one the kernel has no record of, or whose pod is not this
 * node's, or whose address is not that pod's, is dropped (UDP) or reset (TCP), counted, never
 * answered on a guess. Answers come from the Answerer; every query is a flow record.
 *
 * Bounds: queries being answered at once, in all and per pod (so one pod's flood does not starve
 * the others; beyond them UDP queries are dropped, counted), TCP connections at once, per TCP
 * connection MAX_TCP_PIPELINE queries waiting and TCP_IDLE_MS of silence (RFC 7766 §6.2.3),
 * message sizes by the wire (512..65,535). A refusal is logged at most once per REFUSAL_LOG_MS
 * with its count.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { Original } from '../datapath/datapath';
import { stripMapped } from '../ipv4-mapped';
import type { DnsTcpHandoff, WorkloadIndex } from '../proxy/inputs';
import type { Workload } from '../workloads';
import type { Answerer } from './answerer';
import { dnsFlow } from './dns-flow';
import { FrameReader, framed } from './tcp-frames';

export const DNS_PROXY_PORT = 15053;
const MAX_PENDING = 4096;
const MAX_PENDING_PER_POD = 512;
const MAX_TCP_CONNECTIONS = 512;
const MAX_TCP_PIPELINE = 16;
const TCP_IDLE_MS = 10_000;
const REFUSAL_LOG_MS = 10_000;

export interface DnsProxyInputs {
  node: string;
  proxyIp: string;
  /** What the proxy needs of the kernel: which pod a DNS datagram or connection came from. */
  datapath: {
    lookupDnsPeer(ip: string, port: number): Original | undefined;
    lookupOriginal(ip: string, port: number): Original | undefined;
  };
  workloads: WorkloadIndex;
  answerer: Pick<Answerer, 'answer'>;
  flows: FlowSink;
  log: Logger;
}

/** Why a query was not answered: it could not be pinned on a pod of this node. */
export type DnsRefusal = 'no-kernel-record' | 'unknown-source-pod' | 'source-address-mismatch' | 'overloaded' | 'tcp-pipeline-full' | 'lookup-failed';

export class DnsProxy implements DnsTcpHandoff {
  private readonly log: Logger;
  private udp: dgram.Socket | undefined;
  private readonly tcp: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private pending = 0;
  private readonly pendingByPod = new Map<Workload, number>();
  readonly refused: Record<DnsRefusal, number> = {
    'no-kernel-record': 0,
    'unknown-source-pod': 0,
    'source-address-mismatch': 0,
    overloaded: 0,
    'tcp-pipeline-full': 0,
    'lookup-failed': 0,
  };
  private lastRefusalLog = 0;
  private refusedSinceLog = 0;

  constructor(private readonly inputs: DnsProxyInputs) {
    this.log = inputs.log.child({ component: 'dns' });
    // Half-open allowed: a client may end its side after its last query and still read the answers.
    this.tcp = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => this.onTcpConnection(s));
  }

  async listen(port = DNS_PROXY_PORT): Promise<{ udp: net.AddressInfo; tcp: net.AddressInfo }> {
    // reusePort (UDP and TCP): a successor agent serves the same port while this one drains
    // (agent/handover.ts); the kernel spreads queries over both until this one closes.
    const udp = dgram.createSocket({ type: 'udp4', reusePort: true });
    udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address: this.inputs.proxyIp, port }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    // After the bind: a failed bind is the caller's one error line, not a second one here.
    udp.on('error', (err) => this.log.error({ err }, 'dns udp socket error'));
    this.udp = udp;
    await new Promise<void>((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen({ host: this.inputs.proxyIp, port: udp.address().port, backlog: 256, reusePort: true }, () => {
        this.tcp.off('error', reject);
        resolve();
      });
    });
    return { udp: udp.address(), tcp: this.tcp.address() as net.AddressInfo };
  }

  /**
   * The drain (agent/drain.ts): no new queries — the UDP socket closes, so the kernel hands every
   * later query to the successor sharing the port (a forwarded query still waiting for its
   * upstream is not answered: the pod's resolver asks again) — and no new DNS-over-TCP
   * connections; the open ones finish.
   */
  stopAccepting(): void {
    try {
      this.udp?.close();
    } catch {
      /* already closed */
    }
    this.udp = undefined;
    if (this.tcp.listening) this.tcp.close();
  }

  /** DNS-over-TCP connections still open. */
  get live(): number {
    return this.sockets.size;
  }

  destroyAll(err: Error): void {
    for (const s of this.sockets) s.destroy(err);
  }

  async close(): Promise<void> {
    try {
      this.udp?.close();
    } catch {
      /* not bound */
    }
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
  }

  /** The pod a kernel record names, when it is this node's and the address matches; else refused (counted). */
  private identify(orig: Original | undefined, peer: { ip: string; port: number }): Workload | undefined {
    if (!orig) return this.refuse('no-kernel-record', peer);
    const pod = this.inputs.workloads.byNetnsCookie(orig.netnsCookie);
    if (!pod) return this.refuse('unknown-source-pod', peer);
    if (pod.ip !== peer.ip) return this.refuse('source-address-mismatch', peer);
    return pod;
  }

  private refuse(reason: DnsRefusal, peer: { ip: string; port: number }): undefined {
    this.refused[reason]++;
    this.refusedSinceLog++;
    const now = Date.now();
    if (now - this.lastRefusalLog >= REFUSAL_LOG_MS) {
      this.log.warn({ event: 'refused', reason, source: peer, refused: this.refusedSinceLog }, 'dns query refused: not from a pod of this node');
      this.lastRefusalLog = now;
      this.refusedSinceLog = 0;
    }
    return undefined;
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const started = Date.now();
    const peer = { ip: rinfo.address, port: rinfo.port };
    let orig: Original | undefined;
    try {
      orig = this.inputs.datapath.lookupDnsPeer(peer.ip, peer.port);
    } catch (err) {
      this.log.error({ err, source: peer }, 'dns peer lookup failed');
      this.refuse('lookup-failed', peer);
      return;
    }
    const pod = this.identify(orig, peer);
    if (!pod || !orig) return;
    const mine = this.pendingByPod.get(pod) ?? 0;
    if (this.pending >= MAX_PENDING || mine >= MAX_PENDING_PER_POD) return void this.refuse('overloaded', peer);
    this.pending++;
    this.pendingByPod.set(pod, mine + 1);
    this.answer(msg, pod, peer, orig.dst, 'udp', started, (response) => this.udp?.send(response, peer.port, peer.ip)).finally(() => {
      this.pending--;
      const left = (this.pendingByPod.get(pod) ?? 1) - 1;
      if (left > 0) this.pendingByPod.set(pod, left);
      else this.pendingByPod.delete(pod);
    });
  }

  private onTcpConnection(socket: net.Socket): void {
    const peer = { ip: stripMapped(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
    socket.on('error', () => undefined);
    let orig: Original | undefined;
    try {
      orig = this.inputs.datapath.lookupOriginal(peer.ip, peer.port);
    } catch (err) {
      this.log.error({ err, source: peer }, 'dns peer lookup failed');
      this.refuse('lookup-failed', peer);
      return void socket.resetAndDestroy();
    }
    const pod = this.identify(orig, peer);
    if (!pod || !orig) return void socket.resetAndDestroy();
    this.serveTcp(socket, pod, peer, orig.dst);
  }

  serveTcp(socket: net.Socket, pod: Workload, source: { ip: string; port: number }, resolver: { ip: string; port: number }): void {
    if (this.sockets.size >= MAX_TCP_CONNECTIONS) {
      this.refuse('overloaded', source);
      return void socket.destroy();
    }
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.sockets.delete(socket));
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    const reader = new FrameReader();
    let queued = 0;
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      for (const msg of reader.push(chunk)) {
        if (++queued > MAX_TCP_PIPELINE) {
          this.refuse('tcp-pipeline-full', source);
          return void socket.destroy();
        }
        const started = Date.now();
        // In order: each answer is written before the next query is looked at.
        chain = chain.then(() =>
          this.answer(msg, pod, source, resolver, 'tcp', started, (response) => socket.writable && socket.write(framed(response))).finally(() => queued--),
        );
      }
    });
    socket.on('end', () => void chain.then(() => socket.end()));
  }

  private async answer(
    msg: Buffer,
    pod: Workload,
    source: { ip: string; port: number },
    resolver: { ip: string; port: number },
    transport: 'udp' | 'tcp',
    started: number,
    send: (response: Buffer) => unknown,
  ): Promise<void> {
    try {
      const { response, outcome } = await this.inputs.answerer.answer(msg, pod, transport);
      if (response) send(response);
      this.inputs.flows.record(dnsFlow(this.inputs.node, { pod, source, resolver, outcome, querySize: msg.length, answerSize: response?.length ?? 0, started }));
    } catch (err) {
      this.log.error({ err, source }, 'dns query failed');
    }
  }
}
