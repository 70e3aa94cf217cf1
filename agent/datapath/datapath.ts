/**
 * The node's kernel data path: typed access to the pinned maps of an installed node
 * (enrollment and its refusal when the pod maps are full, original destinations,
 * exclusions, counters, occupancy). Installing and removing the pins: ./install.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError, describeCause } from '../../common/errors';
import { native, UpdateFlag, type MapInfo } from '../../native';
import * as codec from './codec';
import { closeQuietly } from './cgroup-links';
import { installPins, pinDirFor, removePins, type DatapathOptions } from './install';
import { readMapUsage, type MapUsage } from './map-usage';
import { netnsCookieOf } from './netns-cookie';
import { NodeFullError, podAdmission } from './pod-admission';
import { resolvePodLink, type PodLink } from './pod-links';
import * as wire from './pod-wire';

export { netnsCookieOf };
export { DNS_PORT, OBJECT_FILES, defaultBpfDir, pinDirFor, validateNodeName, type DatapathOptions } from './install';

export const SHARED_MAP_NAMES = [
  'palisade_pods',
  'palisade_orig_sk',
  'palisade_conns',
  'palisade_excl_cidr',
  'palisade_excl_port',
  'palisade_stats',
  'palisade_dns_peers',
  'palisade_dns_stats',
] as const;
export const MAP_NAMES = [...SHARED_MAP_NAMES, ...wire.POD_MAP_NAMES] as const;
type MapName = (typeof MAP_NAMES)[number];

export interface Original {
  dst: codec.Endpoint;
  podId: number;
  netnsCookie: bigint;
}

export interface EnrolledPod {
  netnsCookie: bigint;
  podId: number;
  strict: boolean;
  ip: string | undefined;
  /** ifindex of its host-side interface (0: none) */
  ifindex: number;
}

/** What enrollment needs to know of a pod. */
export interface PodEnrollment {
  /** agent-assigned, 1 .. 2^32-1 */
  podId: number;
  strict: boolean;
  /** the pod's IPv4 address: the only source its packets may carry */
  ip: string;
  /** its host-side interface in the agent's namespace (the CNI result, the workloads file); derived when absent */
  hostInterface?: string;
  /** the same, by its workloads-file name */
  interface?: string;
}

/** Typed access to one node's pinned maps; opened by install() or open(). */
export class Datapath implements wire.WireHandles {
  readonly node: string;
  readonly pinDir: string;
  private readonly fds: Record<MapName, number>;
  private readonly progs: Record<wire.PodProgram, number>;
  private readonly info: Record<MapName, MapInfo>;
  private readonly cpus: number;
  /** Host-side interfaces this agent holds (pods refused for want of room), kept by sweepInterfaces. */
  private readonly held = new Set<number>();
  private closed = false;

  private constructor(node: string, pinDir: string, fds: Record<MapName, number>, progs: Record<wire.PodProgram, number>) {
    this.node = node;
    this.pinDir = pinDir;
    this.fds = fds;
    this.progs = progs;
    this.info = Object.fromEntries(MAP_NAMES.map((m) => [m, native.mapInfo(fds[m])])) as Record<MapName, MapInfo>;
    this.cpus = native.numPossibleCpus();
  }

  /**
   * Load, pin and attach (or re-attach over existing pins: idempotent, and an agent
   * restart swaps programs atomically through the pinned links). On a failure
   * nothing this call created is left behind.
   */
  static install(opts: DatapathOptions): Datapath {
    return installPins(opts, (bpffs) => {
      const dp = Datapath.open(opts.node, bpffs);
      wire.recordHostNetns(dp, netnsCookieOf('/proc/self/ns/net'));
      return dp;
    });
  }

  /** Open the pinned maps of an installed node. */
  static open(node: string, bpffs = '/sys/fs/bpf'): Datapath {
    const pinDir = pinDirFor(node, bpffs);
    if (!fs.existsSync(pinDir)) {
      throw new PalisadeError('PALISADE_ERR_NOT_INSTALLED', `node ${node} has no data path installed (${pinDir} is missing)`);
    }
    const fds: Partial<Record<MapName, number>> = {};
    const progs: Partial<Record<wire.PodProgram, number>> = {};
    try {
      for (const name of MAP_NAMES) fds[name] = native.objGet(path.join(pinDir, name));
      for (const name of wire.POD_PROGRAMS) progs[name] = native.objGet(path.join(pinDir, wire.PROG_PREFIX + name));
    } catch (err) {
      for (const fd of [...Object.values(fds), ...Object.values(progs)]) closeQuietly(fd);
      throw new PalisadeError('PALISADE_ERR_NOT_INSTALLED', `node ${node}: incomplete install in ${pinDir}: ${describeCause(err)}`, {
        cause: err,
      });
    }
    return new Datapath(node, pinDir, fds as Record<MapName, number>, progs as Record<wire.PodProgram, number>);
  }

  /**
   * Detach every program and remove every pin of the node. Returns what it removed.
   * Safe to run twice; a node that was never installed is not an error.
   */
  static uninstall(node: string, bpffs = '/sys/fs/bpf'): string[] {
    return removePins(node, bpffs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of [...Object.values(this.fds), ...Object.values(this.progs)]) closeQuietly(fd);
  }

  mapFd(name: wire.PodMapName): number {
    return this.fds[name];
  }

  progFd(name: wire.PodProgram): number {
    return this.progs[name];
  }

  /**
   * Enroll (or update) the pod whose network namespace is at `netnsPath`: its per-pod filters on
   * its host-side interface first, then the socket redirect. Idempotent; a failure leaves the pod
   * as it was before the call or refused, never half enrolled and let through.
   */
  enroll(netnsPath: string, pod: PodEnrollment): bigint {
    if (!Number.isInteger(pod.podId) || pod.podId <= 0 || pod.podId > 0xffffffff) {
      throw new TypeError(`podId must be a positive 32-bit integer, got ${pod.podId}`);
    }
    codec.ipv4Bytes(pod.ip);
    const cookie = netnsCookieOf(netnsPath);
    const link = resolvePodLink(netnsPath, pod.hostInterface ?? pod.interface);
    const key = codec.encodeNetnsCookie(cookie);
    const before = native.mapLookup(this.fds.palisade_pods, key, codec.POD_SIZE);
    const old = before ? codec.decodePod(before) : undefined;
    const flags = codec.POD_FLAG_REDIRECT | (pod.strict ? codec.POD_FLAG_STRICT : 0);
    this.admit(link, old !== undefined);
    try {
      wire.attachPod(this, link, { podId: pod.podId, flags, ip: pod.ip });
      this.update('palisade_pods', key, codec.encodePod({ podId: pod.podId, flags, ip: pod.ip, ifindex: link.hostIfindex }));
    } catch (err) {
      // Another agent of the node (a handover) took the last entry first: the same refusal. The
      // interface's entry this call wrote goes first, or the hold would take it for an enrolled pod's.
      if ((err as PalisadeError).errnoCode === 'E2BIG') {
        if (old === undefined) wire.forgetInterface(this, link.hostIfindex);
        this.refuse(link, this.capacity('palisade_pods'));
      }
      throw err;
    }
    this.held.delete(link.hostIfindex);
    // The pod's namespace now leaves through another interface: the old one is no longer its.
    if (old && old.ifindex !== 0 && old.ifindex !== link.hostIfindex) this.releaseInterface(old.ifindex, old.ip);
    return cookie;
  }

  /** Room for one more pod in both pod maps, or its interface held and NodeFullError. */
  private admit(link: PodLink, enrolled: boolean): void {
    for (const map of ['palisade_pods', 'palisade_ifaces'] as const) {
      const capacity = this.capacity(map);
      const inUse = native.mapCount(this.fds[map], this.info[map].keySize, capacity);
      const interfaceEnrolled = map === 'palisade_ifaces' && wire.podOfInterface(this, link.hostIfindex) !== undefined;
      if (podAdmission({ enrolled: enrolled || interfaceEnrolled, inUse, capacity })) this.refuse(link, capacity, inUse);
    }
  }

  private refuse(link: PodLink, capacity: number, inUse = capacity): never {
    wire.holdInterface(this, link);
    this.held.add(link.hostIfindex);
    throw new NodeFullError(podAdmission({ enrolled: false, inUse, capacity })!, link.hostIfindex);
  }

  /** Let a held interface go (its pod left the mesh's care); an interface enrolled since is left as it is. */
  release(ifindex: number): void {
    this.held.delete(ifindex);
    if (!wire.podOfInterface(this, ifindex)) wire.detachPod(this, ifindex);
  }

  /** max_entries of a map, as the kernel has it. */
  capacity(map: MapName): number {
    return this.info[map].maxEntries;
  }

  unenroll(netnsCookie: bigint): boolean {
    const key = codec.encodeNetnsCookie(netnsCookie);
    const v = native.mapLookup(this.fds.palisade_pods, key, codec.POD_SIZE);
    const deleted = native.mapDelete(this.fds.palisade_pods, key);
    if (v) {
      const pod = codec.decodePod(v);
      if (pod.ifindex !== 0) this.releaseInterface(pod.ifindex, pod.ip);
    }
    return deleted;
  }

  /**
   * Take the filters off interfaces no enrolled pod leaves through (left by a pod that went away
   * while no agent ran, or by an interrupted enrollment). Returns their ifindexes.
   */
  sweepInterfaces(): number[] {
    const used = new Set(this.pods().map((p) => p.ifindex));
    const stale = wire.enrolledInterfaces(this).filter((i) => !used.has(i));
    for (const ifindex of stale) wire.detachPod(this, ifindex);
    // and the holds of pods no longer refused (a previous agent's, or left by a failed enrollment)
    return [...stale, ...wire.sweepUnenrolledFilters(this, null, this.held)];
  }

  /** Detach the filters of an interface, if it is still the one of the pod with this address. */
  private releaseInterface(ifindex: number, ip: string | undefined): void {
    const entry = wire.podOfInterface(this, ifindex);
    if (entry && entry.ip === ip) wire.detachPod(this, ifindex);
  }

  setStrict(netnsCookie: bigint, strict: boolean): void {
    const key = codec.encodeNetnsCookie(netnsCookie);
    const cur = native.mapLookup(this.fds.palisade_pods, key, codec.POD_SIZE);
    if (!cur) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no pod enrolled with netns cookie ${netnsCookie}`);
    const pod = codec.decodePod(cur);
    const flags = strict ? pod.flags | codec.POD_FLAG_STRICT : pod.flags & ~codec.POD_FLAG_STRICT;
    // The per-pod filters read strictness from the interface's entry: it changes first.
    if (pod.ifindex !== 0) wire.setInterfaceFlags(this, pod.ifindex, pod.ip, flags);
    this.update('palisade_pods', key, codec.encodePod({ ...pod, flags }), UpdateFlag.EXIST);
  }

  pods(): EnrolledPod[] {
    return this.entries('palisade_pods', 8, codec.POD_SIZE).map(([k, v]) => {
      const p = codec.decodePod(v);
      return {
        netnsCookie: codec.decodeNetnsCookie(k),
        podId: p.podId,
        strict: (p.flags & codec.POD_FLAG_STRICT) !== 0,
        ip: p.ip,
        ifindex: p.ifindex,
      };
    });
  }

  /** Where did the pod connection arriving from peerIp:peerPort mean to go, and which pod was it? */
  lookupOriginal(peerIp: string, peerPort: number): Original | undefined {
    const v = native.mapLookup(this.fds.palisade_conns, codec.encodeTuple(peerIp, peerPort), codec.ORIG_SIZE);
    return v ? codec.decodeOrig(v) : undefined;
  }

  /** Which pod (and resolver) the DNS datagram arriving from peerIp:peerPort came from. */
  lookupDnsPeer(peerIp: string, peerPort: number): Original | undefined {
    const v = native.mapLookup(this.fds.palisade_dns_peers, codec.encodeTuple(peerIp, peerPort), codec.ORIG_SIZE);
    return v ? codec.decodeOrig(v) : undefined;
  }

  /** Replace the exclusions (destinations never redirected) with exactly these. */
  setExclusions(cidrs: string[], ports: number[]): void {
    const wantCidr = new Set(cidrs.map((c) => codec.encodeLpmKey(c).toString('hex')));
    for (const k of this.keys('palisade_excl_cidr', codec.LPM_KEY_SIZE)) {
      if (!wantCidr.has(k.toString('hex'))) native.mapDelete(this.fds.palisade_excl_cidr, k);
    }
    for (const hex of wantCidr) this.update('palisade_excl_cidr', Buffer.from(hex, 'hex'), Buffer.from([1]));
    const wantPort = new Set(ports);
    for (const k of this.keys('palisade_excl_port', 2)) {
      if (!wantPort.has(codec.decodePort(k))) native.mapDelete(this.fds.palisade_excl_port, k);
    }
    for (const p of wantPort) this.update('palisade_excl_port', codec.encodePort(p), Buffer.from([1]));
  }

  exclusions(): { cidrs: string[]; ports: number[] } {
    return {
      cidrs: this.keys('palisade_excl_cidr', codec.LPM_KEY_SIZE).map(codec.decodeLpmKey).sort(),
      ports: this.keys('palisade_excl_port', 2).map(codec.decodePort).sort((a, b) => a - b),
    };
  }

  /** Kernel-side counters, summed over CPUs. */
  stats(): Record<codec.StatName, number> {
    return this.counters('palisade_stats', codec.STAT_NAMES);
  }

  /** The DNS capture's counters (bpf/dns.bpf.c), summed over CPUs. */
  dnsStats(): Record<codec.DnsStatName, number> {
    return this.counters('palisade_dns_stats', codec.DNS_STAT_NAMES);
  }

  private counters<N extends string>(map: MapName, names: readonly N[]): Record<N, number> {
    const out = {} as Record<N, number>;
    names.forEach((name, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      const v = native.mapLookup(this.fds[map], key, 8 * this.cpus);
      out[name] = v ? Number(codec.sumPerCpu(v)) : 0;
    });
    return out;
  }

  /** Packets the per-pod filters dropped, per pod, reason and direction (counters only grow). */
  drops(): wire.DropCounter[] {
    return wire.readDrops(this, this.cpus);
  }

  /** UDP and ICMP echo flows the per-pod filters let through, with their counters. */
  dgramFlows(): wire.DgramFlow[] {
    return wire.readDgramFlows(this);
  }

  /** Entries in use and capacity of every map that has occupancy (the metrics). */
  usage(): MapUsage[] {
    return readMapUsage(MAP_NAMES.map((name) => ({ name, fd: this.fds[name], info: this.info[name] })));
  }

  private update(map: MapName, key: Buffer, value: Buffer, flags: number = UpdateFlag.ANY): void {
    try {
      native.mapUpdate(this.fds[map], key, value, flags);
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_BPF_MAP', `cannot update ${map}: ${describeCause(err)}`, { cause: err });
    }
  }

  private keys(map: MapName, keySize: number): Buffer[] {
    const out: Buffer[] = [];
    let k: Buffer | null = null;
    // Bounded: a map never holds more than its max_entries.
    for (let i = 0; i < 1 << 20; i++) {
      k = native.mapNextKey(this.fds[map], k, keySize);
      if (!k) break;
      out.push(k);
    }
    return out;
  }

  private entries(map: MapName, keySize: number, valueSize: number): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    for (const k of this.keys(map, keySize)) {
      const v = native.mapLookup(this.fds[map], k, valueSize);
      if (v) out.push([k, v]);
    }
    return out;
  }
}
