/**
 * The mesh's workloads (every node's) and services, as the collector's latest registry snapshot
 * lists them: workloads by IP, services by name and by virtual IP and port (with their ready
 * endpoints resolved to addresses and target ports, once per snapshot).
 *
 * Services, for other parts of the agent (the outbound proxy, the DNS proxy):
 *   - `services()`: every service, as the registry gives it;
 *   - `service(namespace, name)`: one service (its virtual IPs and ports), e.g. to answer
 *     `<name>.<namespace>.svc.<domain>`;
 *   - `byVip(ip, port)`: where a connection to a virtual IP and port may go (ready endpoints only).
 */
import type { RegistryService, RegistryWorkload } from '../../common/mesh-protocol';

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

/** The collector's latest registry snapshot, indexed. */
export class MeshRegistry {
  private ips = new Map<string, MeshWorkload>();
  private names = new Map<string, MeshService>();
  private vips = new Map<string, ServiceTarget>();
  private list: readonly MeshService[] = [];
  private nodes: ReadonlySet<string> = new Set();
  version = 0;

  update(version: number, workloads: MeshWorkload[], services: MeshService[] = []): void {
    const next = new Map<string, MeshWorkload>();
    for (const w of workloads) next.set(w.ip, w);
    const names = new Map<string, MeshService>();
    const vips = new Map<string, ServiceTarget>();
    for (const s of services) {
      names.set(`${s.namespace}/${s.name}`, s);
      s.ports.forEach((p, i) => {
        const endpoints = s.endpoints.filter((e) => e.ready && e.targetPorts.length === s.ports.length).map((e) => ({ ip: e.ip, port: e.targetPorts[i]! }));
        const target: ServiceTarget = { service: { namespace: s.namespace, name: s.name }, port: p.name, endpoints };
        for (const vip of s.vips) vips.set(`${vip}:${p.port}`, target);
      });
    }
    this.ips = next;
    this.names = names;
    this.vips = vips;
    this.list = services;
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

  byVip(ip: string, port: number): ServiceTarget | undefined {
    return this.vips.get(`${ip}:${port}`);
  }

  service(namespace: string, name: string): MeshService | undefined {
    return this.names.get(`${namespace}/${name}`);
  }

  services(): readonly MeshService[] {
    return this.list;
  }

  all(): IterableIterator<MeshWorkload> {
    return this.ips.values();
  }

  get size(): number {
    return this.ips.size;
  }
}
