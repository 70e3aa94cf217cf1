/**
 * The DestinationRules in force, by the Service their host names. Which one a client gets is
 * Istio's choice: one visible to the client's namespace (exportTo), the client's own namespace's
 * first, then the Service's namespace's, then any other's (the root namespace's, say); among
 * several of one namespace, the first by name. The port's settings (portLevelSettings) override
 * the rule's. Built once per set, immutable; lookups are cached.
 */
import type { CompiledDestinationRule, TrafficPolicy } from './destination-rule';

const MAX_CACHED = 10_000;

export interface DestinationPolicy {
  /** `namespace/name` of the DestinationRule */
  readonly rule: string;
  readonly policy: TrafficPolicy;
}

export class DestinationTable {
  static readonly EMPTY = new DestinationTable([]);
  private readonly byHost = new Map<string, CompiledDestinationRule[]>();
  private readonly cache = new Map<string, DestinationPolicy | null>();

  constructor(readonly rules: readonly CompiledDestinationRule[]) {
    for (const r of [...rules].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
      const key = `${r.host.namespace}/${r.host.name}`;
      const list = this.byHost.get(key) ?? [];
      list.push(r);
      this.byHost.set(key, list);
    }
  }

  get size(): number {
    return this.rules.length;
  }

  /** The policy for clients in `clientNamespace` of Service `namespace/name` port `port`, or undefined. */
  lookup(namespace: string, name: string, port: number, clientNamespace: string): DestinationPolicy | undefined {
    const all = this.byHost.get(`${namespace}/${name}`);
    if (all === undefined) return undefined;
    const key = `${namespace}/${name}:${port}>${clientNamespace}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const visible = all.filter((r) => r.exportTo === undefined || r.exportTo.has(clientNamespace));
    const chosen = visible.find((r) => r.namespace === clientNamespace) ?? visible.find((r) => r.namespace === namespace) ?? visible[0];
    const result = chosen === undefined ? null : { rule: chosen.id, policy: chosen.ports.get(port) ?? chosen.policy };
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(key, result);
    return result ?? undefined;
  }
}
