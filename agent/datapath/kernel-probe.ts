/**
 * The kernel feature probe the agent runs before it touches anything. What the data path needs is
 * read from its eBPF objects (program and attach types, the helpers each program calls, map types,
 * the kernel's BTF when an object carries CO-RE relocations), plus cgroup v2, bpffs and the socket
 * option that gives a pod's network-namespace cookie; each is asked of the kernel
 * (native/src/probe_ops.c). Below that minimum the agent refuses with one line
 * naming the first missing feature (PALISADE_ERR_KERNEL_UNSUPPORTED) and has created nothing.
 *
 * The decision, missingFeature(), is a pure function of the objects' needs and a KernelFeatures;
 * startAgent takes a KernelFeatures (the seam), so a test can hand it a kernel that lacks one.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PalisadeError, describeCause, isSyscallError } from '../../common/errors';
import { native, type ObjectNeeds } from '../../native';
import { findCgroup2Root } from './mounts';

/** The oldest kernel Palisade supports and tests (`make test-kernel` boots Debian 12's 6.1). */
export const MINIMUM_KERNEL = '6.1';

/** What a kernel offers, asked one feature at a time. */
export interface KernelFeatures {
  /** `uname -r`, for the message. */
  release(): string;
  /** A cgroup v2 hierarchy is mounted. */
  cgroup2(): boolean;
  /** The kernel has the bpf filesystem (mounted or mountable). */
  bpffs(): boolean;
  /** getsockopt(SO_NETNS_COOKIE) (Linux 5.14): how the agent learns each pod's namespace cookie. */
  netnsCookie(): boolean;
  /** The kernel describes itself in BTF (/sys/kernel/btf/vmlinux): what CO-RE relocations resolve against. */
  btf(): boolean;
  mapType(type: number): boolean;
  progType(progType: number): boolean;
  /** A program of this type loads with this expected attach type. */
  attachType(progType: number, attachType: number): boolean;
  helper(progType: number, helperId: number): boolean;
}

export interface ObjectFile {
  file: string;
  needs: ObjectNeeds;
}

/**
 * The first feature the objects need that the kernel lacks, as a phrase for "this kernel lacks …",
 * or undefined when it has them all. Order: the filesystems, then per object its maps, program
 * types, attach types and helpers; each distinct feature is asked once.
 */
export function missingFeature(objects: readonly ObjectFile[], kernel: KernelFeatures): string | undefined {
  if (!kernel.cgroup2()) return 'cgroup v2 (no cgroup2 mount in /proc/self/mountinfo)';
  if (!kernel.bpffs()) return 'the bpf filesystem (bpffs)';
  if (!kernel.netnsCookie()) return 'the SO_NETNS_COOKIE socket option (network-namespace cookies of pods)';
  const asked = new Map<string, boolean>();
  const has = (key: string, ask: () => boolean): boolean => {
    let v = asked.get(key);
    if (v === undefined) asked.set(key, (v = ask()));
    return v;
  };
  for (const { file, needs } of objects) {
    const name = path.basename(file);
    if (needs.coreRelocations && !has('btf', () => kernel.btf())) {
      return `BTF of the running kernel (/sys/kernel/btf/vmlinux), which the CO-RE relocations of ${name} need`;
    }
    for (const m of needs.maps) {
      if (!has(`map:${m.type}`, () => kernel.mapType(m.type))) return `map type ${m.typeName} (${m.name} in ${name})`;
    }
    for (const p of needs.programs) {
      const where = `${p.name} in ${name}`;
      if (!has(`prog:${p.progType}`, () => kernel.progType(p.progType))) return `program type ${p.progTypeName} (${where})`;
      if (!has(`attach:${p.progType}:${p.attachType}`, () => kernel.attachType(p.progType, p.attachType))) {
        return `attach type ${p.attachTypeName} for ${p.progTypeName} programs (${where})`;
      }
      for (const h of p.helpers) {
        if (!has(`helper:${p.progType}:${h.id}`, () => kernel.helper(p.progType, h.id))) {
          return `helper ${h.name ?? `#${h.id}`} in ${p.progTypeName} programs (${where})`;
        }
      }
    }
  }
  return undefined;
}

/** The running kernel, through the native probes. */
export function runningKernel(): KernelFeatures {
  return {
    release: () => os.release(),
    cgroup2: () => {
      try {
        findCgroup2Root();
        return true;
      } catch {
        return false;
      }
    },
    bpffs: () => /^nodev\s+bpf$/m.test(readOr('/proc/filesystems', '')),
    netnsCookie: () => {
      try {
        native.netnsCookie('/proc/self/ns/net');
        return true;
      } catch (err) {
        if (isSyscallError(err) && err.code === 'ENOPROTOOPT') return false;
        throw err;
      }
    },
    btf: () => fs.existsSync('/sys/kernel/btf/vmlinux'),
    mapType: (t) => native.probeMapType(t),
    progType: (t) => native.probeProgType(t),
    attachType: (t, a) => native.probeProgram(t, a),
    helper: (t, h) => native.probeHelper(t, h),
  };
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/** What the objects in `bpfDir` need (read from the files; nothing is loaded). */
export function readObjectNeeds(bpfDir: string, files: readonly string[]): ObjectFile[] {
  return files.map((f) => {
    const file = path.join(bpfDir, f);
    if (!fs.existsSync(file)) {
      throw new PalisadeError('PALISADE_ERR_BPF_LOAD', `eBPF object ${file} not found (run \`make build\`)`);
    }
    try {
      return { file, needs: native.objectNeeds(file) };
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_BPF_LOAD', `cannot read eBPF object ${file}: ${describeCause(err)}`, { cause: err });
    }
  });
}

/**
 * Refuse, in one line naming the missing feature, a kernel that cannot run these objects.
 * Creates nothing: the probes' test programs and maps are closed before it returns.
 */
export function checkKernel(objects: readonly ObjectFile[], kernel: KernelFeatures = runningKernel()): void {
  let missing: string | undefined;
  try {
    missing = missingFeature(objects, kernel);
  } catch (err) {
    const hint = isSyscallError(err) && err.code === 'EPERM' ? ' (the agent needs root, or CAP_BPF with CAP_NET_ADMIN)' : '';
    throw new PalisadeError('PALISADE_ERR_BPF_LOAD', `cannot probe the kernel's eBPF features: ${describeCause(err)}${hint}`, {
      cause: err,
    });
  }
  if (missing === undefined) return;
  throw new PalisadeError(
    'PALISADE_ERR_KERNEL_UNSUPPORTED',
    `this kernel (Linux ${kernel.release()}) lacks ${missing}; Palisade needs Linux ${MINIMUM_KERNEL} or later with cgroup v2 and bpffs`,
  );
}
