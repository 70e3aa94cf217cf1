/** The mesh's workloads (every node's), as the collector's latest registry snapshot lists them, by IP. */
import type { RegistryWorkload } from '../../common/mesh-protocol';

/** A workload anywhere in the mesh, as the collector's registry describes it. */
export type MeshWorkload = RegistryWorkload;

/** The collector's latest registry snapshot, indexed by IP. */
export class MeshRegistry {
  private ips = new Map<string, MeshWorkload>();
  private nodes: ReadonlySet<string> = new Set();
  version = 0;

  update(version: number, workloads: MeshWorkload[]): void {
    const next = new Map<string, MeshWorkload>();
    for (const w of workloads) next.set(w.ip, w);
    this.ips = next;
    this.nodes = new Set(workloads.map((w) => w.nodeAddress));
    this.version = version;
  }

  /** The node addresses of every node with a workload (the same set until the next update). */
  nodeAddresses(): ReadonlySet<string> {
    return this.nodes;
  }

  byIp(ip: string): MeshWorkload | undefined {
    return this.ips.get(ip);
  }

  all(): IterableIterator<MeshWorkload> {
    return this.ips.values();
  }

  get size(): number {
    return this.ips.size;
  }
}
