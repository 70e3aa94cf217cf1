/**
 * The typed surface of the native addon (native/src/*.c). TypeScript validates
 * every argument here; the C side trusts them and stays small.
 *
 * Every failing syscall throws an Error with `code` (errno name, e.g. `EPERM`),
 * `errno` (negative number, like Node's) and `syscall`; libbpf load failures also
 * carry `log` (the verifier's last lines).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError } from '../common/errors';

export interface LoadedProgram {
  name: string;
  section: string;
  fd: number;
  /** enum bpf_attach_type the program was built for */
  attachType: number;
}

export interface LoadedMap {
  name: string;
  pinPath: string;
  fd: number;
}

export interface LoadedObject {
  handle: number;
  rodataSize: number;
  programs: LoadedProgram[];
  maps: LoadedMap[];
}

export interface LinkInfo {
  id: number;
  progId: number;
  type: number;
  cgroupId?: bigint;
  attachType?: number;
}

export interface MapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** One network interface of a namespace (rtnetlink RTM_GETLINK). */
export interface NetLink {
  ifindex: number;
  name: string;
  /** 6 bytes, or null for links without an Ethernet address (loopback has 00:00:00:00:00:00) */
  mac: Buffer | null;
  /** IFLA_LINK: a veth's peer ifindex (in the peer's namespace); 0 when absent */
  link: number;
  /** IFLA_LINK_NETNSID: the peer's namespace as this namespace numbers it; -1 when absent */
  netnsId: number;
  /** IFLA_INFO_KIND (`veth`, `bridge`, ...); '' when absent */
  kind: string;
}

/** Where a tc filter hangs: a namespace (null: the agent's own), an interface, a direction, its handle and priority. */
export interface TcFilter {
  netns: string | null;
  ifindex: number;
  egress: boolean;
  handle: number;
  priority: number;
}

/** What one eBPF object needs from the kernel, read from the object without loading it. */
export interface ObjectNeeds {
  programs: Array<{
    name: string;
    section: string;
    /** enum bpf_prog_type, and libbpf's name for it (e.g. `cgroup_skb`) */
    progType: number;
    progTypeName: string;
    /** enum bpf_attach_type the program is loaded for, and its name (e.g. `cgroup_inet_ingress`) */
    attachType: number;
    attachTypeName: string;
    /** Helpers the program calls: enum bpf_func_id and, when the headers know it, `bpf_<name>`. */
    helpers: Array<{ id: number; name?: string }>;
  }>;
  maps: Array<{ name: string; type: number; typeName: string }>;
  /** CO-RE relocations, which need the kernel's own BTF (/sys/kernel/btf/vmlinux). */
  coreRelocations: boolean;
}

interface RawAddon {
  loadObject(file: string, pinDir: string, rodata: Buffer | null, sizes: Record<string, number> | null): LoadedObject;
  closeObject(handle: number): void;
  linkCreate(progFd: number, targetFd: number, attachType: number): number;
  linkUpdate(linkFd: number, progFd: number): void;
  linkInfo(linkFd: number): LinkInfo;
  objPin(fd: number, pinPath: string): void;
  objGet(pinPath: string): number;
  mapInfo(fd: number): MapInfo;
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): void;
  mapDelete(fd: number, key: Buffer): boolean;
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null;
  mapCount(fd: number, keySize: number, max: number): number;
  progName(id: number): string | null;
  numPossibleCpus(): number;
  netnsCookie(netnsPath: string): bigint;
  mountBpffs(dir: string): void;
  openDir(dir: string): number;
  closeFd(fd: number): void;
  lockFile(file: string): number;
  mallocTrim(): boolean;
  netLinks(netns: string | null): NetLink[];
  tcAttach(netns: string | null, ifindex: number, egress: number, handle: number, priority: number, progFd: number): number;
  tcDetach(netns: string | null, ifindex: number, egress: number, handle: number, priority: number): boolean;
  tcQuery(netns: string | null, ifindex: number, egress: number, handle: number, priority: number): number | null;
  objectNeeds(file: string): ObjectNeeds;
  probeProgram(progType: number, attachType: number): boolean;
  probeProgType(progType: number): boolean;
  probeHelper(progType: number, helperId: number): boolean;
  probeMapType(mapType: number): boolean;
}

/** Map update flags (BPF_ANY / BPF_NOEXIST / BPF_EXIST). */
export const UpdateFlag = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

const ADDON_NAME = 'palisade_native.node';

function candidatePaths(): string[] {
  const fromEnv = process.env.PALISADE_NATIVE_ADDON;
  // dist/native/index.js -> <repo>/native/build/Release; also when run from source.
  const roots = [path.resolve(__dirname, '..', '..', 'native'), path.resolve(__dirname)];
  const found = roots.flatMap((r) => [path.join(r, 'build', 'Release', ADDON_NAME), path.join(r, 'build', 'Debug', ADDON_NAME)]);
  return fromEnv ? [fromEnv, ...found] : found;
}

let cached: RawAddon | undefined;

/** Load the addon once; the error names every path tried. */
function addon(): RawAddon {
  if (cached) return cached;
  const tried = candidatePaths();
  for (const p of tried) {
    if (!fs.existsSync(p)) continue;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(p) as RawAddon;
      return cached;
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_NATIVE_LOAD', `cannot load native addon ${p}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  throw new PalisadeError(
    'PALISADE_ERR_NATIVE_LOAD',
    `native addon not built (run \`make build\`); tried ${tried.join(', ')}`,
  );
}

function assertFd(fd: number, what: string): void {
  if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`${what} must be a file descriptor, got ${fd}`);
}

function assertAbsPath(p: string, what: string): void {
  if (typeof p !== 'string' || !path.isAbsolute(p) || p.includes('\0') || p.length >= 4000) {
    throw new TypeError(`${what} must be an absolute path, got ${JSON.stringify(p)}`);
  }
}

function assertTcFilter(f: TcFilter): void {
  if (f.netns !== null) assertAbsPath(f.netns, 'netns path');
  if (!Number.isInteger(f.ifindex) || f.ifindex <= 0 || f.ifindex > 0x7fffffff) throw new TypeError(`bad ifindex ${f.ifindex}`);
  if (!Number.isInteger(f.handle) || f.handle <= 0 || f.handle > 0x7fffffff) throw new TypeError(`bad tc handle ${f.handle}`);
  if (!Number.isInteger(f.priority) || f.priority <= 0 || f.priority > 0xffff) throw new TypeError(`bad tc priority ${f.priority}`);
}

function assertBuffer(b: Buffer, what: string): void {
  if (!Buffer.isBuffer(b) || b.length === 0) throw new TypeError(`${what} must be a non-empty Buffer`);
}

function assertEnum(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new TypeError(`${what} must be a small non-negative integer, got ${n}`);
}

function assertSize(n: number, what: string): void {
  if (!Number.isInteger(n) || n <= 0 || n > 1 << 20) throw new TypeError(`${what} must be a positive size, got ${n}`);
}

export const native = {
  /** `sizes`: max_entries by map name, set before load (maps it does not name keep the object's). */
  loadObject(file: string, pinDir: string, rodata: Buffer | null, sizes: Readonly<Record<string, number>> | null = null): LoadedObject {
    assertAbsPath(file, 'object file');
    assertAbsPath(pinDir, 'pin directory');
    if (rodata !== null) assertBuffer(rodata, 'rodata');
    if (sizes !== null) {
      for (const [name, n] of Object.entries(sizes)) {
        if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) throw new TypeError(`max_entries of ${name} must be a positive 31-bit integer, got ${n}`);
      }
    }
    return addon().loadObject(file, pinDir, rodata, sizes === null ? null : { ...sizes });
  },
  closeObject(handle: number): void {
    if (!Number.isInteger(handle) || handle < 0) throw new TypeError(`bad object handle ${handle}`);
    addon().closeObject(handle);
  },
  linkCreate(progFd: number, targetFd: number, attachType: number): number {
    assertFd(progFd, 'program fd');
    assertFd(targetFd, 'target fd');
    if (!Number.isInteger(attachType) || attachType < 0) throw new TypeError(`bad attach type ${attachType}`);
    return addon().linkCreate(progFd, targetFd, attachType);
  },
  linkUpdate(linkFd: number, progFd: number): void {
    assertFd(linkFd, 'link fd');
    assertFd(progFd, 'program fd');
    addon().linkUpdate(linkFd, progFd);
  },
  linkInfo(linkFd: number): LinkInfo {
    assertFd(linkFd, 'link fd');
    return addon().linkInfo(linkFd);
  },
  objPin(fd: number, pinPath: string): void {
    assertFd(fd, 'fd');
    assertAbsPath(pinPath, 'pin path');
    addon().objPin(fd, pinPath);
  },
  objGet(pinPath: string): number {
    assertAbsPath(pinPath, 'pin path');
    return addon().objGet(pinPath);
  },
  mapInfo(fd: number): MapInfo {
    assertFd(fd, 'map fd');
    return addon().mapInfo(fd);
  },
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null {
    assertFd(fd, 'map fd');
    assertBuffer(key, 'key');
    assertSize(valueSize, 'value size');
    return addon().mapLookup(fd, key, valueSize);
  },
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number = UpdateFlag.ANY): void {
    assertFd(fd, 'map fd');
    assertBuffer(key, 'key');
    assertBuffer(value, 'value');
    addon().mapUpdate(fd, key, value, flags);
  },
  mapDelete(fd: number, key: Buffer): boolean {
    assertFd(fd, 'map fd');
    assertBuffer(key, 'key');
    return addon().mapDelete(fd, key);
  },
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null {
    assertFd(fd, 'map fd');
    assertSize(keySize, 'key size');
    if (key !== null) assertBuffer(key, 'key');
    return addon().mapNextKey(fd, key, keySize);
  },
  /** How many keys the map holds, counting at most `max`. */
  mapCount(fd: number, keySize: number, max: number): number {
    assertFd(fd, 'map fd');
    assertSize(keySize, 'key size');
    if (!Number.isInteger(max) || max < 0 || max > 0x7fffffff) throw new TypeError(`bad count limit ${max}`);
    return addon().mapCount(fd, keySize, max);
  },
  /** The name of the program with this kernel id (what tcQuery reports; at most 15 characters), null once it is gone. */
  progName(id: number): string | null {
    if (!Number.isInteger(id) || id <= 0 || id > 0x7fffffff) throw new TypeError(`bad program id ${id}`);
    return addon().progName(id);
  },
  numPossibleCpus(): number {
    return addon().numPossibleCpus();
  },
  netnsCookie(netnsPath: string): bigint {
    assertAbsPath(netnsPath, 'netns path');
    return addon().netnsCookie(netnsPath);
  },
  mountBpffs(dir: string): void {
    assertAbsPath(dir, 'bpffs directory');
    addon().mountBpffs(dir);
  },
  openDir(dir: string): number {
    assertAbsPath(dir, 'directory');
    return addon().openDir(dir);
  },
  closeFd(fd: number): void {
    assertFd(fd, 'fd');
    addon().closeFd(fd);
  },
  lockFile(file: string): number {
    assertAbsPath(file, 'lock file');
    return addon().lockFile(file);
  },
  /** glibc's malloc_trim(0): free pages inside malloc's heaps back to the kernel; true when some were. */
  mallocTrim(): boolean {
    return addon().mallocTrim();
  },
  /** The interfaces of a network namespace (null: the agent's own). */
  netLinks(netns: string | null): NetLink[] {
    if (netns !== null) assertAbsPath(netns, 'netns path');
    return addon().netLinks(netns);
  },
  /** Attach (or replace) a direct-action cls_bpf filter; returns the attached program's id. */
  tcAttach(f: TcFilter, progFd: number): number {
    assertTcFilter(f);
    assertFd(progFd, 'program fd');
    return addon().tcAttach(f.netns, f.ifindex, f.egress ? 1 : 0, f.handle, f.priority, progFd);
  },
  /** Remove the filter; false when it (or its interface) was already gone. */
  tcDetach(f: TcFilter): boolean {
    assertTcFilter(f);
    return addon().tcDetach(f.netns, f.ifindex, f.egress ? 1 : 0, f.handle, f.priority);
  },
  /** The id of the program attached there, or null. */
  tcQuery(f: TcFilter): number | null {
    assertTcFilter(f);
    return addon().tcQuery(f.netns, f.ifindex, f.egress ? 1 : 0, f.handle, f.priority);
  },
  /** Kernel feature probes (native/src/probe_ops.c): nothing they load outlives the call. */
  objectNeeds(file: string): ObjectNeeds {
    assertAbsPath(file, 'object file');
    return addon().objectNeeds(file);
  },
  /** Whether a trivial program of this type loads with this expected attach type; throws on EPERM and the like. */
  probeProgram(progType: number, attachType: number): boolean {
    assertEnum(progType, 'program type');
    assertEnum(attachType, 'attach type');
    return addon().probeProgram(progType, attachType);
  },
  probeProgType(progType: number): boolean {
    assertEnum(progType, 'program type');
    return addon().probeProgType(progType);
  },
  probeHelper(progType: number, helperId: number): boolean {
    assertEnum(progType, 'program type');
    assertEnum(helperId, 'helper id');
    return addon().probeHelper(progType, helperId);
  },
  probeMapType(mapType: number): boolean {
    assertEnum(mapType, 'map type');
    return addon().probeMapType(mapType);
  },
};
