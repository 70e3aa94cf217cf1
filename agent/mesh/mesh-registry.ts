/**
 * The mesh's workloads (every node's) and nodes, as the collector's registry describes them: a
 * snapshot replaces the whole state, a delta applies its changes — but only to the state it was
 * computed from (same epoch, `fromVersion` = our version); otherwise nothing changes and the
 * caller asks the collector for what it missed.
 */
import type { RegistryChange, RegistryDelta, RegistryNode, RegistryPosition, RegistrySnapshot, RegistryWorkload } from '../../common/mesh-protocol';

/** A workload anywhere in the mesh, as the collector's registry describes it. */
export type MeshWorkload = RegistryWorkload;

export class MeshRegistry {
  private ips = new Map<string, MeshWorkload>();
  private nodes = new Map<string, RegistryNode>();
  /** Workloads per node address, so `nodeAddresses` is kept without a scan. */
  private addressCounts = new Map<string, number>();
  private addresses: ReadonlySet<string> = new Set();
  version = 0;
  epoch = '';

  /** Where this registry stands; undefined before the first snapshot. */
  position(): RegistryPosition | undefined {
    return this.epoch === '' ? undefined : { epoch: this.epoch, version: this.version };
  }

  /** Replace everything with a snapshot. */
  replace(snapshot: RegistrySnapshot): void {
    this.ips = new Map(snapshot.workloads.map((w) => [w.ip, w]));
    this.nodes = new Map(snapshot.nodes.map((n) => [n.node, n]));
    this.addressCounts = new Map();
    for (const w of snapshot.workloads) this.addressCounts.set(w.nodeAddress, (this.addressCounts.get(w.nodeAddress) ?? 0) + 1);
    this.addresses = new Set(this.addressCounts.keys());
    this.version = snapshot.version;
    this.epoch = snapshot.epoch;
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

  all(): IterableIterator<MeshWorkload> {
    return this.ips.values();
  }

  allNodes(): IterableIterator<RegistryNode> {
    return this.nodes.values();
  }

  get size(): number {
    return this.ips.size;
  }

  /** The state as a snapshot (sorted as the collector sorts it: workloads by IP, nodes by name). */
  snapshot(): RegistrySnapshot {
    const workloads = [...this.ips.values()].sort((a, b) => ipNumber(a.ip) - ipNumber(b.ip));
    const nodes = [...this.nodes.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    return { version: this.version, epoch: this.epoch, workloads, nodes };
  }

  /** One change; true when the set of node addresses may have changed. */
  private change(c: RegistryChange): boolean {
    switch (c.op) {
      case 'set-workload': {
        const gone = this.removeWorkload(c.workload.ip);
        this.ips.set(c.workload.ip, c.workload);
        return this.count(c.workload.nodeAddress, 1) || gone;
      }
      case 'remove-workload':
        return this.removeWorkload(c.ip);
      case 'set-node':
        this.nodes.set(c.node.node, c.node);
        return false;
      case 'remove-node':
        this.nodes.delete(c.node);
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
