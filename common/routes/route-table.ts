/**
 * The routes in force, by the Service they attach to. GAMMA's rules: a route in the Service's own
 * namespace (producer route) applies to every client; a route in another namespace (consumer
 * route) applies only to clients of that namespace, and where one exists it replaces the producer
 * routes for them. A parentRef with a port attaches to that service port only. Built once per
 * route set, immutable; lookups are cached per (service, port, client namespace).
 */
import { catchAll, firstMatch, rankMatches, type RuleChoice } from './match';
import type { CompiledFaultInjection, CompiledRoute, RouteRequest } from './types';

/** The routes one client namespace has for one service port: none, or a matcher. */
export interface ServiceRoutes {
  /** `namespace/name` of every route in play, sorted */
  readonly routes: readonly string[];
  select(req: RouteRequest): RuleChoice | undefined;
  /** the rule every request matches (PathPrefix `/`, no other condition), if any: it routes connections that are not HTTP */
  readonly catchAll: RuleChoice | undefined;
}

const MAX_CACHED = 10_000;

export class RouteTable {
  static readonly EMPTY = new RouteTable([]);
  private readonly byService = new Map<string, CompiledRoute[]>();
  private readonly cache = new Map<string, ServiceRoutes | null>();

  private readonly faultsById: ReadonlyMap<string, CompiledFaultInjection>;

  constructor(
    readonly routes: readonly CompiledRoute[],
    faults: readonly CompiledFaultInjection[] = [],
  ) {
    this.faultsById = new Map(faults.map((f) => [f.id, f]));
    for (const route of routes) {
      for (const parent of new Set(route.parents.map((p) => `${p.namespace}/${p.name}`))) {
        const list = this.byService.get(parent) ?? [];
        list.push(route);
        this.byService.set(parent, list);
      }
    }
  }

  /** The FaultInjection `namespace/name`, if it is in force. */
  fault(id: string): CompiledFaultInjection | undefined {
    return this.faultsById.get(id);
  }

  get size(): number {
    return this.routes.length;
  }

  /** Some route attaches to the Service (any port, any client). */
  has(namespace: string, name: string): boolean {
    return this.byService.has(`${namespace}/${name}`);
  }

  /** The routes of service `namespace/name` port `port` for a client in `clientNamespace`, or undefined (plain TCP). */
  lookup(namespace: string, name: string, port: number, clientNamespace: string): ServiceRoutes | undefined {
    const all = this.byService.get(`${namespace}/${name}`);
    if (all === undefined) return undefined;
    const key = `${namespace}/${name}:${port}>${clientNamespace}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const attached = all.filter((r) => r.parents.some((p) => p.namespace === namespace && p.name === name && (p.port === undefined || p.port === port)));
    const consumer = attached.filter((r) => r.namespace !== namespace && r.namespace === clientNamespace);
    const inPlay = consumer.length > 0 ? consumer : attached.filter((r) => r.namespace === namespace);
    let result: ServiceRoutes | null = null;
    if (inPlay.length > 0) {
      const ranked = rankMatches(inPlay);
      result = { routes: inPlay.map((r) => r.id).sort(), select: (req) => firstMatch(ranked, req), catchAll: catchAll(ranked) };
    }
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(key, result);
    return result ?? undefined;
  }
}
