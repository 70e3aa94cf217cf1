import { strict as assert } from 'node:assert';
import { checkBackends } from '../../../../collector/policies/route-backends';
import { compilePolicyFiles, parsePolicies, PolicyInvalidError } from '../../../../common/policy';
import { parseGrpcRouteSpec, RouteTable, type CompiledRoute, type RouteRequest } from '../../../../common/routes';

/** Lines 1-6; the spec's own lines start at 7. */
const HEAD = 'apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: greeter\n  namespace: shop\nspec:\n';

const CANARY = `${HEAD}  parentRefs:
  - {kind: Service, group: "", name: greeter, port: 50051}
  rules:
  - matches:
    - method: {service: helloworld.Greeter, method: SayHello}
      headers: [{name: X-User-Group, value: beta}]
    backendRefs: [{name: greeter-v2, port: 50051}]
  - matches:
    - method: {service: helloworld.Greeter}
    backendRefs: [{name: greeter-v1, port: 50051, weight: 90}, {name: greeter-v2, port: 50051, weight: 10}]
  - matches:
    - method: {method: Check}
    backendRefs: [{name: health, port: 50051}]
  - matches:
    - method: {type: RegularExpression, service: "admin\\\\..*"}
    backendRefs: [{name: admin, port: 50051}]
  - backendRefs: [{name: greeter-v1, port: 50051}]
`;

function compile(text: string): CompiledRoute {
  const set = compilePolicyFiles([{ source: 'r.yaml', text }]);
  assert.equal(set.routes?.length, 1);
  return set.routes![0]!;
}

const call = (path: string, headers: Record<string, string[]> = {}): RouteRequest => ({ method: 'POST', path, query: '', headers: { 'content-type': ['application/grpc'], ...headers } });

describe('GRPCRoute (common/routes)', () => {
  it('compiles a GRPCRoute attached to a Service into path matches, weights and header matches', () => {
    const r = compile(CANARY);
    assert.equal(r.kind, 'GRPCRoute');
    assert.equal(r.id, 'shop/greeter');
    assert.deepEqual(r.parents, [{ namespace: 'shop', name: 'greeter', port: 50051 }]);
    const paths = r.rules.map((x) => [x.matches[0]!.path.type, x.matches[0]!.path.value]);
    assert.deepEqual(paths, [
      ['Exact', '/helloworld.Greeter/SayHello'],
      ['PathPrefix', '/helloworld.Greeter'],
      ['RegularExpression', '/[^/]+/Check'],
      ['RegularExpression', '/(?:admin\\..*)/(?:[^/]+)'],
      ['PathPrefix', '/'],
    ]);
    assert.deepEqual(r.rules[1]!.backends.map((b) => [b.name, b.weight]), [['greeter-v1', 90], ['greeter-v2', 10]]);
    assert.equal(r.rules[0]!.matches[0]!.headers[0]!.name, 'x-user-group');
    // no timeouts or retries in a GRPCRoute: grpc-timeout bounds a call
    assert.ok(r.rules.every((x) => x.requestTimeoutMs === 0 && x.retry === undefined));
    const again = parsePolicies(JSON.stringify(r.manifest), 'm.json');
    assert.deepEqual(again.problems, []);
    assert.equal(again.policies[0]!.kind, 'GRPCRoute');
  });

  it('matches calls by service, method and headers, most specific first', () => {
    const table = new RouteTable([compile(CANARY)]);
    const routes = table.lookup('shop', 'greeter', 50051, 'shop')!;
    const rule = (path: string, headers?: Record<string, string[]>): number | undefined => routes.select(call(path, headers))?.rule.index;
    const cases: [string, Record<string, string[]> | undefined, number][] = [
      ['/helloworld.Greeter/SayHello', { 'x-user-group': ['beta'] }, 0],
      ['/helloworld.Greeter/SayHello', undefined, 1],
      ['/helloworld.Greeter/SayHelloStream', { 'x-user-group': ['beta'] }, 1],
      ['/grpc.health.v1.Health/Check', undefined, 2],
      ['/admin.Users/Delete', undefined, 3],
      ['/helloworld.GreeterX/SayHello', undefined, 4],
      ['/other.Svc/Call', undefined, 4],
    ];
    for (const [path, headers, want] of cases) assert.equal(rule(path, headers), want, `${path} ${JSON.stringify(headers)}`);
    assert.equal(table.lookup('shop', 'greeter', 8080, 'shop'), undefined, 'another port of the Service is plain TCP');
  });

  it('an HTTPRoute and a GRPCRoute on one Service share one table', () => {
    const http = compilePolicyFiles([{ source: 'h.yaml', text: `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, name: greeter}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /healthz}}]\n    backendRefs: [{name: health, port: 80}]\n` }]).routes![0]!;
    const table = new RouteTable([compile(CANARY), http]);
    const routes = table.lookup('shop', 'greeter', 50051, 'shop')!;
    assert.deepEqual(routes.routes, ['shop/greeter', 'shop/web']);
    assert.equal(routes.select(call('/healthz/live'))?.route.kind, 'HTTPRoute');
    assert.equal(routes.select(call('/helloworld.Greeter/SayHello'))?.route.kind, 'GRPCRoute');
  });

  it('refuses bad input with one line naming the field, nothing compiled', () => {
    const cases: [string, string, RegExp][] = [
      ['no method name', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - matches: [{method: {type: Exact}}]\n    backendRefs: [{name: g, port: 1}]\n', /spec\.rules\[0\]\.matches\[0\]\.method: needs service, method or both/],
      ['a bad service name', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - matches: [{method: {service: "a/b"}}]\n    backendRefs: [{name: g, port: 1}]\n', /method\.service: is not a gRPC service name/],
      ['a bad method name', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - matches: [{method: {service: a.B, method: "Say Hello"}}]\n    backendRefs: [{name: g, port: 1}]\n', /method\.method: is not a gRPC method name/],
      ['a costly regex', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - matches: [{method: {type: RegularExpression, method: "(a+)+"}}]\n    backendRefs: [{name: g, port: 1}]\n', /method: regular expression/],
      ['an unknown match type', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - matches: [{method: {type: Prefix, service: a.B}}]\n    backendRefs: [{name: g, port: 1}]\n', /method\.type: must be Exact or RegularExpression/],
      ['a path match (HTTPRoute only)', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - matches: [{path: {value: /x}}]\n    backendRefs: [{name: g, port: 1}]\n', /matches\[0\]\.path: unknown or unsupported field \(supported here: method, headers\)/],
      ['timeouts (not a GRPCRoute field)', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - backendRefs: [{name: g, port: 1}]\n    timeouts: {request: 1s}\n', /rules\[0\]\.timeouts: unknown or unsupported field/],
      ['sessionPersistence with a bad name', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - backendRefs: [{name: g, port: 1}]\n    sessionPersistence: {type: Header, sessionName: "a b"}\n', /sessionPersistence\.sessionName: must be a cookie or header name/],
      ['weights summing to 0', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - backendRefs: [{name: g, port: 1, weight: 0}]\n', /backendRefs: weights sum to 0/],
      ['a Gateway parent', '  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{name: g, port: 1}]\n', /only a Service parent is supported/],
      ['a URLRewrite (HTTPRoute only)', '  parentRefs: [{kind: Service, name: g}]\n  rules:\n  - backendRefs: [{name: g, port: 1}]\n    filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]\n', /filters\[0\]\.type: URLRewrite is not supported in a GRPCRoute/],
    ];
    for (const [what, spec, want] of cases) {
      const r = parsePolicies(HEAD + spec, 'bad.yaml');
      assert.equal(r.policies.length, 0, what);
      assert.equal(r.problems.length, 1, `${what}: ${r.problems.join(' | ')}`);
      assert.match(r.problems[0]!, want, what);
      assert.match(r.problems[0]!, /^bad\.yaml:\d+: GRPCRoute shop\/greeter: spec\./, what);
    }
  });

  it('parseGrpcRouteSpec is pure and reports every problem with its path', () => {
    const r = parseGrpcRouteSpec({ parentRefs: [{ kind: 'Service', name: 'g' }], rules: [{ matches: [{ method: {} }, { method: { service: 'x', bogus: 1 } }], backendRefs: [] }] }, 'ns');
    assert.equal(r.spec, undefined);
    assert.deepEqual(r.problems.map((p) => p.path), ['spec.rules[0].matches[0].method', 'spec.rules[0].matches[1].method.bogus', 'spec.rules[0].backendRefs']);
  });

  it('the collector refuses a GRPCRoute naming an unknown Service, naming the kind', () => {
    const route = compile(CANARY);
    const svc = (name: string) => ({ namespace: 'shop', name, vips: [], ports: [{ name: 'grpc', port: 50051 }], endpoints: [] });
    assert.throws(
      () => checkBackends([route], [svc('greeter'), svc('greeter-v1'), svc('health'), svc('admin')]),
      (e: unknown) => e instanceof PolicyInvalidError && /GRPCRoute shop\/greeter: spec\.rules\[0\]\.backendRefs\[0\]: unknown Service shop\/greeter-v2/.test(String((e as Error).message)),
    );
  });
});
