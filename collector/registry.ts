/**
 * The collector's workload registry: which node runs which workload at which IP, and which nodes
 * are online. Pure data, no sockets: sessions call it, and it calls `onChange` once per change
 * with that change as a delta (only the entries that changed) so the server can push it to every
 * agent. A node that disconnects keeps its workloads (established traffic keeps working) and is
 * marked offline. `epoch` is random per registry, or the one a restored registry.json kept
 * (./registry-state.ts): versions of another epoch mean nothing here.
 *
 * Services (Kubernetes', and those nodes declare) are resolved again after every change
 * (./services.ts); each service that differs from the one last pushed travels in the change's
 * delta as `set-service` (whole, with its endpoints), each one gone as `remove-service`: one
 * EndpointSlice change costs that service's bytes, not the mesh's services.
 */
import { randomBytes } from 'node:crypto';
import { spiffeId } from '../common/identity';
import { newer, nextStamp, type RegistrationShare, type Stamp } from './nodes/registration-share';
import type { HeldNode } from './nodes/replica-liveness';
import { copyWorkload, registryWorkload, workloadChanges, type DiskRegistry, type RestoredRegistry } from './registry-entries';
import { RegistryLog, type RegistryLogLimits } from './registry-log';
import { SharedFrame } from './shared-frame';
import { byIp, resolveServices, type ResolvedServices } from './services';
import {
  encodeMessage,
  type RegistryChange,
  type RegistryDelta,
  type RegistryNode,
  type RegistryPosition,
  type RegistryService,
  type RegistrySnapshot,
  type RegistryWorkload,
  type ServiceRegistration,
  type WorkloadRegistration,
} from '../common/mesh-protocol';

interface NodeState {
  nodeAddress: string;
  online: boolean;
  lastSeen: Date;
  workloads: RegistryWorkload[];
  /** Services the node declares (its workloads file). */
  services: ServiceRegistration[];
  /** The stamp of the session this state is from (nodes/registration-share.ts). */
  stamp: Stamp;
  /** From another collector replica's session (`applyShared`), not one of ours. */
  remote: boolean;
}

export interface RegisterResult {
  accepted: number;
  /** One line per refused workload: `<ns>/<name>: <why>`. */
  refused: string[];
}

export class WorkloadRegistry {
  private readonly nodes = new Map<string, NodeState>();
  private kubeServices: RegistryService[] = [];
  /** The services as resolved after the last change (and their refusals), and that list as pushed. */
  private resolution: ResolvedServices = { services: [], refused: new Map() };
  /** Each service as last pushed (JSON, by `namespace/name`), and the JSON of service objects seen (unchanged ones are the same objects). */
  private servicesText = new Map<string, string>();
  private readonly texts = new WeakMap<RegistryService, string>();
  private versionCounter = 0;
  /** This process's id among collector replicas (the `replica` of its registration stamps and Lease): random per process. */
  readonly replica = randomBytes(8).toString('hex');
  /** Versions are meaningful only with it: the replica id, or the one restored from the state dir (registry-state.ts). */
  private epochId = this.replica;
  /** The highest version the state file on disk reserves for this epoch (undefined: none written yet); see `noteDurable`. */
  private durableReserved: number | undefined;
  /** Nodes restored online from the state dir whose agents have not said hello since (`expireRestored`). */
  private readonly restoredWaiting = new Set<string>();
  private frozen = false;
  private readonly log: RegistryLog;
  /** The newest session stamp seen for each node, ours or another replica's. */
  private readonly stamps = new Map<string, Stamp>();
  /** Told which node's state our own sessions changed (what the replicas' share publishes). */
  private readonly localChanged = new Set<(node: string) => void>();
  /** The version last published to sessions (`publish`; undefined: never). */
  private published: number | undefined;
  /** The last snapshot encoded for agents, as bytes (one copy for every session). */
  private snapshotCache: { version: number; frame: SharedFrame } | undefined;
  private readonly snapshotReuseBytes: number;
  /** Which node holds each workload address (registrations are checked against it). */
  private readonly ipOwners = new Map<string, string>();
  /** The nodes that declare services (their workloads files'): a change resolves only theirs. */
  private readonly declaring = new Set<string>();
  /** Which nodes have each node address, in the nodes' order (undefined: to be made again). */
  private addressIndex: Map<string, string[]> | undefined;

  /** `onChange` gets each change and its encoded `registry-delta` frame (the same text for every agent). */
  constructor(
    readonly trustDomain: string,
    private readonly onChange: (delta: RegistryDelta, frame: string) => void = () => undefined,
    private readonly now: () => Date = () => new Date(),
    limits: RegistryLogLimits & { snapshotReuseBytes?: number } = {},
  ) {
    this.log = new RegistryLog(limits);
    this.snapshotReuseBytes = limits.snapshotReuseBytes ?? SNAPSHOT_REUSE_BYTES;
  }

  /**
   * Every frame that brings an agent whose registry is at `since` up to date (`nextFrame` until
   * it is current): the deltas it missed while the log reaches back that far, else a snapshot
   * (and the deltas after it, when a big snapshot is reused).
   */
  catchUp(since: RegistryPosition | undefined): string[] {
    const frames: string[] = [];
    for (let at = since, next = this.nextFrame(at); next; at = next.to, next = this.nextFrame(at)) frames.push(next.frame.toString());
    return frames;
  }

  /**
   * The next frame for an agent whose registry is at `at` once it has every frame handed to it so
   * far (undefined: it has none): the delta that follows `at`, or a snapshot when the log does not
   * reach back that far (or `at` is from another epoch); undefined when `at` is current. A snapshot
   * of `snapshotReuseBytes` (SNAPSHOT_REUSE_BYTES) or more is encoded again only once the deltas since the last one add
   * up to a quarter of it: until then agents get that one and the deltas after it (a mass connect
   * would otherwise encode a snapshot per session, each one version newer). `upTo` is as far as a
   * delta may reach (by default the version last `publish`ed, or the newest before any
   * publication); an agent at or past it gets nothing, a snapshot is always of the newest state.
   */
  nextFrame(at: RegistryPosition | undefined, upTo = this.published ?? this.versionCounter): { frame: SharedFrame; to: RegistryPosition } | undefined {
    if (this.frozen) return undefined;
    const current = this.versionCounter;
    if (at?.epoch === this.epoch && at.version <= current && at.version >= Math.min(upTo, current)) return undefined;
    const step = at?.epoch === this.epoch ? this.log.next(at.version, current, Math.min(upTo, current)) : undefined;
    if (step) return { frame: step.frame, to: { epoch: this.epoch, version: step.toVersion } };
    const cached = this.snapshotCache;
    const reuse =
      cached !== undefined &&
      (cached.version === current ||
        (cached.frame.length >= this.snapshotReuseBytes && (this.log.bytesFrom(cached.version, current) ?? Infinity) * 4 <= cached.frame.length));
    const snapshot = reuse ? cached : (this.snapshotCache = { version: current, frame: new SharedFrame(Buffer.from(encodeMessage({ type: 'registry', ...this.snapshot() }))) });
    return { frame: snapshot.frame, to: { epoch: this.epoch, version: snapshot.version } };
  }

  get version(): number {
    return this.versionCounter;
  }

  /**
   * The server publishes the registry to its sessions at the current version (server.ts): the
   * deltas since the last publication become one frame shared by every session standing there
   * (registry-log.ts `seal`); sessions take their agents only as far as it (`nextFrame`).
   */
  publish(): void {
    this.log.seal(this.versionCounter);
    this.published = this.versionCounter;
  }

  /** Frames still go to agents (false once the collector stops: `freeze`). */
  get sending(): boolean {
    return !this.frozen;
  }

  get epoch(): string {
    return this.epochId;
  }

  /**
   * Start from the state a previous collector process wrote (registry-state.ts), before any
   * session: the same epoch, its nodes and workloads, the versions it reserved skipped (an agent
   * may hold any of them) with one empty delta from the state's own version past them — an agent
   * at that version gets that delta, any other one a snapshot. Returns the nodes restored online.
   */
  restore(state: RestoredRegistry): string[] {
    if (this.versionCounter !== 0 || this.nodes.size > 0) throw new Error('restore into a registry in use');
    this.epochId = state.epoch;
    this.kubeServices = [...state.kubeServices];
    for (const n of state.nodes) {
      const workloads = n.workloads.map((w) => registryWorkload(this.trustDomain, n.node, n.nodeAddress, w)).sort(byIp);
      this.nodes.set(n.node, { nodeAddress: n.nodeAddress, online: n.online, lastSeen: new Date(n.lastSeen), workloads, services: n.services, stamp: n.stamp, remote: false });
      this.addressIndex = undefined;
      if (n.services.length > 0) this.declaring.add(n.node);
      this.stamps.set(n.node, n.stamp);
      this.setOwner(n.node, [], workloads);
      if (n.online) this.restoredWaiting.add(n.node);
    }
    this.resolution = this.resolve();
    this.servicesText = new Map(this.resolution.services.map((s) => [`${s.namespace}/${s.name}`, this.textOf(s)]));
    // a process that stopped cleanly sent nothing past its state; one that crashed may have sent any reserved version
    this.versionCounter = state.reserved > state.version ? state.reserved + 1 : state.version;
    // the old file restores to this same state at this version: safe to send until a new file reserves more
    this.durableReserved = this.versionCounter;
    if (this.versionCounter !== state.version) this.log.append({ epoch: this.epochId, fromVersion: state.version, toVersion: this.versionCounter, changes: [] });
    return [...this.restoredWaiting];
  }

  /** The collector stops: no more frames to agents (what they hold is what the state dir keeps: registry-state.ts). */
  freeze(): void {
    this.frozen = true;
  }

  /** Restored nodes whose agents did not come back go offline (one delta), as if their sessions had closed now. */
  expireRestored(): string[] {
    const gone = [...this.restoredWaiting].filter((node) => this.nodes.get(node)?.online === true && this.nodes.get(node)?.remote === false);
    this.restoredWaiting.clear();
    const changes: RegistryChange[] = [];
    for (const node of gone) {
      const state = this.nodes.get(node)!;
      state.online = false;
      state.lastSeen = this.now();
      changes.push({ op: 'set-node', node: this.nodeEntry(node, state) });
    }
    if (changes.length > 0) this.changed(changes);
    return gone;
  }

  /** What the state dir keeps (registry-state.ts): this replica's nodes as they are at `version`. */
  diskState(): DiskRegistry {
    const nodes: DiskRegistry['nodes'] = [];
    for (const [node, s] of this.nodes) {
      if (!s.remote) nodes.push({ node, nodeAddress: s.nodeAddress, online: s.online, lastSeen: s.lastSeen, stamp: s.stamp, workloads: s.workloads, services: s.services });
    }
    return { epoch: this.epochId, version: this.versionCounter, kubeServices: this.kubeServices, nodes };
  }

  /**
   * A state file of `epoch` reserving versions up to `reserved` is on disk: a collector restarted
   * from it skips to `reserved + 1`, so this one must not send a version past it (`changed`
   * starts a new epoch instead).
   */
  noteDurable(epoch: string, reserved: number): void {
    if (epoch === this.epochId) this.durableReserved = Math.max(this.durableReserved ?? 0, reserved);
  }

  position(): RegistryPosition {
    return { epoch: this.epoch, version: this.versionCounter };
  }

  /** A node's session said hello: online, at `nodeAddress`; the node's state is this replica's from now on. */
  nodeOnline(node: string, nodeAddress: string): void {
    const state = this.nodes.get(node);
    const changes: RegistryChange[] = [];
    const stamp = nextStamp(this.now().getTime(), this.stamps.get(node), this.replica);
    this.stamps.set(node, stamp);
    this.restoredWaiting.delete(node);
    if (state) {
      Object.assign(state, { stamp, remote: false, online: true });
      state.lastSeen = this.now();
      if (state.nodeAddress !== nodeAddress) {
        state.nodeAddress = nodeAddress;
        this.addressIndex = undefined;
        state.workloads = state.workloads.map((w) => ({ ...w, nodeAddress }));
        for (const w of state.workloads) changes.push({ op: 'set-workload', workload: copyWorkload(w) });
      }
    } else {
      this.nodes.set(node, { nodeAddress, online: true, lastSeen: this.now(), workloads: [], services: [], stamp, remote: false });
      this.addressIndex = undefined;
    }
    // always a change, even for a node restored online: an agent's session is ready at its first registry frame after hello
    changes.unshift({ op: 'set-node', node: this.nodeEntry(node, this.nodes.get(node)!) });
    this.changed(changes);
    this.local(node);
  }

  /**
   * Why `node` may not be reached at `nodeAddress`, or undefined: it is the address of another
   * node's workload (peers would send that node's pod the tunnel traffic for this node's workloads).
   */
  addressRefusal(node: string, nodeAddress: string): string | undefined {
    const other = this.ipOwners.get(nodeAddress);
    return other !== undefined && other !== node ? `node address ${nodeAddress} is the address of a workload of node ${other}` : undefined;
  }

  /** A node's session ended: its workloads stay, the node is offline. */
  nodeOffline(node: string): void {
    const state = this.nodes.get(node);
    if (!state || !state.online || state.remote) return; // remote: the node's newer session is at another replica
    state.online = false;
    state.lastSeen = this.now();
    this.changed([{ op: 'set-node', node: this.nodeEntry(node, state) }]);
    this.local(node);
  }

  /** A revoked node: gone with its workloads, so no peer routes to it or accepts its identities. */
  removeNode(node: string): void {
    const state = this.nodes.get(node);
    if (!state) return;
    this.nodes.delete(node);
    this.addressIndex = undefined;
    this.declaring.delete(node);
    this.setOwner(node, state.workloads, []);
    this.changed([{ op: 'remove-node', node }, ...state.workloads.map((w): RegistryChange => ({ op: 'remove-workload', ip: w.ip }))]);
    if (!state.remote) this.local(node);
  }

  /**
   * Replace `node`'s workloads with `workloads`, except those refused: what `admit` refuses (the
   * node's binding: nodes/workload-admission.ts), an identity outside this trust domain, an IP
   * another node has registered or uses as its node address, an IP or name given twice. Refused
   * ones are left out; the node's previous entry for a refused IP is not kept either. `services`
   * (a workloads file's declared services) replace the node's declared services.
   */
  register(
    node: string,
    workloads: WorkloadRegistration[],
    services: ServiceRegistration[] = [],
    admit: (w: WorkloadRegistration) => string | undefined = () => undefined,
  ): RegisterResult {
    const state = this.nodes.get(node);
    if (!state) throw new Error(`register before hello for node ${node}`);
    // A session that registers is the node's live one (an agent holds one session at a time): even if
    // another replica's share looked newer (its clock ahead), the node's state is ours again.
    const extra = state.remote ? this.reclaim(node, state) : [];
    const { changed, ...result } = this.decide(node, state, workloads, services, admit, extra);
    if (changed) this.local(node);
    return result;
  }

  /**
   * Another replica's share of `node` (nodes/registration-share.ts), when it is newer than what
   * this registry holds: its workloads decided by `admit` and the same checks as a registration.
   * `tookOver`: the node was one of ours (our session is stale: the agent is at that replica now).
   */
  applyShared(node: string, share: RegistrationShare, admit: (w: WorkloadRegistration) => string | undefined): RegisterResult & { applied: boolean; tookOver: boolean; changed: boolean } {
    if (newer(share.stamp, this.stamps.get(node))) this.stamps.set(node, share.stamp);
    const state = this.nodes.get(node);
    if (state && !newer(share.stamp, state.stamp)) return { accepted: 0, refused: [], applied: false, tookOver: false, changed: false };
    const lastSeen = new Date(share.lastSeen);
    const next: NodeState = state ?? { nodeAddress: share.nodeAddress, online: share.online, lastSeen, workloads: [], services: [], stamp: share.stamp, remote: true };
    const nodeChanged = !state || state.nodeAddress !== share.nodeAddress || state.online !== share.online;
    const tookOver = state !== undefined && !state.remote;
    Object.assign(next, { nodeAddress: share.nodeAddress, online: share.online, lastSeen, stamp: share.stamp, remote: true });
    this.nodes.set(node, next);
    this.addressIndex = undefined;
    const { changed, ...result } = this.decide(node, next, share.workloads, share.services, admit, nodeChanged ? [{ op: 'set-node', node: this.nodeEntry(node, next) }] : []);
    return { ...result, applied: true, tookOver, changed };
  }

  /** `node`'s state as our session made it, to share with the other replicas (undefined: none, or it is another replica's). */
  shared(node: string): RegistrationShare | undefined {
    const s = this.nodes.get(node);
    if (!s || s.remote) return undefined;
    const workloads = s.workloads.map((w): WorkloadRegistration => ({ name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount, ip: w.ip, labels: { ...w.labels } }));
    return { stamp: s.stamp, nodeAddress: s.nodeAddress, online: s.online, lastSeen: s.lastSeen.toISOString(), workloads, services: structuredClone(s.services) };
  }

  hasNode(node: string): boolean {
    return this.nodes.has(node);
  }

  /** The nodes whose state is this replica's (its sessions'). */
  localNodes(): string[] {
    return [...this.nodes].filter(([, s]) => !s.remote).map(([n]) => n);
  }

  /** Call `listener` with each node whose state this replica's sessions change. */
  onLocalChange(listener: (node: string) => void): () => void {
    this.localChanged.add(listener);
    return () => this.localChanged.delete(listener);
  }

  /** The nodes another replica's session holds: each one's stamp and whether it shows online. */
  heldNodes(): HeldNode[] {
    return [...this.nodes].filter(([, s]) => s.remote).map(([node, s]) => ({ node, stamp: s.stamp, online: s.online }));
  }

  /**
   * The replica holding `node` at `stamp` is dead (nodes/replica-liveness.ts): the node goes
   * offline here as if its session had closed (workloads kept, its services' endpoints not ready),
   * until a share newer than `stamp` arrives. False when the node is not at that share or is offline.
   */
  markOffline(node: string, stamp: Stamp): boolean {
    const state = this.nodes.get(node);
    if (!state || !state.remote || !state.online || newer(state.stamp, stamp) || newer(stamp, state.stamp)) return false;
    state.online = false;
    this.changed([{ op: 'set-node', node: this.nodeEntry(node, state) }]);
    return true;
  }

  /** Publish our nodes again with newer stamps: after our Lease lapsed the others may hold them offline, and only a newer write brings them back. */
  republishLocal(): void {
    for (const node of this.localNodes()) this.local(node);
  }

  /** Our live session's node again: a new stamp, online; the node's entry when that changed it. */
  private reclaim(node: string, state: NodeState): RegistryChange[] {
    state.stamp = nextStamp(this.now().getTime(), this.stamps.get(node), this.replica);
    this.stamps.set(node, state.stamp);
    state.remote = false;
    if (state.online) return [];
    state.online = true;
    return [{ op: 'set-node', node: this.nodeEntry(node, state) }];
  }

  private local(node: string): void {
    const state = this.nodes.get(node);
    if (state) state.stamp = { ...state.stamp, seq: state.stamp.seq + 1 };
    for (const l of this.localChanged) l(node);
  }

  /** Decide `workloads` for `node` (see `register`) and push what changed, with `extra` changes first. */
  private decide(
    node: string,
    state: NodeState,
    workloads: WorkloadRegistration[],
    services: ServiceRegistration[],
    admit: (w: WorkloadRegistration) => string | undefined,
    extra: RegistryChange[],
  ): RegisterResult & { changed: boolean } {
    const addresses = this.nodeAddresses();
    const ownerOf = (ip: string): string | undefined => {
      const other = this.ipOwners.get(ip);
      if (other !== undefined && other !== node) return `node ${other}`;
      const byAddress = addresses.get(ip)?.filter((n) => n !== node).pop();
      return byAddress === undefined ? undefined : `node ${byAddress}, as its node address`;
    };
    const refused: string[] = [];
    const accepted: RegistryWorkload[] = [];
    const seenIps = new Set<string>();
    const seenNames = new Set<string>();
    for (const w of workloads) {
      const label = `${w.namespace}/${w.name}`;
      const identity = spiffeId(this.trustDomain, w.namespace, w.serviceAccount);
      const owner = ownerOf(w.ip);
      const why =
        admit(w) ??
        (w.identity !== undefined && w.identity !== identity ? `identity ${w.identity} is not ${identity} (trust domain ${this.trustDomain})` : undefined) ??
        (owner !== undefined ? `ip ${w.ip} is already registered by ${owner}` : undefined) ??
        (seenIps.has(w.ip) ? `ip ${w.ip} is given twice` : undefined) ??
        (seenNames.has(label) ? 'workload is given twice' : undefined);
      if (why) {
        refused.push(`${label}: ${why}`);
        continue;
      }
      seenIps.add(w.ip);
      seenNames.add(label);
      accepted.push(registryWorkload(this.trustDomain, node, state.nodeAddress, w));
    }
    accepted.sort(byIp);
    const changes = [...extra, ...workloadChanges(state.workloads, accepted)];
    const declared = services.map((d) => ({ ...d, vips: [...d.vips], ports: d.ports.map((p) => ({ ...p })), selector: { ...d.selector } }));
    const changed = changes.length > 0 || JSON.stringify(declared) !== JSON.stringify(state.services);
    if (changed) {
      this.setOwner(node, state.workloads, accepted);
      state.workloads = accepted;
      state.services = declared;
      if (declared.length > 0) this.declaring.add(node);
      else this.declaring.delete(node);
      this.changed(changes);
    }
    refused.push(...(this.resolution.refused.get(node) ?? []));
    return { accepted: accepted.length, refused, changed };
  }

  /** Which nodes have each node address (made again after a node comes, goes or moves: `addressesChanged`). */
  private nodeAddresses(): Map<string, string[]> {
    if (this.addressIndex) return this.addressIndex;
    const index = new Map<string, string[]>();
    for (const [node, s] of this.nodes) (index.get(s.nodeAddress) ?? index.set(s.nodeAddress, []).get(s.nodeAddress)!).push(node);
    return (this.addressIndex = index);
  }

  /** `node`'s workloads go from `before` to `after`: the index of who holds each address follows. */
  private setOwner(node: string, before: readonly RegistryWorkload[], after: readonly RegistryWorkload[]): void {
    for (const w of before) if (this.ipOwners.get(w.ip) === node) this.ipOwners.delete(w.ip);
    for (const w of after) this.ipOwners.set(w.ip, node);
  }

  /** The Services the Kubernetes API has (with their endpoints), replacing the previous list. */
  setKubernetesServices(services: RegistryService[]): void {
    if (services.length === this.kubeServices.length && services.every((s, i) => this.textOf(s) === this.textOf(this.kubeServices[i]!))) return;
    this.kubeServices = [...services];
    this.changed([]);
  }

  /** Is `identity` the identity of a workload `node` has registered right now? */
  hasIdentity(node: string, identity: string): boolean {
    return this.nodes.get(node)?.workloads.some((w) => w.identity === identity) ?? false;
  }

  snapshot(): RegistrySnapshot {
    const workloads: RegistryWorkload[] = [];
    const nodes: RegistryNode[] = [];
    for (const [node, s] of [...this.nodes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      nodes.push(this.nodeEntry(node, s));
      workloads.push(...s.workloads.map(copyWorkload));
    }
    return { version: this.versionCounter, epoch: this.epoch, workloads: workloads.sort(byIp), nodes, services: structuredClone(this.resolution.services) };
  }

  private resolve(): ResolvedServices {
    const declared = new Map<string, readonly ServiceRegistration[]>();
    for (const node of this.declaring) declared.set(node, this.nodes.get(node)!.services);
    // Declared services find their endpoints among every workload: gathered only when some node declares one.
    const workloads = declared.size > 0 ? [...this.nodes.values()].flatMap((s) => s.workloads) : [];
    return resolveServices(declared, this.kubeServices, workloads, (node) => this.nodes.get(node)?.online === true);
  }

  private nodeEntry(node: string, s: NodeState): RegistryNode {
    return { node, nodeAddress: s.nodeAddress, online: s.online, lastSeen: (s.online ? this.now() : s.lastSeen).toISOString() };
  }

  private textOf(service: RegistryService): string {
    let text = this.texts.get(service);
    if (text === undefined) this.texts.set(service, (text = JSON.stringify(service)));
    return text;
  }

  /**
   * The state changed by `changes`: resolve the services again (`remove-service` for each gone,
   * `set-service` for each new or changed) and push one delta — none when nothing an agent holds
   * changed (e.g. a Kubernetes Service that clashes, or a node declaring a service another
   * already declared).
   */
  private changed(changes: RegistryChange[]): void {
    this.resolution = this.resolve();
    const texts = new Map<string, string>();
    const set: RegistryChange[] = [];
    for (const service of this.resolution.services) {
      const id = `${service.namespace}/${service.name}`;
      const text = this.textOf(service);
      texts.set(id, text);
      if (this.servicesText.get(id) !== text) set.push({ op: 'set-service', service });
    }
    for (const [id] of this.servicesText) {
      if (texts.has(id)) continue;
      const [namespace, name] = id.split('/') as [string, string];
      changes.push({ op: 'remove-service', namespace, name });
    }
    changes.push(...set);
    this.servicesText = texts;
    if (changes.length === 0) return;
    if (!this.frozen && this.durableReserved !== undefined && this.versionCounter + 1 > this.durableReserved) this.newEpoch();
    const fromVersion = this.versionCounter;
    this.versionCounter += 1;
    const delta: RegistryDelta = { epoch: this.epoch, fromVersion, toVersion: this.versionCounter, changes };
    this.onChange(delta, this.log.append(delta));
  }

  /**
   * The state file on disk has not caught up with the versions sent (its writes stalled for a
   * million changes): a restart from it could give a version agents hold a different meaning, so
   * the registry moves to a new epoch (every agent gets one snapshot) instead.
   */
  private newEpoch(): void {
    this.epochId = randomBytes(8).toString('hex');
    this.durableReserved = undefined;
    this.log.clear();
    this.snapshotCache = undefined;
  }
}

/** Below this size a snapshot is always encoded at the current version (see `nextFrame`). */
export const SNAPSHOT_REUSE_BYTES = 256 * 1024;
