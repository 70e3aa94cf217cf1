/**
 * The workload registry kept across a collector restart: `<data dir>/registry.json` holds the
 * registry's epoch, its version, the versions this process may send before the next write
 * (`reserved`), the Kubernetes Services and every node of this replica with its registration.
 * A restarted collector starts from it (WorkloadRegistry.restore), so agents that reconnect with
 * the version they hold get the deltas they missed or nothing, not the whole registry again.
 *
 * Written off the event loop (writeFileAtomicAsync: the fsync runs in the thread pool), at most
 * every `intervalMs` while the registry changes, and once more at stop before the sessions close
 * (their going offline is not written: the agents come back). A node's workloads are encoded once
 * per list (the registry replaces a node's list on every change), so a write after a pod change
 * costs that node's bytes, then one join. Each write reserves RESERVED_VERSIONS versions past the
 * current one; a restart skips past them (an agent may hold any version the crashed process sent).
 *
 * Read once at start: a damaged file, a file of another trust domain or format is one warning and
 * a fresh epoch, never a registry built from it.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, writeFileAtomicAsync } from '../common/atomic-file';
import type { Logger } from '../common/log';
import { isRecord } from '../common/record';
import { parseMessage, type RegistryService, type RegistryWorkload, type ServiceRegistration } from '../common/mesh-protocol';
import { checkRegistration } from './nodes/registration-share';
import type { WorkloadRegistry } from './registry';
import type { DiskRegistry, RestoredRegistry } from './registry-entries';

export const REGISTRY_STATE_FILE = 'registry.json';
const FORMAT = 'palisade-registry/1';
/** Versions a write lets this process send before the next write is on disk (a restart skips them). */
const RESERVED_VERSIONS = 1_000_000;
const EPOCH = /^[0-9a-f]{16}$/;
const NODE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** The file's text for `state` (reserving versions up to `reserved`); `workloadsText` encodes a node's list (cached by the caller). */
function registryStateText(trustDomain: string, state: DiskRegistry, reserved: number, workloadsText: (w: readonly RegistryWorkload[]) => string): string {
  const head = JSON.stringify({ format: FORMAT, trustDomain, epoch: state.epoch, version: state.version, reserved, kubeServices: state.kubeServices });
  const nodes = state.nodes.map((n) => {
    const { node, nodeAddress, online, stamp, services } = n;
    return `${JSON.stringify({ node, nodeAddress, online, lastSeen: n.lastSeen.toISOString(), stamp, services }).slice(0, -1)},"workloads":${workloadsText(n.workloads)}}`;
  });
  return `${head.slice(0, -1)},"nodes":[${nodes.join(',')}]}\n`;
}

export interface RegistryStateFile {
  state: DiskRegistry;
  reserved: number;
  text: string;
}

/**
 * The file's text for `registry` now: reserving RESERVED_VERSIONS past its version, or none when
 * `final` (a frozen registry: it sends nothing more).
 */
export function encodeRegistryState(registry: WorkloadRegistry, final: boolean, workloadsText: (w: readonly RegistryWorkload[]) => string = workloadsJson): RegistryStateFile {
  const state = registry.diskState();
  const reserved = final ? state.version : state.version + RESERVED_VERSIONS;
  return { state, reserved, text: registryStateText(registry.trustDomain, state, reserved, workloadsText) };
}

/** A node's workloads as registrations (what an agent registers; the rest is derived again at restore). */
export function workloadsJson(workloads: readonly RegistryWorkload[]): string {
  return JSON.stringify(workloads.map((w) => ({ name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount, ip: w.ip, labels: w.labels })));
}

/** The registry `text` holds, or one line saying why it cannot be used. */
export function parseRegistryState(text: string, trustDomain: string): RestoredRegistry | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'not JSON (damaged)';
  }
  if (!isRecord(doc) || doc.format !== FORMAT) return `not a registry state of format ${FORMAT}`;
  if (doc.trustDomain !== trustDomain) return `of trust domain ${JSON.stringify(String(doc.trustDomain).slice(0, 64))}, not ${trustDomain}`;
  const { epoch, version, reserved } = doc;
  if (typeof epoch !== 'string' || !EPOCH.test(epoch)) return 'epoch: must be 16 hex digits';
  if (!Number.isSafeInteger(version) || (version as number) < 0 || !Number.isSafeInteger(reserved) || (reserved as number) < (version as number) || (reserved as number) > Number.MAX_SAFE_INTEGER / 2) {
    return 'version and reserved: must be whole numbers, reserved ≥ version';
  }
  if (!Array.isArray(doc.kubeServices) || !Array.isArray(doc.nodes)) return 'kubeServices and nodes: must be lists';
  try {
    parseMessage(JSON.stringify({ type: 'registry', version: 0, epoch, workloads: [], nodes: [], services: doc.kubeServices }), ['registry'], Infinity);
  } catch (err) {
    return `kubeServices: ${(err as Error).message}`;
  }
  const nodes: RestoredRegistry['nodes'] = [];
  const names = new Set<string>();
  const ips = new Set<string>();
  for (const [i, n] of (doc.nodes as unknown[]).entries()) {
    if (!isRecord(n) || typeof n.node !== 'string' || !NODE.test(n.node) || names.has(n.node)) return `nodes[${i}].node: must be a node name, once`;
    const share = checkRegistration(n);
    if (typeof share === 'string') return `nodes[${i}] (${n.node}): ${share}`;
    for (const w of share.workloads) {
      if (ips.has(w.ip)) return `nodes[${i}] (${n.node}): ip ${w.ip} is held twice`;
      ips.add(w.ip);
    }
    names.add(n.node);
    nodes.push({ node: n.node, ...share, services: share.services as ServiceRegistration[] });
  }
  return { epoch, version: version as number, reserved: reserved as number, kubeServices: doc.kubeServices as RegistryService[], nodes };
}

/**
 * The registry of the state dir `dataDir`, restored into `registry` (fresh, no session yet);
 * returns the nodes restored online (they go offline unless their agents come back), [] when
 * there is no file or it is refused (one warning, a fresh epoch).
 */
export function restoreRegistry(dataDir: string, registry: WorkloadRegistry, log: Logger): string[] {
  const file = path.join(dataDir, REGISTRY_STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn(`registry state ${file} not read (${(err as Error).message}): starting a fresh registry epoch, agents get a snapshot`);
    return [];
  }
  const state = parseRegistryState(text, registry.trustDomain);
  if (typeof state === 'string') {
    log.warn(`registry state ${file} ignored: ${state}; starting a fresh registry epoch, agents get a snapshot`);
    return [];
  }
  const online = registry.restore(state);
  log.info({ epoch: state.epoch, version: state.version, nodes: state.nodes.length, online: online.length }, 'registry restored from the state dir');
  return online;
}

/** Writes the registry to the state dir while it changes (see the file comment). */
export class RegistryStateWriter {
  private readonly file: string;
  private readonly texts = new WeakMap<readonly RegistryWorkload[], string>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;
  /** The write at stop (`flush`): once set, the registry is frozen and nothing more is written. */
  private final: Promise<void> | undefined;
  /** Writes done, failed (tests, logs). */
  readonly counts = { written: 0, failed: 0 };

  constructor(
    dataDir: string,
    private readonly registry: WorkloadRegistry,
    private readonly log: Logger,
    private readonly intervalMs = 5_000,
  ) {
    this.file = path.join(dataDir, REGISTRY_STATE_FILE);
  }

  /** The registry changed: write it within `intervalMs`. */
  changed(): void {
    if (this.final) return;
    this.dirty = true;
    if (this.timer === undefined && this.writing === undefined) this.timer = setTimeout(() => this.write(), this.intervalMs).unref();
  }

  /**
   * Write now, on this thread: right after a restore, before any session (the versions the old
   * file reserved are used up by the restore, so no change may be sent before a new reservation).
   */
  writeNow(): void {
    const { state, reserved, text } = this.encode();
    writeFileAtomic(this.file, text, 0o600);
    this.counts.written += 1;
    this.registry.noteDurable(state.epoch, reserved);
  }

  /**
   * The collector stops: from now on the registry sends no frame (registry.freeze), and its state
   * at that version is written (after any write in flight), reserving nothing past it — agents
   * that hold it get nothing after the restart. Nothing is written after (the sessions' closing
   * is not kept: the agents come back). Frozen at the call; the promise is the write.
   */
  flush(): Promise<void> {
    if (this.final) return this.final;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.registry.freeze();
    const file = this.encode(true);
    this.final = (this.writing ?? Promise.resolve()).then(() => this.save(file));
    return this.final;
  }

  private write(): void {
    this.timer = undefined;
    if (this.final) return;
    this.dirty = false;
    this.writing = this.save(this.encode()).finally(() => {
      this.writing = undefined;
      if (this.dirty) this.changed();
    });
  }

  /** Write `file` off the loop; once it is on disk, the registry may send the versions it reserves. */
  private save({ state, reserved, text }: RegistryStateFile): Promise<void> {
    return writeFileAtomicAsync(this.file, text, 0o600).then(
      () => {
        this.counts.written += 1;
        this.registry.noteDurable(state.epoch, reserved);
      },
      (err: unknown) => {
        if (this.counts.failed++ === 0) this.log.warn(`${(err as Error).message}: a restarted collector sends every agent a snapshot (retried)`);
      },
    );
  }

  private encode(final = false): RegistryStateFile {
    return encodeRegistryState(this.registry, final, (w) => {
      let t = this.texts.get(w);
      if (t === undefined) this.texts.set(w, (t = workloadsJson(w)));
      return t;
    });
  }
}
