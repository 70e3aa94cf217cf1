/**
 * Flow records for what the per-pod filters did in one interval (pure): one denied summary per
 * pod, reason and direction with how many packets (`count`), the newest dropped packet's headers
 * naming the peer; one allowed record per UDP/ICMP flow with the packets and bytes it carried.
 * None of it went through mTLS.
 */
import { flowRecord, type FlowDirection, type FlowEndpoint, type FlowProtocol, type FlowRecord } from '../../common/flow';
import type { DropSample } from '../datapath/pod-codec';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../datapath/pod-codec';
import type { DgramFlow, DropCounter } from '../datapath/pod-wire';
import type { RuleRef } from './kernel-rules';

const ETH_P_IP = 0x0800;
const ETH_P_ARP = 0x0806;
const ETH_P_IPV6 = 0x86dd;
const IPPROTO_ICMPV6 = 58;

/** A workload as flow records name it. */
export interface Named {
  workload: string;
  namespace: string;
  identity: string;
}

export interface SummaryContext {
  node: string;
  /** How long the interval was. */
  intervalMs: number;
  /** The enrolled pod with this id (with its address). */
  pod(podId: number): (Named & { ip: string }) | undefined;
  /** A workload of the mesh (this node's or another's) at this address. */
  peer(ip: string): (Named & { mesh: boolean }) | undefined;
  /** What a kernel rule ref stands for. */
  rule(ref: number): RuleRef | undefined;
}

export function protocolOf(ethProto: number, ipProto: number): FlowProtocol {
  if (ethProto === ETH_P_ARP) return 'arp';
  if (ethProto === ETH_P_IPV6) return ipProto === IPPROTO_TCP ? 'tcp' : ipProto === IPPROTO_UDP ? 'udp' : ipProto === IPPROTO_ICMPV6 ? 'icmp' : 'other';
  if (ethProto !== ETH_P_IP) return 'other';
  return ipProto === IPPROTO_TCP ? 'tcp' : ipProto === IPPROTO_UDP ? 'udp' : ipProto === IPPROTO_ICMP ? 'icmp' : 'other';
}

function withPort(ip: string, port: number, ported: boolean): FlowEndpoint {
  return ported ? { ip, port } : { ip };
}

function named(e: FlowEndpoint, n: Named | undefined): FlowEndpoint {
  return n ? { ...e, workload: n.workload, namespace: n.namespace, identity: n.identity } : e;
}

/** Leaving the pod: to a mesh workload it is outbound, anywhere else egress. */
function outward(peer: { mesh: boolean } | undefined): FlowDirection {
  return peer?.mesh ? 'outbound' : 'egress';
}

/** The denied summary of `packets` drops of one counter. */
export function dropFlow(c: Pick<DropCounter, 'podId' | 'reason' | 'direction'>, sample: DropSample | undefined, packets: number, ctx: SummaryContext): FlowRecord {
  const pod = ctx.pod(c.podId);
  const protocol = sample ? protocolOf(sample.ethProto, sample.protocol) : 'other';
  const ported = protocol === 'tcp' || protocol === 'udp';
  const podIp = pod?.ip ?? '0.0.0.0';
  let source: FlowEndpoint;
  let destination: FlowEndpoint;
  let direction: FlowDirection;
  if (c.direction === 'from-pod') {
    // The source is the pod, at the address its packet claimed (a spoofed one shows here).
    const peer = sample ? ctx.peer(sample.destination) : undefined;
    source = named(withPort(sample?.source ?? podIp, sample?.sourcePort ?? 0, ported), pod);
    destination = named(withPort(sample?.destination ?? '0.0.0.0', sample?.destinationPort ?? 0, ported), peer);
    direction = outward(peer);
  } else {
    const peer = sample ? ctx.peer(sample.source) : undefined;
    source = named(withPort(sample?.source ?? '0.0.0.0', sample?.sourcePort ?? 0, ported), peer);
    destination = named(withPort(podIp, sample?.destinationPort ?? 0, ported), pod);
    direction = 'inbound';
  }
  return flowRecord({
    node: ctx.node,
    direction,
    source,
    destination,
    protocol,
    verdict: 'denied',
    reason: c.reason,
    mtls: false,
    bytesSent: 0,
    bytesReceived: 0,
    durationMs: ctx.intervalMs,
    count: packets,
  });
}

/** What one UDP/ICMP flow carried in the interval (differences of its counters). */
export interface DgramDelta {
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
}

/** Packet and byte counters of one UDP/ICMP flow as the kernel holds them. */
export interface DgramCounts {
  packetsOut: bigint;
  bytesOut: bigint;
  packetsIn: bigint;
  bytesIn: bigint;
}

/**
 * What a flow carried since it was last read (`before`; undefined: first seen). A counter lower
 * than before means the key now belongs to a new flow (the old one was evicted or ended and its
 * peer spoke again): everything the new flow counted is this interval's.
 */
export function dgramDelta(before: DgramCounts | undefined, now: DgramCounts): DgramDelta {
  const reused = before !== undefined && (now.packetsOut < before.packetsOut || now.packetsIn < before.packetsIn || now.bytesOut < before.bytesOut || now.bytesIn < before.bytesIn);
  const from = before === undefined || reused ? undefined : before;
  return {
    packetsOut: Number(now.packetsOut - (from?.packetsOut ?? 0n)),
    bytesOut: Number(now.bytesOut - (from?.bytesOut ?? 0n)),
    packetsIn: Number(now.packetsIn - (from?.packetsIn ?? 0n)),
    bytesIn: Number(now.bytesIn - (from?.bytesIn ?? 0n)),
  };
}

/**
 * The allowed record of one UDP/ICMP flow's interval. A pod no longer enrolled (it left between
 * two reads) is named by its address only, as drop summaries name it: its last interval is still
 * reported.
 */
export function dgramFlow(f: Pick<DgramFlow, 'podId' | 'podIp' | 'peerIp' | 'podPort' | 'peerPort' | 'protocol' | 'direction' | 'rule'>, d: DgramDelta, ctx: SummaryContext): FlowRecord {
  const pod = ctx.pod(f.podId);
  const peer = ctx.peer(f.peerIp);
  const ported = f.protocol === IPPROTO_UDP;
  const podEnd = named(withPort(f.podIp, f.podPort, ported), pod);
  const peerEnd = named(withPort(f.peerIp, f.peerPort, ported), peer);
  const ref = f.rule !== 0 ? ctx.rule(f.rule) : undefined;
  const fromPod = f.direction === 'from-pod';
  // Without a rule: from the pod, an operator exclusion; to a pod that is not strict, nothing decides.
  const reason = ref?.reason ?? (f.rule !== 0 ? 'rule-changed' : fromPod ? 'excluded' : 'not-strict');
  return flowRecord({
    node: ctx.node,
    direction: fromPod ? outward(peer) : 'inbound',
    source: fromPod ? podEnd : peerEnd,
    destination: fromPod ? peerEnd : podEnd,
    protocol: ported ? 'udp' : 'icmp',
    verdict: 'allowed',
    reason,
    policy: ref?.policy,
    rule: ref?.policy !== undefined ? ref.rule : undefined,
    mtls: false,
    bytesSent: fromPod ? d.bytesOut : d.bytesIn,
    bytesReceived: fromPod ? d.bytesIn : d.bytesOut,
    durationMs: ctx.intervalMs,
    count: d.packetsOut + d.packetsIn,
  });
}
