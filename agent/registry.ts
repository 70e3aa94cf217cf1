/** What the agent knows of workloads: its own (by netns cookie) and the whole mesh (by IP). */
import type { RegistryWorkload } from '../common/mesh-protocol';
import type { WorkloadIndex } from './proxy/inputs';
import type { Workload } from './workloads';

export class LocalWorkloads implements WorkloadIndex {
  private readonly cookies = new Map<bigint, Workload>();
  private readonly ips = new Map<string, Workload>();

  set(entries: Array<{ workload: Workload; netnsCookie: bigint }>): void {
    this.cookies.clear();
    this.ips.clear();
    for (const { workload, netnsCookie } of entries) {
      this.cookies.set(netnsCookie, workload);
      this.ips.set(workload.ip, workload);
    }
  }

  byNetnsCookie(cookie: bigint): Workload | undefined {
    return this.cookies.get(cookie);
  }

  byIp(ip: string): Workload | undefined {
    return this.ips.get(ip);
  }

  all(): Workload[] {
    return [...this.cookies.values()];
  }

  get size(): number {
    return this.cookies.size;
  }
}

/** A workload anywhere in the mesh, as the collector's registry describes it. */
export type MeshWorkload = RegistryWorkload;

/** The collector's latest registry snapshot, indexed by IP. */
export class MeshRegistry {
  private ips = new Map<string, MeshWorkload>();
  version = 0;

  update(version: number, workloads: MeshWorkload[]): void {
    const next = new Map<string, MeshWorkload>();
    for (const w of workloads) next.set(w.ip, w);
    this.ips = next;
    this.version = version;
  }

  byIp(ip: string): MeshWorkload | undefined {
    return this.ips.get(ip);
  }

  get size(): number {
    return this.ips.size;
  }
}
