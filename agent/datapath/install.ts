/**
 * Installing a node's data path: loading the eBPF objects with their maps sized (./map-sizes.ts),
 * pinning everything under <bpffs>/palisade/<node>/, attaching the socket programs to the cgroup
 * (./cgroup-links.ts) and pinning the per-pod ones (./pod-wire.ts); and removing it all again.
 *
 * Pins outlive the agent on purpose: while the proxy is down, enrolled pods are
 * still redirected to it and get refused (fail closed), never let through.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError, describeCause, invalidArgument } from '../../common/errors';
import type { Logger } from '../../common/log';
import { silentLogger } from '../../common/log';
import { native, type LoadedObject } from '../../native';
import * as codec from './codec';
import { attachProgram, closeQuietly, LINK_PREFIX } from './cgroup-links';
import { DEFAULT_MAP_LIMITS, mapSizes, withPinnedSizes, type MapLimits } from './map-sizes';
import { pinnedSizes } from './map-usage';
import { ensureBpffs, isBpffs, resolveCgroup } from './mounts';
import { netnsCookieOf } from './netns-cookie';
import * as wire from './pod-wire';
import { verifierReason } from './verifier-log';

export const OBJECT_FILES = ['redirect.bpf.o', 'pod.bpf.o', 'dns.bpf.o'];
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
  /** Sizes of the pod and connection maps when they are created (./map-sizes.ts); pinned maps keep theirs. */
  limits?: MapLimits;
  log?: Logger;
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

/**
 * Load, pin and attach (or re-attach over existing pins: idempotent, and an agent
 * restart swaps programs atomically through the pinned links). On a failure
 * nothing this call created is left behind.
 */
export function installPins<T>(opts: DatapathOptions, open: (bpffs: string) => T): T {
  const log = (opts.log ?? silentLogger()).child({ component: 'datapath' });
  const bpffs = opts.bpffs ?? '/sys/fs/bpf';
  const pinDir = pinDirFor(opts.node, bpffs);
  const cgroup = resolveCgroup(opts.cgroup);
  const bpfDir = opts.bpfDir ?? defaultBpfDir();
  const rodata = codec.encodeConfig(opts.proxyIp, opts.proxyPort ?? 15001, opts.dnsPort ?? DNS_PORT);
  ensureBpffs(bpffs);
  // A pinned map is reused as it is: its size stays until `palisade agent uninstall`.
  const { sizes, kept } = withPinnedSizes(mapSizes(opts.limits ?? DEFAULT_MAP_LIMITS), pinnedSizes(pinDir));
  for (const k of kept) log.warn({ map: k.map, entries: k.pinned, wanted: k.wanted }, `${k.map} keeps its ${k.pinned} entries until \`palisade agent uninstall\``);

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
        obj = native.loadObject(objPath, pinDir, rodata, sizes);
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
    const dp = open(bpffs);
    log.info(
      {
        node: opts.node,
        cgroup: cgroup.path,
        pinDir,
        pods: sizes.palisade_pods,
        connections: sizes.palisade_conns,
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

/**
 * Detach every program and remove every pin of the node. Returns what it removed.
 * Safe to run twice; a node that was never installed is not an error.
 */
export function removePins(node: string, bpffs = '/sys/fs/bpf'): string[] {
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
