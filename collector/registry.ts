/**
 * The collector's workload registry: which node runs which workload at which IP, and which nodes
 * are online. Pure data, no sockets: sessions call it, and it calls `onChange` once per change so
 * the server can push a snapshot to every agent. A node that disconnects keeps its workloads
 * (established traffic keeps working) and is marked offline.
 */
import { spiffeId } from '../common/identity';
import type { RegistryNode, RegistryService, RegistrySnapshot, RegistryWorkload, ServiceRegistration, WorkloadRegistration } from '../common/mesh-protocol';
import { byIp, resolveServices } from './services';

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
  private versionCounter = 0;

  constructor(
    readonly trustDomain: string,
    private readonly onChange: (snapshot: RegistrySnapshot) => void = () => undefined,
    private readonly now: () => Date = () => new Date(),
  ) {}

  get version(): number {
    return this.versionCounter;
  }

  /** A node's session said hello: online, at `nodeAddress`. */
  nodeOnline(node: string, nodeAddress: string): void {
    const state = this.nodes.get(node);
    if (state) {
      state.online = true;
      state.lastSeen = this.now();
      if (state.nodeAddress !== nodeAddress) {
        state.nodeAddress = nodeAddress;
        state.workloads = state.workloads.map((w) => ({ ...w, nodeAddress }));
      }
    } else {
      this.nodes.set(node, { nodeAddress, online: true, lastSeen: this.now(), workloads: [], services: [] });
    }
    this.changed();
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
    this.changed();
  }

  /** A revoked node: gone with its workloads, so no peer routes to it or accepts its identities. */
  removeNode(node: string): void {
    if (this.nodes.delete(node)) this.changed();
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
    const declared = services.map((d) => ({ ...d, vips: [...d.vips], ports: d.ports.map((p) => ({ ...p })), selector: { ...d.selector } }));
    if (JSON.stringify(accepted) !== JSON.stringify(state.workloads) || JSON.stringify(declared) !== JSON.stringify(state.services)) {
      state.workloads = accepted;
      state.services = declared;
      this.changed();
    }
    refused.push(...(this.resolved().refused.get(node) ?? []));
    return { accepted: accepted.length, refused };
  }

  /** The Services the Kubernetes API has (with their endpoints), replacing the previous list. */
  setKubernetesServices(services: RegistryService[]): void {
    if (JSON.stringify(services) === JSON.stringify(this.kubeServices)) return;
    this.kubeServices = services;
    this.changed();
  }

  /** Is `identity` the identity of a workload `node` has registered right now? */
  hasIdentity(node: string, identity: string): boolean {
    return this.nodes.get(node)?.workloads.some((w) => w.identity === identity) ?? false;
  }

  snapshot(): RegistrySnapshot {
    const workloads: RegistryWorkload[] = [];
    const nodes: RegistryNode[] = [];
    for (const [node, s] of [...this.nodes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      nodes.push({ node, nodeAddress: s.nodeAddress, online: s.online, lastSeen: (s.online ? this.now() : s.lastSeen).toISOString() });
      workloads.push(...s.workloads.map((w) => ({ ...w, labels: { ...w.labels } })));
    }
    return { version: this.versionCounter, workloads: workloads.sort(byIp), nodes, services: this.resolved().services };
  }

  private resolved(): ReturnType<typeof resolveServices> {
    const declared = new Map([...this.nodes].map(([node, s]) => [node, s.services]));
    const workloads = [...this.nodes.values()].flatMap((s) => s.workloads);
    return resolveServices(declared, this.kubeServices, workloads, (node) => this.nodes.get(node)?.online === true);
  }

  private changed(): void {
    this.versionCounter += 1;
    this.onChange(this.snapshot());
  }
}

