import { strict as assert } from 'node:assert';
import { destinationRuleProblems, routeFaultProblems, routeServiceProblems } from '../../../../collector/policies/route-backends';
import type { RegistryService } from '../../../../common/mesh-protocol';
import { compilePolicyFiles } from '../../../../common/policy';

const svc = (name: string, port = 80): RegistryService => ({ namespace: 'shop', name, vips: ['10.96.0.1'], ports: [{ name: '', port }], endpoints: [] });

const route = (backends: string): string => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: web}]
  rules:
  - backendRefs: ${backends}
`;

describe('collector: HTTPRoute backends must be Services the mesh knows', () => {
  const CASES: [string, string, RegistryService[], string[]][] = [
    ['all known', '[{name: web-v1, port: 80}, {name: web-v2, port: 80}]', [svc('web'), svc('web-v1'), svc('web-v2')], []],
    ['an unknown backend', '[{name: web-v1, port: 80}, {name: web-v3, port: 80}]', [svc('web'), svc('web-v1')], ['r.yaml:1: HTTPRoute shop/canary: spec.rules[0].backendRefs[1]: unknown Service shop/web-v3 (palisade status lists the services)']],
    ['a port the backend does not have', '[{name: web-v1, port: 8080}]', [svc('web'), svc('web-v1')], ['r.yaml:1: HTTPRoute shop/canary: spec.rules[0].backendRefs[0]: Service shop/web-v1 has no port 8080 (it has 80)']],
    ['an unknown parent', '[{name: web-v1, port: 80}]', [svc('web-v1')], ['r.yaml:1: HTTPRoute shop/canary: spec.parentRefs[0]: unknown Service shop/web (palisade status lists the services)']],
    ['an unknown mirror Service (the rule\'s, a backendRef\'s)', "[{name: web-v1, port: 80, filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow-b, port: 80}}}]}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]", [svc('web'), svc('web-v1')], [
      'r.yaml:1: HTTPRoute shop/canary: spec.rules[0].filters: RequestMirror 1: backendRef: unknown Service shop/shadow (palisade status lists the services)',
      'r.yaml:1: HTTPRoute shop/canary: spec.rules[0].backendRefs[0].filters: RequestMirror 1: backendRef: unknown Service shop/shadow-b (palisade status lists the services)',
    ]],
    ['a mirror port the Service does not have', '[{name: web-v1, port: 80}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: web-v1, port: 81}}}]', [svc('web'), svc('web-v1')], ['r.yaml:1: HTTPRoute shop/canary: spec.rules[0].filters: RequestMirror 1: backendRef: Service shop/web-v1 has no port 81 (it has 80)']],
  ];
  for (const [what, backends, services, expected] of CASES) {
    it(what, () => {
      const set = compilePolicyFiles([{ source: 'r.yaml', text: route(backends) }]);
      assert.deepEqual(routeServiceProblems(set.routes ?? [], services), expected);
    });
  }

  it('a rule\'s FaultInjection must be in force after the change', () => {
    const text = route('[{name: web-v1, port: 80}]\n    filters: [{type: ExtensionRef, extensionRef: {group: palisade.dev, kind: FaultInjection, name: chaos}}]');
    const routes = compilePolicyFiles([{ source: 'r.yaml', text }]).routes ?? [];
    assert.deepEqual(routeFaultProblems(routes, new Set(['shop/chaos'])), []);
    assert.deepEqual(routeFaultProblems(routes, new Set()), ['r.yaml:1: HTTPRoute shop/canary: spec.rules[0].filters[0].extensionRef: no FaultInjection shop/chaos (apply it first, or with the route)']);
    const second = compilePolicyFiles([{ source: 'r.yaml', text: text.replace('filters: [', 'filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x, value: y}]}}, ') }]).routes ?? [];
    assert.match(routeFaultProblems(second, new Set())[0]!, /spec\.rules\[0\]\.filters\[1\]\.extensionRef: no FaultInjection/, 'the ExtensionRef where it is among the filters');
  });
});

describe('collector: a DestinationRule\'s host must be a Service the mesh knows', () => {
  const dr = (host: string, ports = ''): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: ${host}
  trafficPolicy:
    loadBalancer: {simple: RANDOM}${ports}
`;
  const CASES: [string, string, string, string[]][] = [
    ['a short name', 'web', '', []],
    ['an FQDN', 'web.shop.svc.cluster.local', '', []],
    ['an unknown Service', 'web.other', '', ['r.yaml:1: DestinationRule shop/web: spec.host: unknown Service other/web (palisade status lists the services)']],
    ['a port the Service does not have', 'web', '\n    portLevelSettings: [{port: {number: 81}}]', ['r.yaml:1: DestinationRule shop/web: spec.host: Service shop/web has no port 81 for portLevelSettings (it has 80)']],
  ];
  for (const [what, host, ports, expected] of CASES) {
    it(what, () => {
      const set = compilePolicyFiles([{ source: 'r.yaml', text: dr(host, ports) }]);
      assert.deepEqual(destinationRuleProblems(set.destinationRules ?? [], [svc('web')]), expected);
    });
  }
});
