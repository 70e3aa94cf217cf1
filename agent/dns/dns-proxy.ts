/**
 * The DNS proxy's listeners on PROXY_IP:15053 (ztunnel's port), UDP and TCP, and DNS over TCP
 * handed over by the outbound listener. Which pod asks is known from the kernel only
 * (bpf/dns.bpf.c): a datagram is looked up by its source in palisade_dns_peers, a TCP connection
 * by its source in palisade_conns; one the kernel has no record of, or whose pod is not this
 * node's, or whose address is not that pod's, is dropped (UDP) or reset (TCP), counted, never
 * answered on a guess. Answers come from the Answerer; every query is a flow record, except that
 * denied ones (policy, malformed, unsupported) go through the proxy's refusal summaries
 * (agent/proxy/refusals.ts): the first of a kind (pod, name, reason) per interval is its own
 * record, the rest one summary with a count, so a pod flooding denied names cannot fill the
 * flow buffer.
 *
 * Bounds: queries being answered or waiting on a TCP connection, in all and per pod (so one pod's
 * flood does not starve the others; beyond them UDP queries are dropped and a TCP connection is
 * closed, counted), TCP connections at once in all and per pod (a quarter), and each one holds a
 * place in the proxy's connection caps like any connection of its pod (agent/proxy/limits), per
 * TCP connection MAX_TCP_PIPELINE queries waiting and TCP_IDLE_MS of silence (RFC 7766 §6.2.3),
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
import type { ConnectionLimits } from '../proxy/limits';
import type { RefusalLog } from '../proxy/refusals';
import type { Workload } from '../workloads';
import type { Answerer } from './answerer';
import { dnsFlow, dnsOutcome, dnsRoute } from './dns-flow';
import { FrameReader, framed } from './tcp-frames';

export const DNS_PROXY_PORT = 15053;
const MAX_PENDING = 4096;
const MAX_PENDING_PER_POD = 512;
const MAX_TCP_CONNECTIONS = 512;
/** A pod's share of the TCP connections, as the proxy's own caps share (a quarter). */
const MAX_TCP_CONNECTIONS_PER_POD = MAX_TCP_CONNECTIONS / 4;
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
  /**
   * The proxy's connection caps (a DNS-over-TCP connection holds a place of its pod's) and
   * refusal summaries (denied queries, refused connections). Without them (tests of the proxy
   * alone) neither applies: every query is a flow record.
   */
  limits?: { connections: Pick<ConnectionLimits, 'admit'>; refusals: Pick<RefusalLog, 'refuse'> };
  log: Logger;
}

/** Why a query was not answered: it could not be pinned on a pod of this node, or a bound was met. */
export type DnsRefusal =
  | 'no-kernel-record'
  | 'unknown-source-pod'
  | 'source-address-mismatch'
  | 'overloaded'
  | 'tcp-pipeline-full'
  | 'pod-tcp-limit'
  | 'pod-connection-limit'
  | 'node-connection-limit'
  | 'lookup-failed';

export class DnsProxy implements DnsTcpHandoff {
  private readonly log: Logger;
  private udp: dgram.Socket | undefined;
  private readonly tcp: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private pending = 0;
  private readonly pendingByPod = new Map<Workload, number>();
  private readonly tcpByPod = new Map<Workload, number>();
  readonly refused: Record<DnsRefusal, number> = {
    'no-kernel-record': 0,
    'unknown-source-pod': 0,
    'source-address-mismatch': 0,
    overloaded: 0,
    'tcp-pipeline-full': 0,
    'pod-tcp-limit': 0,
    'pod-connection-limit': 0,
    'node-connection-limit': 0,
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
      this.log.warn({ event: 'refused', reason, source: peer, refused: this.refusedSinceLog }, 'dns query refused');
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
    if (!this.takePending(pod)) return void this.refuse('overloaded', peer);
    this.answer(msg, pod, peer, orig.dst, 'udp', started, (response) => this.udp?.send(response, peer.port, peer.ip)).finally(() => this.givePending(pod));
  }

  /** A place for one more query of `pod` under way, or false past the bounds. */
  private takePending(pod: Workload): boolean {
    const mine = this.pendingByPod.get(pod) ?? 0;
    if (this.pending >= MAX_PENDING || mine >= MAX_PENDING_PER_POD) return false;
    this.pending++;
    this.pendingByPod.set(pod, mine + 1);
    return true;
  }

  private givePending(pod: Workload): void {
    this.pending--;
    const left = (this.pendingByPod.get(pod) ?? 1) - 1;
    if (left > 0) this.pendingByPod.set(pod, left);
    else this.pendingByPod.delete(pod);
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
    const started = Date.now();
    const mine = this.tcpByPod.get(pod) ?? 0;
    const full: DnsRefusal | undefined = this.sockets.size >= MAX_TCP_CONNECTIONS ? 'overloaded' : mine >= MAX_TCP_CONNECTIONS_PER_POD ? 'pod-tcp-limit' : undefined;
    const admitted = full === undefined ? this.inputs.limits?.connections.admit('outbound', pod.ip) : undefined;
    const refused = full ?? (admitted && !admitted.ok ? admitted.reason : undefined);
    if (refused !== undefined) {
      this.refuse(refused, source);
      this.inputs.limits?.refusals.refuse({
        route: { direction: 'outbound', source: { ...source, workload: pod.name, namespace: pod.namespace, identity: pod.identity }, destination: resolver, protocol: 'dns', mtls: false },
        outcome: { verdict: 'denied', reason: refused },
        started,
        message: 'dns connection refused',
      });
      return void socket.resetAndDestroy();
    }
    this.sockets.add(socket);
    this.tcpByPod.set(pod, mine + 1);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.sockets.delete(socket);
      const left = (this.tcpByPod.get(pod) ?? 1) - 1;
      if (left > 0) this.tcpByPod.set(pod, left);
      else this.tcpByPod.delete(pod);
      if (admitted?.ok) admitted.release();
    });
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
        // A waiting query counts as under way: a pod's queries over TCP share its bound with UDP.
        if (!this.takePending(pod)) {
          this.refuse('overloaded', source);
          return void socket.destroy();
        }
        const asked = Date.now();
        // In order: each answer is written before the next query is looked at.
        chain = chain.then(() =>
          this.answer(msg, pod, source, resolver, 'tcp', asked, (response) => socket.writable && socket.write(framed(response))).finally(() => {
            queued--;
            this.givePending(pod);
          }),
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
      const refusals = this.inputs.limits?.refusals;
      if (refusals && outcome.verdict === 'denied') {
        // Summarized per (pod, name, reason): a flood of denied names costs a few records per interval.
        refusals.refuse({ route: dnsRoute({ pod, source, resolver, outcome }), outcome: dnsOutcome(outcome), started, message: 'dns query denied', level: 'info' });
        return;
      }
      this.inputs.flows.record(dnsFlow(this.inputs.node, { pod, source, resolver, outcome, querySize: msg.length, answerSize: response?.length ?? 0, started }));
    } catch (err) {
      this.log.error({ err, source }, 'dns query failed');
    }
  }
}
