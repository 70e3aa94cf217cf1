/**
 * The per-pod filters on the wire (bpf/pod.bpf.c): attaching them to a pod's host-side interface
 * and removing them, the maps that say which interface is which pod, the agent cgroups strict pods
 * accept connections from, and finding the filters again for `palisade agent uninstall`.
 *
 * A filter is a classic tc clsact/cls_bpf filter at (TC_HANDLE, TC_PRIORITY) in both directions.
 * It holds its program, so it outlives the agent: while no agent runs the pod stays confined
 * (fail closed). Attaching replaces what is there, so a restarted agent re-enrolls idempotently.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError, describeCause } from '../../common/errors';
import { native, UpdateFlag, type LoadedProgram, type TcFilter } from '../../native';
import { closeQuietly } from './cgroup-links';
import * as pc from './pod-codec';
import type { PodLink } from './pod-links';

/** 'PA': the handle of Palisade's filters; priority 1 runs them before other filters of the hook. */
export const TC_HANDLE = 0x5041;
export const TC_PRIORITY = 1;

export const POD_PROGRAMS = ['palisade_from_pod', 'palisade_to_pod', 'palisade_hold'] as const;
/** Pins of the per-pod programs: prog_<name> (tc filters reference them; no cgroup link). */
export const PROG_PREFIX = 'prog_';
export type PodProgram = (typeof POD_PROGRAMS)[number];

export const POD_MAP_NAMES = [
  'palisade_ifaces',
  'palisade_agent_cg',
  'palisade_host',
  'palisade_tcp_in',
  'palisade_dgram',
  'palisade_frags',
  'palisade_rules',
  'palisade_rules_gen',
  'palisade_drops',
  'palisade_drops_seen',
  'palisade_drops_v6',
] as const;
export type PodMapName = (typeof POD_MAP_NAMES)[number];

/** What the functions here need of an opened data path. */
export interface WireHandles {
  mapFd(name: PodMapName): number;
  progFd(name: PodProgram): number;
}

function filters(ifindex: number, netns: string | null, hold = false): Array<TcFilter & { program: PodProgram }> {
  const base = { netns, ifindex, handle: TC_HANDLE, priority: TC_PRIORITY };
  return [
    { ...base, egress: false, program: hold ? 'palisade_hold' : 'palisade_from_pod' }, // the host side receives what the pod sends
    { ...base, egress: true, program: hold ? 'palisade_hold' : 'palisade_to_pod' },
  ];
}

/**
 * Cut a pod refused enrollment off at its host-side interface: `palisade_hold` both ways, no entry
 * in palisade_ifaces. Enrolling it later replaces the filters; an interface that is an enrolled
 * pod's is left as it is.
 */
export function holdInterface(h: WireHandles, link: PodLink): void {
  if (podOfInterface(h, link.hostIfindex)) return;
  for (const f of filters(link.hostIfindex, null, true)) {
    try {
      native.tcAttach(f, h.progFd(f.program));
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_BPF_ATTACH', `cannot hold ${link.hostName} (${f.egress ? 'egress' : 'ingress'}): ${describeCause(err)}`, { cause: err });
    }
  }
}

/** The kernel keeps 15 characters of a program's name. */
const POD_PROGRAM_NAMES: ReadonlySet<string> = new Set(POD_PROGRAMS.map((p) => p.slice(0, 15)));

/**
 * Whether a filter of ours hangs on the interface (in `netns`, null: ours): at our handle and
 * priority, holding a per-pod program by its name — also one an earlier agent loaded (a restart
 * pins new programs; the filters of pods it no longer enrolls or holds still hold the old ones).
 */
function hasOurFilter(ifindex: number, netns: string | null): boolean {
  return filters(ifindex, netns).some((f) => {
    const id = native.tcQuery(f);
    const name = id === null ? null : native.progName(id);
    return name !== null && (POD_PROGRAM_NAMES as ReadonlySet<string>).has(name);
  });
}

/**
 * Take this node's filters off every interface of `netns` (null: ours) that no enrolled pod uses
 * and `keep` does not name: held pods no longer refused, filters an interrupted enrollment left.
 * Returns their ifindexes.
 */
export function sweepUnenrolledFilters(h: WireHandles, netns: string | null, keep: ReadonlySet<number> = new Set()): number[] {
  const enrolled = new Set(enrolledInterfaces(h));
  const removed: number[] = [];
  for (const l of native.netLinks(netns)) {
    if (l.ifindex === 1 || enrolled.has(l.ifindex) || keep.has(l.ifindex) || !hasOurFilter(l.ifindex, netns)) continue;
    for (const f of filters(l.ifindex, netns)) native.tcDetach(f);
    removed.push(l.ifindex);
  }
  return removed;
}

const ZERO = pc.encodeU32(0);

/** Record which pod is behind the interface, then hang both filters on it (replacing ours if there). */
export function attachPod(h: WireHandles, link: PodLink, entry: Omit<pc.IfaceEntry, 'mac'>): void {
  const key = pc.encodeIfindex(link.hostIfindex);
  try {
    native.mapUpdate(h.mapFd('palisade_ifaces'), key, pc.encodeIface({ ...entry, mac: link.podMac }));
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_BPF_MAP', `cannot update palisade_ifaces: ${describeCause(err)}`, { cause: err });
  }
  for (const f of filters(link.hostIfindex, null)) {
    try {
      native.tcAttach(f, h.progFd(f.program));
    } catch (err) {
      throw new PalisadeError(
        'PALISADE_ERR_BPF_ATTACH',
        `cannot attach ${f.program} to ${link.hostName} (${f.egress ? 'egress' : 'ingress'}): ${describeCause(err)}`,
        { cause: err },
      );
    }
  }
}

/** Change an interface's pod flags (strict), if it is still the pod with this address. */
export function setInterfaceFlags(h: WireHandles, ifindex: number, ip: string | undefined, flags: number): void {
  const entry = podOfInterface(h, ifindex);
  if (entry && entry.ip === ip) native.mapUpdate(h.mapFd('palisade_ifaces'), pc.encodeIfindex(ifindex), pc.encodeIface({ ...entry, flags }), UpdateFlag.EXIST);
}

/** The pod entry of an interface, if it is an enrolled pod's. */
export function podOfInterface(h: WireHandles, ifindex: number): pc.IfaceEntry | undefined {
  const v = native.mapLookup(h.mapFd('palisade_ifaces'), pc.encodeIfindex(ifindex), pc.IFACE_SIZE);
  return v ? pc.decodeIface(v) : undefined;
}

/** Remove both filters of an interface (in `netns`, null: ours) and forget it; false if nothing was there. */
export function detachPod(h: WireHandles, ifindex: number, netns: string | null = null): boolean {
  let removed = false;
  for (const f of filters(ifindex, netns)) removed = native.tcDetach(f) || removed;
  forgetInterface(h, ifindex);
  return removed;
}

/** Remove the interface's pod entry, its filters left as they are (a hold replaces them). */
export function forgetInterface(h: WireHandles, ifindex: number): void {
  native.mapDelete(h.mapFd('palisade_ifaces'), pc.encodeIfindex(ifindex));
}

/** Every key of a map (bounded: a map never holds more than its max_entries). */
function keysOf(fd: number, keySize: number, max = 1 << 20): Buffer[] {
  const out: Buffer[] = [];
  let k: Buffer | null = null;
  for (let i = 0; i < max; i++) {
    k = native.mapNextKey(fd, k, keySize);
    if (!k) break;
    out.push(k);
  }
  return out;
}

/** Every interface with an entry in palisade_ifaces. */
export function enrolledInterfaces(h: WireHandles): number[] {
  return keysOf(h.mapFd('palisade_ifaces'), 4).map((k) => k.readUInt32LE(0));
}

/** Write down this agent's network namespace: `uninstall` finds the filters there. */
export function recordHostNetns(h: WireHandles, netnsCookie: bigint): void {
  native.mapUpdate(h.mapFd('palisade_host'), ZERO, pc.encodeU64(netnsCookie));
}

export function hostNetnsCookie(h: WireHandles): bigint {
  const v = native.mapLookup(h.mapFd('palisade_host'), ZERO, pc.HOST_SIZE);
  return v ? v.readBigUInt64LE(0) : 0n;
}

/**
 * Let sockets of this cgroup open connections to strict pods. A full map loses its oldest other
 * entries (agents long gone); two agents of a handover each keep theirs.
 */
export function registerAgentCgroup(h: WireHandles, cgroupId: bigint, pid: number, nowS = Math.floor(Date.now() / 1000)): void {
  const fd = h.mapFd('palisade_agent_cg');
  const others: Array<{ key: Buffer; since: number }> = [];
  for (const k of keysOf(fd, 8, 64)) {
    if (k.readBigUInt64LE(0) === cgroupId) continue;
    const v = native.mapLookup(fd, k, pc.AGENT_SIZE);
    if (v) others.push({ key: k, since: pc.decodeAgent(v).since });
  }
  others.sort((a, b) => a.since - b.since);
  // Room for ours and one more (the other agent of a handover).
  while (others.length > 6) native.mapDelete(fd, others.shift()!.key);
  native.mapUpdate(fd, pc.encodeU64(cgroupId), pc.encodeAgent(pid, nowS), UpdateFlag.ANY);
}

/** Withdraw a cgroup, if this pid still holds it (a successor in the same cgroup keeps it). */
export function unregisterAgentCgroup(h: WireHandles, cgroupId: bigint, pid: number): void {
  const fd = h.mapFd('palisade_agent_cg');
  const key = pc.encodeU64(cgroupId);
  const v = native.mapLookup(fd, key, pc.AGENT_SIZE);
  if (v && pc.decodeAgent(v).pid === pid) native.mapDelete(fd, key);
}

export function agentCgroups(h: WireHandles): bigint[] {
  return keysOf(h.mapFd('palisade_agent_cg'), 8, 64).map((k) => k.readBigUInt64LE(0));
}

/** Named network namespaces (`ip netns`), where a node's agent may have run. */
const NETNS_DIRS = ['/run/netns', '/var/run/netns'];

/**
 * The network namespace whose cookie is `cookie`: null for our own, a path for another one found
 * among the named namespaces, undefined when it is nowhere to be found (gone, or unnamed).
 */
export function findNetns(cookie: bigint, cookieOf: (p: string) => bigint): string | null | undefined {
  if (cookie === 0n) return undefined;
  if (cookieOf('/proc/self/ns/net') === cookie) return null;
  const seen = new Set<string>();
  for (const dir of NETNS_DIRS) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      let real: string;
      try {
        real = fs.realpathSync(p);
      } catch {
        continue;
      }
      if (seen.has(real)) continue;
      seen.add(real);
      try {
        if (cookieOf(p) === cookie) return p;
      } catch {
        /* not a namespace (or gone): keep looking */
      }
    }
  }
  return undefined;
}

/**
 * Detach every per-pod filter a node's pins know of, in the network namespace of the agent that
 * attached them (found again by its cookie among ours and the named namespaces). Returns the
 * ifindexes whose filters it removed; in a namespace that is gone, the interfaces went with it.
 */
export function detachPinnedFilters(pinDir: string, cookieOf: (p: string) => bigint): number[] {
  const fds: Partial<Record<PodMapName, number>> = {};
  try {
    for (const name of ['palisade_ifaces', 'palisade_host'] as const) {
      if (!fs.existsSync(path.join(pinDir, name))) return [];
      fds[name] = native.objGet(path.join(pinDir, name));
    }
    const h: WireHandles = {
      mapFd: (name) => fds[name]!,
      progFd: () => {
        throw new Error('no programs needed to detach');
      },
    };
    const netns = findNetns(hostNetnsCookie(h), cookieOf);
    if (netns === undefined) return []; // the namespace is gone, and its interfaces with it
    const enrolled = enrolledInterfaces(h).filter((ifindex) => detachPod(h, ifindex, netns));
    return [...enrolled, ...sweepUnenrolledFilters(h, netns)]; // and the held pods' filters
  } finally {
    for (const fd of Object.values(fds)) closeQuietly(fd);
  }
}

/** Pin a tc program as prog_<name>, replacing the pin of an earlier install (filters keep what they hold). */
export function pinProgram(prog: LoadedProgram, pinDir: string, created: string[]): void {
  const name = PROG_PREFIX + prog.name;
  const pinPath = path.join(pinDir, name);
  const tmp = `${pinPath}_new`; // bpffs refuses names with a dot
  const existed = fs.existsSync(pinPath);
  try {
    fs.rmSync(tmp, { force: true });
    native.objPin(prog.fd, tmp);
    fs.renameSync(tmp, pinPath);
    if (!existed && !created.includes(name)) created.push(name);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new PalisadeError('PALISADE_ERR_BPF_LOAD', `cannot pin ${prog.name} in ${pinDir}: ${describeCause(err)}`, { cause: err });
  }
}

/** One counter of palisade_drops: a pod, a reason, a direction, summed over CPUs. */
export interface DropCounter extends pc.DropKey, pc.DropCount {}

/**
 * Every drop counter of the node (keys a newer program wrote that this agent cannot name are
 * skipped); an IPv6 drop's sample names the IPv6 addresses palisade_drops_v6 kept.
 */
export function readDrops(h: WireHandles, cpus: number): DropCounter[] {
  const fd = h.mapFd('palisade_drops');
  const out: DropCounter[] = [];
  for (const k of keysOf(fd, pc.DROP_KEY_SIZE)) {
    const key = pc.decodeDropKey(k);
    const v = key && native.mapLookup(fd, k, pc.DROP_SIZE * cpus);
    if (!key || !v) continue;
    const count = pc.decodeDrops(v);
    const v6 = key.reason === 'ipv6' && count.sample ? native.mapLookup(h.mapFd('palisade_drops_v6'), k, pc.DROP6_SIZE) : null;
    if (v6 && count.sample) {
      const a = pc.decodeDrop6(v6);
      count.sample = { ...count.sample, source: a.source, destination: a.destination };
    }
    out.push({ ...key, ...count });
  }
  return out;
}

/** One learned UDP/ICMP flow with its counters. */
export interface DgramFlow extends pc.FlowKey, pc.DgramEntry {}

export function readDgramFlows(h: WireHandles): DgramFlow[] {
  const fd = h.mapFd('palisade_dgram');
  const out: DgramFlow[] = [];
  for (const k of keysOf(fd, pc.FLOW_KEY_SIZE)) {
    const v = native.mapLookup(fd, k, pc.DGRAM_SIZE);
    if (v) out.push({ ...pc.decodeFlowKey(k), ...pc.decodeDgram(v) });
  }
  return out;
}

/** Packets of each drop counter already reported (by this agent or one before it). */
export function readDropsSeen(h: WireHandles): Map<string, bigint> {
  const fd = h.mapFd('palisade_drops_seen');
  const out = new Map<string, bigint>();
  for (const k of keysOf(fd, pc.DROP_KEY_SIZE)) {
    const v = native.mapLookup(fd, k, 8);
    if (v) out.set(k.toString('hex'), v.readBigUInt64LE(0));
  }
  return out;
}

export function writeDropSeen(h: WireHandles, key: pc.DropKey, packets: bigint): void {
  native.mapUpdate(h.mapFd('palisade_drops_seen'), pc.encodeDropKey(key), pc.encodeU64(packets));
}
