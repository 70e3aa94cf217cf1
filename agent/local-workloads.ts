/** This node's workloads, by the netns cookie the kernel reports and by IP (replaced whole on every change). */
import type { WorkloadIndex } from './proxy/inputs';
import type { Workload } from './workloads';

export class LocalWorkloads implements WorkloadIndex {
  private readonly cookies = new Map<bigint, Workload>();
  private readonly ips = new Map<string, Workload>();
  /** Counts every set(): what was derived from the workloads is stale when it moves. */
  version = 0;

  set(entries: Array<{ workload: Workload; netnsCookie: bigint }>): void {
    this.cookies.clear();
    this.ips.clear();
    this.version++;
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
