/**
 * The collector's workload registry: which node runs which workload at which IP, and which nodes
 * are online. Pure data, no sockets: sessions call it, and it calls `onChange` once per change
 * with that change as a delta (only the entries that changed) so the server can push it to every
 * agent. A node that disconnects keeps its workloads (established traffic keeps working) and is
 * marked offline. `epoch` is random per registry: versions of another collector process mean nothing here.
 *
 * Services (Kubernetes', and those nodes declare) are resolved again after every change
 * (./services.ts); each service that differs from the one last pushed travels in the change's
 * delta as `set-service` (whole, with its endpoints), each one gone as `remove-service`: one
 * EndpointSlice change costs that service's bytes, not the mesh's services.
 */
import { randomBytes } from 'node:crypto';
import { spiffeId } from '../common/identity';
import { RegistryLog, type RegistryLogLimits } from './registry-log';
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
  readonly epoch = randomBytes(8).toString('hex');
  private readonly log: RegistryLog;

  /** `onChange` gets each change and its encoded `registry-delta` frame (the same text for every agent). */
  constructor(
    readonly trustDomain: string,
    private readonly onChange: (delta: RegistryDelta, frame: string) => void = () => undefined,
    private readonly now: () => Date = () => new Date(),
    logLimits: RegistryLogLimits = {},
  ) {
    this.log = new RegistryLog(logLimits);
  }

  /**
   * The frames that bring an agent whose registry is at `since` up to date: the deltas it missed
   * while the log reaches back that far, else one `registry` snapshot.
   */
  catchUp(since: RegistryPosition | undefined): string[] {
    return this.log.since(since, this.position()) ?? [encodeMessage({ type: 'registry', ...this.snapshot() })];
  }

  get version(): number {
    return this.versionCounter;
  }

  position(): RegistryPosition {
    return { epoch: this.epoch, version: this.versionCounter };
  }

  /** A node's session said hello: online, at `nodeAddress`. */
  nodeOnline(node: string, nodeAddress: string): void {
    const state = this.nodes.get(node);
    const changes: RegistryChange[] = [];
    if (state) {
      state.online = true;
      state.lastSeen = this.now();
      if (state.nodeAddress !== nodeAddress) {
        state.nodeAddress = nodeAddress;
        state.workloads = state.workloads.map((w) => ({ ...w, nodeAddress }));
        for (const w of state.workloads) changes.push({ op: 'set-workload', workload: copyWorkload(w) });
      }
    } else {
      this.nodes.set(node, { nodeAddress, online: true, lastSeen: this.now(), workloads: [], services: [] });
    }
    changes.unshift({ op: 'set-node', node: this.nodeEntry(node, this.nodes.get(node)!) });
    this.changed(changes);
  }

  /**
   * Why `node` may not be reached at `nodeAddress`, or undefined: it is the address of another
   * node's workload (peers would send that node's pod the tunnel traffic for this node's workloads).
   */
  addressRefusal(node: string, nodeAddress: string): string | undefined {
    for (const [other, s] of this.nodes) {
      if (other !== node && s.workloads.some((w) => w.ip === nodeAddress)) return `node address ${nodeAddress} is the address of a workload of node ${other}`;
    }
    return undefined;
  }

  /** A node's session ended: its workloads stay, the node is offline. */
  nodeOffline(node: string): void {
    const state = this.nodes.get(node);
    if (!state || !state.online) return;
    state.online = false;
    state.lastSeen = this.now();
    this.changed([{ op: 'set-node', node: this.nodeEntry(node, state) }]);
  }

  /** A revoked node: gone with its workloads, so no peer routes to it or accepts its identities. */
  removeNode(node: string): void {
    const state = this.nodes.get(node);
    if (!state) return;
    this.nodes.delete(node);
    this.changed([{ op: 'remove-node', node }, ...state.workloads.map((w): RegistryChange => ({ op: 'remove-workload', ip: w.ip }))]);
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
    const owners = new Map<string, string>();
    for (const [other, s] of this.nodes) {
      if (other === node) continue;
      owners.set(s.nodeAddress, `node ${other}, as its node address`);
      for (const w of s.workloads) owners.set(w.ip, `node ${other}`);
    }
    const refused: string[] = [];
    const accepted: RegistryWorkload[] = [];
    const seenIps = new Set<string>();
    const seenNames = new Set<string>();
    for (const w of workloads) {
      const label = `${w.namespace}/${w.name}`;
      const identity = spiffeId(this.trustDomain, w.namespace, w.serviceAccount);
      const owner = owners.get(w.ip);
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
      accepted.push({
        node,
        nodeAddress: state.nodeAddress,
        name: w.name,
        namespace: w.namespace,
        serviceAccount: w.serviceAccount,
        identity,
        ip: w.ip,
        labels: { ...w.labels },
      });
    }
    accepted.sort(byIp);
    const changes = workloadChanges(state.workloads, accepted);
    const declared = services.map((d) => ({ ...d, vips: [...d.vips], ports: d.ports.map((p) => ({ ...p })), selector: { ...d.selector } }));
    if (changes.length > 0 || JSON.stringify(declared) !== JSON.stringify(state.services)) {
      state.workloads = accepted;
      state.services = declared;
      this.changed(changes);
    }
    refused.push(...(this.resolution.refused.get(node) ?? []));
    return { accepted: accepted.length, refused };
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
    for (const [node, s] of this.nodes) if (s.services.length > 0) declared.set(node, s.services);
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
    const fromVersion = this.versionCounter;
    this.versionCounter += 1;
    const delta: RegistryDelta = { epoch: this.epoch, fromVersion, toVersion: this.versionCounter, changes };
    this.onChange(delta, this.log.append(delta));
  }
}

function copyWorkload(w: RegistryWorkload): RegistryWorkload {
  return { ...w, labels: { ...w.labels } };
}

/** What turns one node's workload list `before` into `after`: removals, then additions and replacements (by IP). */
export function workloadChanges(before: readonly RegistryWorkload[], after: readonly RegistryWorkload[]): RegistryChange[] {
  const next = new Map(after.map((w) => [w.ip, w]));
  const prev = new Map(before.map((w) => [w.ip, w]));
  const changes: RegistryChange[] = [];
  for (const w of before) if (!next.has(w.ip)) changes.push({ op: 'remove-workload', ip: w.ip });
  for (const w of after) {
    const old = prev.get(w.ip);
    if (!old || JSON.stringify(old) !== JSON.stringify(w)) changes.push({ op: 'set-workload', workload: copyWorkload(w) });
  }
  return changes;
}

