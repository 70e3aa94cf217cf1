/**
 * Where an outbound connection goes: a pure decision over plain data (table-tested). A service's
 * virtual IP and port is first resolved to one of its ready endpoints (the picker balances); the
 * destination, original or endpoint, is then a pod of this node, a pod of another node (HBONE), or
 * outside the mesh.
 */
import type { MeshWorkload, ServiceTarget } from '../mesh/mesh-registry';
import type { Workload } from '../workloads';

export interface Destination {
  ip: string;
  port: number;
}

export interface ServiceRef {
  namespace: string;
  name: string;
}

/** `dst` is where to connect: the original destination, or the endpoint chosen for a service. */
export type Route =
  | { kind: 'local'; workload: Workload; dst: Destination; service?: ServiceRef }
  | { kind: 'hbone'; workload: MeshWorkload; dst: Destination; service?: ServiceRef }
  | { kind: 'passthrough'; dst: Destination; service?: ServiceRef }
  /** A service with no ready endpoint: nowhere to go. */
  | { kind: 'no-endpoint'; dst: Destination; service: ServiceRef };

export interface RouteTables {
  node: string;
  local: { byIp(ip: string): Workload | undefined };
  mesh: { byIp(ip: string): MeshWorkload | undefined } | undefined;
  services?: { byVip(ip: string, port: number): ServiceTarget | undefined };
  /** Which ready endpoint gets this connection (default: the first). */
  pick?: (target: ServiceTarget) => Destination;
}

export function route(dst: Destination, t: RouteTables): Route {
  const target = t.services?.byVip(dst.ip, dst.port);
  if (!target) return direct(dst, t);
  if (target.endpoints.length === 0) return { kind: 'no-endpoint', dst, service: target.service };
  const endpoint = t.pick ? t.pick(target) : target.endpoints[0]!;
  return { ...direct({ ip: endpoint.ip, port: endpoint.port }, t), service: target.service };
}

function direct(dst: Destination, t: RouteTables): Route {
  const local = t.local.byIp(dst.ip);
  if (local) return { kind: 'local', workload: local, dst };
  const remote = t.mesh?.byIp(dst.ip);
  if (remote && remote.node !== t.node) return { kind: 'hbone', workload: remote, dst };
  return { kind: 'passthrough', dst };
}
