/**
 * The routes in force, for `palisade status` (pure, table-tested): each HTTPRoute, GRPCRoute and DestinationRule with
 * its parent Services, rule count and the store version that last changed it, and how many
 * connected agents enforce it. Routes ride the policies frame, so an agent enforces a route when the
 * policy version it reported is at least the route's version and it did not reject that version.
 */
import type { NodeStatus, RouteStatus } from '../../common/control-api';
import { describeTrafficPolicy, type CompiledDestinationRule, type CompiledRoute } from '../../common/routes';
import { policyKey, type StoredPolicy } from './repository';

export function routeStatus(routes: readonly (CompiledRoute | CompiledDestinationRule)[], stored: readonly StoredPolicy[], nodes: readonly NodeStatus[]): RouteStatus[] {
  const versions = new Map(stored.map((p) => [policyKey(p), p.version]));
  const connected = nodes.filter((n) => n.connected);
  return routes
    .map((r) => {
      const version = versions.get(policyKey(r)) ?? 0;
      return {
        kind: r.kind,
        namespace: r.namespace,
        name: r.name,
        ...(r.kind === 'DestinationRule'
          ? { parents: [`${r.host.namespace}/${r.host.name}`], rules: r.ports.size, summary: describeTrafficPolicy(r.policy) }
          : { parents: r.parents.map((p) => `${p.namespace}/${p.name}${p.port === undefined ? '' : `:${p.port}`}`), rules: r.rules.length }),
        version,
        enforcedBy: connected.filter((n) => enforces(n, version)).length,
        agents: connected.length,
      };
    })
    .sort((a, b) => (policyKey(a) < policyKey(b) ? -1 : 1));
}

/** The agent's reported version includes a route changed at `version`. */
export function enforces(n: NodeStatus, version: number): boolean {
  return n.policyVersion !== undefined && n.policyVersion >= version && !(n.policyProblems && n.policyProblems.length > 0);
}
