/**
 * An HTTPRoute or GRPCRoute applied through the collector must name Services the mesh knows: each backendRef,
 * each RequestMirror's backendRef and each parent is checked against the registry's services (Kubernetes Services, workloads files'
 * `services:`), one line per unknown one, and nothing is applied if any is unknown. Pure.
 */
import type { RegistryService } from '../../common/mesh-protocol';
import { PolicyInvalidError } from '../../common/policy';
import type { CompiledDestinationRule, CompiledRoute } from '../../common/routes';

export function routeServiceProblems(routes: readonly CompiledRoute[], services: readonly RegistryService[]): string[] {
  const known = new Map(services.map((s) => [`${s.namespace}/${s.name}`, s]));
  const problems: string[] = [];
  for (const route of routes) {
    const where = `${route.source}:${route.line}: ${route.kind} ${route.id}`;
    route.parents.forEach((p, i) => {
      if (!known.has(`${p.namespace}/${p.name}`)) problems.push(`${where}: spec.parentRefs[${i}]: unknown Service ${p.namespace}/${p.name} (palisade status lists the services)`);
    });
    const check = (b: { namespace: string; name: string; port: number }, path: string): void => {
      const s = known.get(`${b.namespace}/${b.name}`);
      if (!s) problems.push(`${where}: ${path}: unknown Service ${b.namespace}/${b.name} (palisade status lists the services)`);
      else if (!s.ports.some((p) => p.port === b.port)) problems.push(`${where}: ${path}: Service ${b.namespace}/${b.name} has no port ${b.port} (it has ${s.ports.map((p) => p.port).join(', ') || 'none'})`);
    };
    for (const rule of route.rules) {
      const at = `spec.rules[${rule.index}]`;
      rule.filters?.mirrors.forEach((m, i) => check(m.backend, `${at}.filters: RequestMirror ${i + 1}: backendRef`));
      rule.backends.forEach((b, i) => {
        check(b, `${at}.backendRefs[${i}]`);
        b.filters?.mirrors.forEach((m, j) => check(m.backend, `${at}.backendRefs[${i}].filters: RequestMirror ${j + 1}: backendRef`));
      });
    }
  }
  return problems;
}

/** Each rule's FaultInjection must be in the set that will be in force (`faults`: their `namespace/name`). */
export function routeFaultProblems(routes: readonly CompiledRoute[], faults: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const route of routes) {
    for (const rule of route.rules) {
      if (rule.fault !== undefined && !faults.has(rule.fault)) {
        problems.push(`${route.source}:${route.line}: ${route.kind} ${route.id}: spec.rules[${rule.index}].filters[${extensionRefAt(route, rule.index)}].extensionRef: no FaultInjection ${rule.fault} (apply it first, or with the route)`);
      }
    }
  }
  return problems;
}

/** Where in its rule's filters the ExtensionRef is (the route's manifest: the filters as written). */
function extensionRefAt(route: CompiledRoute, rule: number): number {
  const spec = route.manifest.spec as { rules?: { filters?: { type?: unknown }[] }[] } | undefined;
  return Math.max(0, spec?.rules?.[rule]?.filters?.findIndex((f) => f?.type === 'ExtensionRef') ?? 0);
}

/** A DestinationRule's host must name a Service the mesh knows, and its portLevelSettings ports of it. */
export function destinationRuleProblems(rules: readonly CompiledDestinationRule[], services: readonly RegistryService[]): string[] {
  const known = new Map(services.map((s) => [`${s.namespace}/${s.name}`, s]));
  const problems: string[] = [];
  for (const dr of rules) {
    const where = `${dr.source}:${dr.line}: DestinationRule ${dr.id}: spec.host`;
    const s = known.get(`${dr.host.namespace}/${dr.host.name}`);
    if (!s) problems.push(`${where}: unknown Service ${dr.host.namespace}/${dr.host.name} (palisade status lists the services)`);
    else for (const port of dr.ports.keys()) if (!s.ports.some((p) => p.port === port)) problems.push(`${where}: Service ${dr.host.namespace}/${dr.host.name} has no port ${port} for portLevelSettings (it has ${s.ports.map((p) => p.port).join(', ') || 'none'})`);
  }
  return problems;
}

/**
 * Throws PolicyInvalidError (every problem) when a route names a Service the mesh does not know,
 * or a FaultInjection not in `faults`, or a DestinationRule's host is not a known Service.
 */
export function checkBackends(routes: readonly CompiledRoute[], services: readonly RegistryService[], faults: ReadonlySet<string> = new Set(), destinationRules: readonly CompiledDestinationRule[] = []): void {
  const problems = [...routeServiceProblems(routes, services), ...routeFaultProblems(routes, faults), ...destinationRuleProblems(destinationRules, services)];
  if (problems.length > 0) throw new PolicyInvalidError(problems);
}
