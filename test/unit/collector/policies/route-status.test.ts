import { strict as assert } from 'node:assert';
import type { NodeStatus } from '../../../../common/control-api';
import { compilePolicyFiles } from '../../../../common/policy';
import { routeStatus } from '../../../../collector/policies/route-status';
import type { StoredPolicy } from '../../../../collector/policies/repository';

const ROUTE = 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: canary, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, name: web, port: 80}, {kind: Service, name: api}]\n  rules:\n  - backendRefs: [{name: web-v1, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /v2}}]\n    backendRefs: [{name: web-v2, port: 80}]\n';
const routes = compilePolicyFiles([{ source: 'r.yaml', text: ROUTE }]).routes!;
const stored = [{ kind: 'HTTPRoute', namespace: 'shop', name: 'canary', origin: 'api', manifest: {}, id: 1, version: 5 }] as StoredPolicy[];
const node = (n: Partial<NodeStatus>): NodeStatus => ({ node: 'n', connected: true, workloads: 0, ...n });

describe('collector: routes in palisade status', () => {
  const CASES: Array<[string, NodeStatus[], number, number]> = [
    ['no agents', [], 0, 0],
    ['an agent at the route\'s version', [node({ policyVersion: 5 })], 1, 1],
    ['an agent past it', [node({ policyVersion: 7 })], 1, 1],
    ['an agent behind it', [node({ policyVersion: 4 })], 0, 1],
    ['an agent that has not reported', [node({})], 0, 1],
    ['an agent that rejected its version', [node({ policyVersion: 7, policyProblems: ['x'] })], 0, 1],
    ['an offline agent is not counted', [node({ policyVersion: 7, connected: false }), node({ policyVersion: 5 })], 1, 1],
  ];
  for (const [what, nodes, enforcedBy, agents] of CASES) {
    it(what, () => {
      assert.deepEqual(routeStatus(routes, stored, nodes), [
        { kind: 'HTTPRoute', namespace: 'shop', name: 'canary', parents: ['shop/web:80', 'shop/api'], rules: 2, version: 5, enforcedBy, agents },
      ]);
    });
  }

  const DR = (name: string, host: string, lb: string): string => `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ${name}, namespace: shop}\nspec:\n  host: ${host}\n  trafficPolicy:\n    loadBalancer: ${lb}\n`;
  const WARNINGS: Array<[string, string, string | undefined]> = [
    ['a header hash on a Service with a route: none', DR('w', 'web', '{consistentHash: {httpHeaderName: x-user}}'), undefined],
    ['a header hash on a Service without a route: balanced at L4, round robin', DR('d', 'db', '{consistentHash: {httpHeaderName: x-user}}'), 'hash of header x-user needs an HTTPRoute or GRPCRoute on shop/db: without one its connections are balanced at L4, round robin (useSourceIp hashes at L4)'],
    ['a source-IP hash without a route: none (applies at L4)', DR('s', 'db', '{consistentHash: {useSourceIp: true}}'), undefined],
    ['LEAST_REQUEST without a route: none (open connections at L4)', DR('l', 'db', '{simple: LEAST_REQUEST}'), undefined],
  ];
  for (const [what, text, warning] of WARNINGS) {
    it(`DestinationRule warning: ${what}`, () => {
      const rules = compilePolicyFiles([{ source: 'r.yaml', text: `${ROUTE}---\n${text}` }]);
      const dr = routeStatus([...rules.routes!, ...rules.destinationRules!], stored, []).find((r) => r.kind === 'DestinationRule')!;
      assert.equal(dr.warning, warning);
    });
  }
});
