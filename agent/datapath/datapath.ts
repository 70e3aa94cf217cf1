/**
 * The node's kernel data path: installs Palisade's eBPF programs on a cgroup v2
 * subtree, pins everything under <bpffs>/palisade/<node>/, and offers typed access
 * to the maps (enrollment, original destinations, exclusions, counters).
 *
 * Pins outlive the agent on purpose: while the proxy is down, enrolled pods are
 * still redirected to it and get refused (fail closed), never let through.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError, describeCause, invalidArgument } from '../../common/errors';
import type { Logger } from '../../common/log';
import { silentLogger } from '../../common/log';
import { native, UpdateFlag, type LoadedObject } from '../../native';
import * as codec from './codec';
import { attachProgram, closeQuietly, LINK_PREFIX } from './cgroup-links';
import { netnsCookieOf } from './netns-cookie';
import { ensureBpffs, isBpffs, resolveCgroup } from './mounts';
import { resolvePodLink } from './pod-links';
import * as wire from './pod-wire';
import { verifierReason } from './verifier-log';

export { netnsCookieOf };

export const OBJECT_FILES = ['redirect.bpf.o', 'pod.bpf.o', 'dns.bpf.o'];
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

export const DNS_PORT = 15053;
const NODE_NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;

export interface DatapathOptions {
  node: string;
  /** Node proxy address pods are redirected to (and strict pods accept). */
  proxyIp: string;
  proxyPort?: number;
  /** DNS proxy port on proxyIp that pods' DNS is sent to (default 15053). */
  dnsPort?: number;
  /** cgroup v2 directory to attach to; default: the cgroup v2 root. */
  cgroup?: string;
  /** bpffs mount point; default /sys/fs/bpf. */
  bpffs?: string;
  /** Directory holding the *.bpf.o objects. */
  bpfDir?: string;
  log?: Logger;
}

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

export function defaultBpfDir(): string {
  if (process.env.PALISADE_BPF_DIR) return process.env.PALISADE_BPF_DIR;
  // dist/agent/datapath -> <repo>/bpf ; agent/datapath (ts-node) -> <repo>/bpf
  const fromDist = path.resolve(__dirname, '..', '..', '..', 'bpf');
  return fs.existsSync(path.join(fromDist, OBJECT_FILES[0]!)) ? fromDist : path.resolve(__dirname, '..', '..', 'bpf');
}

export function validateNodeName(node: string): void {
  if (typeof node !== 'string' || !NODE_NAME.test(node)) {
    throw invalidArgument(`invalid node name ${JSON.stringify(node)}: use lowercase letters, digits, '.', '-', '_' (max 63)`);
  }
}

export function pinDirFor(node: string, bpffs = '/sys/fs/bpf'): string {
  validateNodeName(node);
  return path.join(bpffs, 'palisade', node);
}


/** Typed access to one node's pinned maps; opened by install() or open(). */
export class Datapath implements wire.WireHandles {
  readonly node: string;
  readonly pinDir: string;
  private readonly fds: Record<MapName, number>;
  private readonly progs: Record<wire.PodProgram, number>;
  private readonly cpus: number;
  private closed = false;

  private constructor(node: string, pinDir: string, fds: Record<MapName, number>, progs: Record<wire.PodProgram, number>) {
    this.node = node;
    this.pinDir = pinDir;
    this.fds = fds;
    this.progs = progs;
    this.cpus = native.numPossibleCpus();
  }

  /**
   * Load, pin and attach (or re-attach over existing pins: idempotent, and an agent
   * restart swaps programs atomically through the pinned links). On a failure
   * nothing this call created is left behind.
   */
  static install(opts: DatapathOptions): Datapath {
    const log = (opts.log ?? silentLogger()).child({ component: 'datapath' });
    const bpffs = opts.bpffs ?? '/sys/fs/bpf';
    const pinDir = pinDirFor(opts.node, bpffs);
    const cgroup = resolveCgroup(opts.cgroup);
    const bpfDir = opts.bpfDir ?? defaultBpfDir();
    const rodata = codec.encodeConfig(opts.proxyIp, opts.proxyPort ?? 15001, opts.dnsPort ?? DNS_PORT);
    ensureBpffs(bpffs);

    const created: string[] = [];
    const dirExisted = fs.existsSync(pinDir);
    const before = new Set(dirExisted ? fs.readdirSync(pinDir) : []);
    const started = process.hrtime.bigint();
    let cgFd = -1;
    const loaded: LoadedObject[] = [];
    try {
      fs.mkdirSync(pinDir, { recursive: true, mode: 0o700 });
      cgFd = native.openDir(cgroup.path);
      for (const file of OBJECT_FILES) {
        const objPath = path.join(bpfDir, file);
        if (!fs.existsSync(objPath)) {
          throw new PalisadeError('PALISADE_ERR_BPF_LOAD', `eBPF object ${objPath} not found (run \`make build\`)`);
        }
        let obj: LoadedObject;
        try {
          obj = native.loadObject(objPath, pinDir, rodata);
        } catch (err) {
          const log = (err as { log?: string }).log;
          const detail = verifierReason(log) ?? log?.trim().split('\n').slice(-3).join(' | ');
          throw new PalisadeError(
            'PALISADE_ERR_BPF_LOAD',
            `cannot load ${file}: ${describeCause(err)}${detail ? ` (${detail})` : ''}`,
            { cause: err },
          );
        }
        loaded.push(obj);
        if (obj.rodataSize !== codec.CONFIG_SIZE) {
          throw new PalisadeError(
            'PALISADE_ERR_BPF_LOAD',
            `${file}: settings block is ${obj.rodataSize} bytes, expected ${codec.CONFIG_SIZE} (stale object? run \`make build\`)`,
          );
        }
        for (const prog of obj.programs) {
          if (prog.section === 'tc') wire.pinProgram(prog, pinDir, created);
          else attachProgram(prog, cgFd, cgroup, pinDir, created);
        }
      }
      for (const name of fs.readdirSync(pinDir)) if (!before.has(name) && !created.includes(name)) created.push(name);
      const dp = Datapath.open(opts.node, bpffs);
      wire.recordHostNetns(dp, netnsCookieOf('/proc/self/ns/net'));
      log.info(
        {
          node: opts.node,
          cgroup: cgroup.path,
          pinDir,
          reused: dirExisted && before.size > 0,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        },
        'datapath installed',
      );
      return dp;
    } catch (err) {
      // Roll back only what this call added; an earlier, working install stays as it was.
      for (const name of created) fs.rmSync(path.join(pinDir, name), { force: true });
      for (const name of fs.existsSync(pinDir) ? fs.readdirSync(pinDir) : []) {
        if (!before.has(name)) fs.rmSync(path.join(pinDir, name), { force: true });
      }
      if (!dirExisted) fs.rmSync(pinDir, { recursive: true, force: true });
      throw err;
    } finally {
      for (const obj of loaded) native.closeObject(obj.handle);
      if (cgFd >= 0) closeQuietly(cgFd);
    }
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
    const pinDir = pinDirFor(node, bpffs);
    if (!isBpffs(bpffs) || !fs.existsSync(pinDir)) return [];
    // The per-pod filters first (they hold programs and maps), where they hang: tc/<ifindex> each.
    const filters = wire.detachPinnedFilters(pinDir, netnsCookieOf).map((ifindex) => `tc/${ifindex}`);
    const names = fs.readdirSync(pinDir);
    // Links first (detaches the programs), then maps.
    const ordered = [...names.filter((n) => n.startsWith(LINK_PREFIX)), ...names.filter((n) => !n.startsWith(LINK_PREFIX))];
    for (const name of ordered) fs.rmSync(path.join(pinDir, name), { force: true });
    fs.rmdirSync(pinDir);
    const parent = path.dirname(pinDir);
    if (fs.readdirSync(parent).length === 0) fs.rmdirSync(parent);
    return [...filters, ...ordered];
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
    wire.attachPod(this, link, { podId: pod.podId, flags, ip: pod.ip });
    this.update('palisade_pods', key, codec.encodePod({ podId: pod.podId, flags, ip: pod.ip, ifindex: link.hostIfindex }));
    // The pod's namespace now leaves through another interface: the old one is no longer its.
    if (old && old.ifindex !== 0 && old.ifindex !== link.hostIfindex) this.releaseInterface(old.ifindex, old.ip);
    return cookie;
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
    return stale;
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

  /** Entries in use per map, for capacity metrics. */
  usage(): Record<'pods' | 'conns', number> {
    return { pods: this.keys('palisade_pods', 8).length, conns: this.keys('palisade_conns', codec.TUPLE_SIZE).length };
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
