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
  return routeStatusOf(routeViews(routes), stored, nodes);
}

/** What `palisade status` says of each route but who enforces it (kept, as plain data, between changes: set-digest.ts). */
export function routeViews(routes: readonly (CompiledRoute | CompiledDestinationRule)[]): Array<Omit<RouteStatus, 'version' | 'enforcedBy' | 'agents'>> {
  const routed = new Set(routes.flatMap((r) => (r.kind === 'DestinationRule' ? [] : r.parents.map((p) => `${p.namespace}/${p.name}`))));
  return routes.map((r) => ({
    kind: r.kind,
    namespace: r.namespace,
    name: r.name,
    ...(r.kind === 'DestinationRule'
      ? { parents: [`${r.host.namespace}/${r.host.name}`], rules: r.ports.size, summary: describeTrafficPolicy(r.policy), ...l4Warning(r, routed) }
      : { parents: r.parents.map((p) => `${p.namespace}/${p.name}${p.port === undefined ? '' : `:${p.port}`}`), rules: r.rules.length }),
  }));
}

/** `views` (routeViews) with the store version that last changed each, and how many connected agents enforce it. */
export function routeStatusOf(views: ReadonlyArray<Omit<RouteStatus, 'version' | 'enforcedBy' | 'agents'>>, stored: readonly StoredPolicy[], nodes: readonly NodeStatus[]): RouteStatus[] {
  const versions = new Map(stored.map((p) => [policyKey(p), p.version]));
  const connected = nodes.filter((n) => n.connected);
  return views
    .map((r) => {
      const version = versions.get(policyKey(r)) ?? 0;
      return { ...r, version, enforcedBy: connected.filter((n) => enforces(n, version)).length, agents: connected.length };
    })
    .sort((a, b) => (policyKey(a) < policyKey(b) ? -1 : 1));
}

/** The agent's reported version includes a route changed at `version`. */
export function enforces(n: NodeStatus, version: number): boolean {
  return n.policyVersion !== undefined && n.policyVersion >= version && !(n.policyProblems && n.policyProblems.length > 0);
}

/**
 * A DestinationRule hashing a request part (header, cookie, query parameter) for a Service no
 * route is attached to: its connections are balanced at L4, where no request is seen — round robin
 * (agent/traffic/l4-balancer.ts). Said in `palisade status`, not refused: a route may come later.
 */
export function l4Warning(r: CompiledDestinationRule, routed: ReadonlySet<string>): { warning?: string } {
  if (routed.has(`${r.host.namespace}/${r.host.name}`)) return {};
  const lbs = [r.policy.loadBalancer, ...[...r.ports.values()].map((p) => p.loadBalancer)];
  const lb = lbs.find((x) => x?.kind === 'HASH' && x.by !== 'source-ip');
  if (lb === undefined || lb.kind !== 'HASH') return {};
  return { warning: `hash of ${lb.by} ${lb.name} needs an HTTPRoute or GRPCRoute on ${r.host.namespace}/${r.host.name}: without one its connections are balanced at L4, round robin (useSourceIp hashes at L4)` };
}
