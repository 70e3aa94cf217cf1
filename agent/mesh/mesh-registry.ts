/**
 * The mesh's workloads (every node's), nodes and services, as the collector's registry describes
 * them: a snapshot replaces the whole state, a delta applies its changes — but only to the state
 * it was computed from (same epoch, `fromVersion` = our version); otherwise nothing changes and
 * the caller asks the collector for what it missed. Workloads by IP; services by name and by
 * virtual IP and port (with their ready endpoints resolved to addresses and target ports, again
 * for each service a delta's `set-service` replaces; `remove-service` drops one).
 *
 * Services, for other parts of the agent (the outbound proxy, the DNS proxy):
 *   - `services()`: every service, as the registry gives it;
 *   - `service(namespace, name)`: one service (its virtual IPs and ports), e.g. to answer
 *     `<name>.<namespace>.svc.<domain>`;
 *   - `byVip(ip, port)`: where a connection to a virtual IP and port may go (ready endpoints only).
 */
import type { RegistryChange, RegistryDelta, RegistryNode, RegistryPosition, RegistryService, RegistrySnapshot, RegistryWorkload } from '../../common/mesh-protocol';

/** A workload anywhere in the mesh, as the collector's registry describes it. */
export type MeshWorkload = RegistryWorkload;

/** A service of the mesh, as the collector's registry describes it. */
export type MeshService = RegistryService;

/** Where a connection to a service's virtual IP and port may go. */
export interface ServiceTarget {
  service: { namespace: string; name: string };
  /** The service port's name ('' when unnamed). */
  port: string;
  /** Ready endpoints, each at the target port of this service port. */
  endpoints: ReadonlyArray<{ ip: string; port: number }>;
}

export class MeshRegistry {
  private ips = new Map<string, MeshWorkload>();
  private nodes = new Map<string, RegistryNode>();
  /** Workloads per node address, so `nodeAddresses` is kept without a scan. */
  private addressCounts = new Map<string, number>();
  private addresses: ReadonlySet<string> = new Set();
  private names = new Map<string, MeshService>();
  private vips = new Map<string, ServiceTarget>();
  /** `services()`, sorted by namespace/name; rebuilt on demand after a change. */
  private list: readonly MeshService[] | undefined = [];
  version = 0;
  epoch = '';
  /** Other nodes' workloads (by IP) and nodes kept across a failover (replaceCarrying). */
  private carriedIps = new Set<string>();
  private carriedNodes = new Set<string>();

  /** Where this registry stands; undefined before the first snapshot. */
  position(): RegistryPosition | undefined {
    return this.epoch === '' ? undefined : { epoch: this.epoch, version: this.version };
  }

  /** Replace everything with a snapshot. */
  replace(snapshot: RegistrySnapshot): void {
    this.carriedIps = new Set();
    this.carriedNodes = new Set();
    this.ips = new Map(snapshot.workloads.map((w) => [w.ip, w]));
    this.nodes = new Map(snapshot.nodes.map((n) => [n.node, n]));
    this.addressCounts = new Map();
    for (const w of snapshot.workloads) this.addressCounts.set(w.nodeAddress, (this.addressCounts.get(w.nodeAddress) ?? 0) + 1);
    this.addresses = new Set(this.addressCounts.keys());
    this.setServices(snapshot.services ?? []);
    this.version = snapshot.version;
    this.epoch = snapshot.epoch;
  }

  /**
   * Replace with the snapshot of another collector replica, after a failover. The new replica
   * knows only the nodes whose agents have reached it so far. The workloads and nodes the snapshot
   * does not name are kept ("carried"), so connections to and from them keep working while their
   * agents move over too. A change the new collector sends for a carried IP or node ends its carry;
   * `dropCarried` removes what is still carried. Returns how many workloads are carried.
   */
  replaceCarrying(snapshot: RegistrySnapshot): number {
    const ips = this.ips;
    const nodes = this.nodes;
    this.replace(snapshot);
    for (const [name, n] of nodes) {
      if (this.nodes.has(name)) continue;
      this.nodes.set(name, n);
      this.carriedNodes.add(name);
    }
    for (const [ip, w] of ips) {
      if (this.ips.has(ip) || !this.carriedNodes.has(w.node)) continue;
      this.ips.set(ip, w);
      this.count(w.nodeAddress, 1);
      this.carriedIps.add(ip);
    }
    this.addresses = new Set(this.addressCounts.keys());
    return this.carriedIps.size;
  }

  /** Remove what is still carried from before a failover (replaceCarrying); returns how many workloads went. */
  dropCarried(): number {
    const n = this.carriedIps.size;
    for (const ip of this.carriedIps) this.removeWorkload(ip);
    for (const node of this.carriedNodes) this.nodes.delete(node);
    this.carriedIps = new Set();
    this.carriedNodes = new Set();
    this.addresses = new Set(this.addressCounts.keys());
    return n;
  }

  /** Apply `delta` if it follows this state exactly; false (nothing changed) if it does not. */
  apply(delta: RegistryDelta): boolean {
    if (delta.epoch !== this.epoch || delta.fromVersion !== this.version || delta.toVersion <= delta.fromVersion) return false;
    let addressesChanged = false;
    for (const change of delta.changes) addressesChanged = this.change(change) || addressesChanged;
    if (addressesChanged) this.addresses = new Set(this.addressCounts.keys());
    this.version = delta.toVersion;
    return true;
  }

  /** The node addresses of every node with a workload (the same set until it changes). */
  nodeAddresses(): ReadonlySet<string> {
    return this.addresses;
  }

  byIp(ip: string): MeshWorkload | undefined {
    return this.ips.get(ip);
  }

  byVip(ip: string, port: number): ServiceTarget | undefined {
    return this.vips.get(`${ip}:${port}`);
  }

  service(namespace: string, name: string): MeshService | undefined {
    return this.names.get(`${namespace}/${name}`);
  }

  services(): readonly MeshService[] {
    this.list ??= [...this.names.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);
    return this.list;
  }

  all(): IterableIterator<MeshWorkload> {
    return this.ips.values();
  }

  allNodes(): IterableIterator<RegistryNode> {
    return this.nodes.values();
  }

  get size(): number {
    return this.ips.size;
  }

  /** The state as a snapshot (sorted as the collector sorts it: workloads by IP, nodes by name, services by namespace/name). */
  snapshot(): RegistrySnapshot {
    const workloads = [...this.ips.values()].sort((a, b) => ipNumber(a.ip) - ipNumber(b.ip));
    const nodes = [...this.nodes.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    return { version: this.version, epoch: this.epoch, workloads, nodes, services: [...this.services()] };
  }

  /** Replace every service, and index them by name and by virtual IP and port. */
  private setServices(services: readonly MeshService[]): void {
    this.names = new Map();
    this.vips = new Map();
    for (const s of services) this.setService(s);
  }

  /** Add or replace one service (its old virtual IPs and ports go first). */
  private setService(s: MeshService): void {
    this.removeService(s.namespace, s.name);
    this.names.set(`${s.namespace}/${s.name}`, s);
    s.ports.forEach((p, i) => {
      const endpoints = s.endpoints.filter((e) => e.ready && e.targetPorts.length === s.ports.length).map((e) => ({ ip: e.ip, port: e.targetPorts[i]! }));
      const target: ServiceTarget = { service: { namespace: s.namespace, name: s.name }, port: p.name, endpoints };
      for (const vip of s.vips) this.vips.set(`${vip}:${p.port}`, target);
    });
    this.list = undefined;
  }

  /** Drop one service; a virtual IP and port another service holds now (a delta may hand one over) stays that service's. */
  private removeService(namespace: string, name: string): void {
    const old = this.names.get(`${namespace}/${name}`);
    if (!old) return;
    this.names.delete(`${namespace}/${name}`);
    for (const vip of old.vips) {
      for (const p of old.ports) {
        const key = `${vip}:${p.port}`;
        const target = this.vips.get(key);
        if (target && target.service.namespace === namespace && target.service.name === name) this.vips.delete(key);
      }
    }
    this.list = undefined;
  }

  /** One change; true when the set of node addresses may have changed. */
  private change(c: RegistryChange): boolean {
    switch (c.op) {
      case 'set-workload': {
        this.carriedIps.delete(c.workload.ip);
        const gone = this.removeWorkload(c.workload.ip);
        this.ips.set(c.workload.ip, c.workload);
        return this.count(c.workload.nodeAddress, 1) || gone;
      }
      case 'remove-workload':
        this.carriedIps.delete(c.ip);
        return this.removeWorkload(c.ip);
      case 'set-node':
        this.carriedNodes.delete(c.node.node);
        this.nodes.set(c.node.node, c.node);
        return false;
      case 'remove-node':
        this.carriedNodes.delete(c.node);
        this.nodes.delete(c.node);
        return false;
      case 'set-service':
        this.setService(c.service);
        return false;
      case 'remove-service':
        this.removeService(c.namespace, c.name);
        return false;
    }
  }

  private removeWorkload(ip: string): boolean {
    const old = this.ips.get(ip);
    if (!old) return false;
    this.ips.delete(ip);
    return this.count(old.nodeAddress, -1);
  }

  /** Adjust a node address's workload count; true when it appeared or disappeared. */
  private count(address: string, by: 1 | -1): boolean {
    const n = (this.addressCounts.get(address) ?? 0) + by;
    if (n <= 0) this.addressCounts.delete(address);
    else this.addressCounts.set(address, n);
    return by === 1 ? n === 1 : n === 0;
  }
}

export function ipNumber(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}
