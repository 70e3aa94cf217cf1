/** Where an outbound connection goes: a pure decision over plain data (table-tested). */
import type { MeshWorkload } from '../mesh/mesh-registry';
import type { Workload } from '../workloads';

export type Route =
  | { kind: 'local'; workload: Workload }
  | { kind: 'hbone'; workload: MeshWorkload }
  | { kind: 'passthrough' };

export interface RouteTables {
  node: string;
  local: { byIp(ip: string): Workload | undefined };
  mesh: { byIp(ip: string): MeshWorkload | undefined } | undefined;
}

export function route(dstIp: string, t: RouteTables): Route {
  const local = t.local.byIp(dstIp);
  if (local) return { kind: 'local', workload: local };
  const remote = t.mesh?.byIp(dstIp);
  if (remote && remote.node !== t.node) return { kind: 'hbone', workload: remote };
  return { kind: 'passthrough' };
}
