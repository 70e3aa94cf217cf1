/**
 * This node's workloads, by the netns cookie the kernel reports and by IP. Replaced whole (`set`)
 * or changed one at a time (`put`, `delete`) by the node's enrollment (workload-sources/).
 */
import type { WorkloadIndex } from './proxy/inputs';
import type { Workload } from './workloads';

export class LocalWorkloads implements WorkloadIndex {
  private readonly cookies = new Map<bigint, Workload>();
  private readonly ips = new Map<string, Workload>();
  /** Counts every change (set, put, delete): what was derived from the workloads is stale when it moves. */
  version = 0;

  set(entries: Array<{ workload: Workload; netnsCookie: bigint }>): void {
    this.cookies.clear();
    this.ips.clear();
    this.version++;
    for (const { workload, netnsCookie } of entries) this.put(netnsCookie, workload);
  }

  /** Add or replace the workload in the namespace `netnsCookie`. */
  put(netnsCookie: bigint, workload: Workload): void {
    this.version++;
    const old = this.cookies.get(netnsCookie);
    if (old && old.ip !== workload.ip && this.ips.get(old.ip) === old) this.ips.delete(old.ip);
    this.version++;
    this.cookies.set(netnsCookie, workload);
    this.ips.set(workload.ip, workload);
  }

  /** Forget the workload in the namespace `netnsCookie`; false when there was none. */
  delete(netnsCookie: bigint): boolean {
    const old = this.cookies.get(netnsCookie);
    if (!old) return false;
    this.version++;
    this.cookies.delete(netnsCookie);
    this.version++;
    if (this.ips.get(old.ip) === old) this.ips.delete(old.ip);
    return true;
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
