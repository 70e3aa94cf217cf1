import { strict as assert } from 'node:assert';
import { compilePolicyFiles, parsePolicies } from '../../../../common/policy';
import { parseHttpRouteSpec, regexProblem, RouteTable, type CompiledHttpRoute, type RouteRequest } from '../../../../common/routes';

/** Lines 1-6; the spec's own lines start at 7. */
const HEAD = 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: web-canary\n  namespace: shop\nspec:\n';

const CANARY = `${HEAD}  parentRefs:
  - {kind: Service, group: "", name: web, port: 80}
  rules:
  - matches:
    - headers: [{name: X-User-Group, value: beta}]
    backendRefs: [{name: web-v2, port: 80}]
  - matches:
    - path: {type: PathPrefix, value: /api/}
      method: GET
      queryParams: [{name: v, type: RegularExpression, value: "[0-9]+"}]
    backendRefs: [{name: web-v1, port: 80, weight: 90}, {name: web-v2, port: 80, weight: 10}]
    timeouts: {request: 2s, backendRequest: 500ms}
    retry: {codes: [503], attempts: 3, backoff: 30ms}
  - backendRefs: [{name: web-v1, port: 80}]
`;

function compile(text: string): CompiledHttpRoute {
  const set = compilePolicyFiles([{ source: 'r.yaml', text }]);
  assert.equal(set.routes?.length, 1);
  return set.routes![0]! as CompiledHttpRoute;
}

function req(path: string, extra: Partial<RouteRequest> = {}): RouteRequest {
  const [p, q] = path.split('?');
  return { method: 'GET', path: p!, query: q === undefined ? '' : `?${q}`, headers: {}, ...extra };
}

describe('HTTPRoute (common/routes)', () => {
  it('compiles a canary route attached to a Service: parents, matches, weights, timeouts, retry', () => {
    const r = compile(CANARY);
    assert.equal(r.id, 'shop/web-canary');
    assert.deepEqual(r.parents, [{ namespace: 'shop', name: 'web', port: 80 }]);
    assert.equal(r.rules.length, 3);
    assert.deepEqual(r.rules[1]!.backends.map((b) => [b.name, b.weight]), [['web-v1', 90], ['web-v2', 10]]);
    assert.equal(r.rules[1]!.requestTimeoutMs, 2000);
    assert.equal(r.rules[1]!.backendTimeoutMs, 500);
    assert.deepEqual([...r.rules[1]!.retry!.codes], [503]);
    assert.equal(r.rules[1]!.retry!.attempts, 3);
    assert.equal(r.rules[1]!.retry!.backoffMs, 30);
    assert.equal(r.rules[0]!.matches[0]!.headers[0]!.name, 'x-user-group');
    // the manifest compiles back to the same route (what the collector stores and pushes)
    const again = parsePolicies(JSON.stringify(r.manifest), 'm.json');
    assert.deepEqual(again.problems, []);
  });

  it('retry defaults are Istio\'s and Envoy\'s: 2 retries of 502/503/504, 25 ms backoff', () => {
    const r = compile(`${HEAD}  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: web, port: 80}]\n    retry: {}\n`);
    assert.deepEqual([...r.rules[0]!.retry!.codes], [502, 503, 504]);
    assert.equal(r.rules[0]!.retry!.attempts, 2);
    assert.equal(r.rules[0]!.retry!.backoffMs, 25);
    assert.equal(r.parents[0]!.port, undefined);
  });

  // Each bad input: one line naming the field, at its line, and nothing compiled.
  const BAD: [string, string, number, string][] = [
    ['weights summing to 0', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs:\n    - {name: a, port: 80, weight: 0}\n    - {name: b, port: 80, weight: 0}\n', 10, 'spec.rules[0].backendRefs: weights sum to 0'],
    ['a filter without its settings', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestMirror}]\n', 10, 'spec.rules[0].filters[0].requestMirror: is missing'],
    ['sessionPersistence of an unknown type', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    sessionPersistence: {type: Ip}\n', 10, 'spec.rules[0].sessionPersistence.type: must be Cookie or Header'],
    ['a Permanent session cookie without absoluteTimeout', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    sessionPersistence: {cookieConfig: {lifetimeType: Permanent}}\n', 10, 'spec.rules[0].sessionPersistence.cookieConfig.lifetimeType: Permanent needs absoluteTimeout'],
    ['a Gateway parent', '  parentRefs: [{name: my-gateway}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n', 7, 'spec.parentRefs[0]: only a Service parent is supported'],
    ['a backtracking regex', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - matches: [{path: {type: RegularExpression, value: "/(a+)+b"}}]\n    backendRefs: [{name: a, port: 80}]\n', 9, 'spec.rules[0].matches[0].path.value: regular expression repeats a group'],
    ['a backreference', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - matches: [{headers: [{name: x, type: RegularExpression, value: "(a)\\\\1"}]}]\n    backendRefs: [{name: a, port: 80}]\n', 9, 'regular expression uses a backreference'],
    ['an invalid regex', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - matches: [{path: {type: RegularExpression, value: "/[a"}}]\n    backendRefs: [{name: a, port: 80}]\n', 9, 'is not a valid regular expression'],
    ['a backend without a port', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a}]\n', 9, 'spec.rules[0].backendRefs[0].port: is missing'],
    ['a backend in another namespace', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, namespace: other, port: 80}]\n', 9, 'needs a ReferenceGrant'],
    ['a rule without backends', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - matches: [{method: GET}]\n', 9, 'spec.rules[0].backendRefs: is missing'],
    ['no parentRefs', '  rules:\n  - backendRefs: [{name: a, port: 80}]\n', 7, 'spec.parentRefs: is missing'],
    ['a bad method', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - matches: [{method: get}]\n    backendRefs: [{name: a, port: 80}]\n', 9, 'spec.rules[0].matches[0].method: must be one of GET'],
    ['a relative path', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - matches: [{path: {value: api}}]\n    backendRefs: [{name: a, port: 80}]\n', 9, 'must start with "/"'],
    ['a bad duration', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    timeouts: {request: 1.5s}\n', 10, 'spec.rules[0].timeouts.request: must be a duration'],
    ['a request timeout past a day (Node would fire it after 1 ms)', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    timeouts: {request: 720h}\n', 10, 'spec.rules[0].timeouts.request: must be at most 24h (for no timeout, leave it out), got "720h"'],
    ['the longest duration the syntax allows', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    timeouts: {backendRequest: 99999h99999h99999h99999h}\n', 10, 'spec.rules[0].timeouts.backendRequest: must be at most 24h'],
    ['a backoff past a day', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    retry: {backoff: 25h}\n', 10, 'spec.rules[0].retry.backoff: must be at most 24h'],
    ['backendRequest longer than request', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    timeouts: {request: 1s, backendRequest: 2s}\n', 10, 'must not be longer than timeouts.request'],
    ['a retry code out of range', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    retry: {codes: [200]}\n', 10, 'spec.rules[0].retry.codes[0]: must be a whole number from 400 to 599'],
    ['an unknown field', '  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    mirror: true\n', 10, 'spec.rules[0].mirror: unknown or unsupported field'],
  ];
  for (const [what, spec, line, message] of BAD) {
    it(`refuses ${what} with one line naming the field`, () => {
      const r = parsePolicies(HEAD + spec, 'p.yaml');
      assert.equal(r.policies.length, 0);
      assert.equal(r.problems.length, 1, r.problems.join('\n'));
      assert.ok(r.problems[0]!.startsWith(`p.yaml:${line}: HTTPRoute shop/web-canary: `), r.problems[0]);
      assert.ok(r.problems[0]!.includes(message), r.problems[0]);
    });
  }

  describe('FaultInjection (palisade.dev/v1), referenced from a rule\'s ExtensionRef filter', () => {
    const FAULT = 'apiVersion: palisade.dev/v1\nkind: FaultInjection\nmetadata: {name: chaos, namespace: shop}\nspec:\n';
    it('compiles Istio\'s shape: a fixed delay and an HTTP abort, each with a percentage', () => {
      const set = compilePolicyFiles([{ source: 'f.yaml', text: `${FAULT}  delay: {fixedDelay: 50ms, percentage: {value: 10}}\n  abort: {httpStatus: 503, percentage: {value: 2.5}}\n` }]);
      assert.deepEqual({ delay: set.faults![0]!.delay, abort: set.faults![0]!.abort }, { delay: { ms: 50, percent: 10 }, abort: { status: 503, percent: 2.5 } });
    });
    it('compiles a gRPC abort (Istio\'s grpcStatus, by name): the code, and the HTTP status a plain request gets', () => {
      const set = compilePolicyFiles([{ source: 'f.yaml', text: `${FAULT}  abort: {grpcStatus: UNAVAILABLE, percentage: {value: 10}}\n` }]);
      assert.deepEqual(set.faults![0]!.abort, { status: 503, grpcStatus: 14, percent: 10 });
      const deadline = compilePolicyFiles([{ source: 'f.yaml', text: `${FAULT}  abort: {grpcStatus: DEADLINE_EXCEEDED}\n` }]);
      assert.deepEqual(deadline.faults![0]!.abort, { status: 504, grpcStatus: 4, percent: 100 });
    });
    const BAD_FAULTS: [string, string, string][] = [
      ['nothing to do', '  {}\n', 'spec: needs delay or abort'],
      ['a percentage above 100', '  abort: {httpStatus: 503, percentage: {value: 101}}\n', 'spec.abort.percentage.value: must be a number from 0 to 100'],
      ['a gRPC abort by number (Istio names the code)', '  abort: {grpcStatus: 14}\n', 'spec.abort.grpcStatus: must be a gRPC status name other than OK'],
      ['a gRPC abort with OK', '  abort: {grpcStatus: OK}\n', 'spec.abort.grpcStatus: must be a gRPC status name other than OK'],
      ['an abort with both statuses', '  abort: {httpStatus: 503, grpcStatus: UNAVAILABLE}\n', 'spec.abort: httpStatus or grpcStatus, not both'],
      ['a bad delay', '  delay: {fixedDelay: 5}\n', 'spec.delay.fixedDelay: must be a duration'],
      ['a delay past an hour', '  delay: {fixedDelay: 61m}\n', 'spec.delay.fixedDelay: must be at most 1h, got "61m"'],
    ];
    for (const [what, spec, message] of BAD_FAULTS) {
      it(`refuses ${what}`, () => {
        const r = parsePolicies(FAULT + spec, 'f.yaml');
        assert.equal(r.problems.length, 1, r.problems.join('\n'));
        assert.ok(r.problems[0]!.includes(message), r.problems[0]);
      });
    }
    it('a rule names it through an ExtensionRef filter (namespace of the route); other filters are refused', () => {
      const rule = (filter: string): string => `${HEAD}  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    filters: [${filter}]\n`;
      assert.equal(compile(rule('{type: ExtensionRef, extensionRef: {group: palisade.dev, kind: FaultInjection, name: chaos}}')).rules[0]!.fault, 'shop/chaos');
      const r = parsePolicies(rule('{type: ExtensionRef, extensionRef: {group: example.com, kind: Thing, name: x}}'), 'p.yaml');
      assert.ok(r.problems[0]!.includes('spec.rules[0].filters[0].extensionRef: must name a FaultInjection of group palisade.dev'), r.problems[0]);
    });
  });

  it('the longest bounds are accepted: a 24h timeout, a 1h delay', () => {
    const r = compile(`${HEAD}  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    timeouts: {request: 24h, backendRequest: 23h60m}\n`);
    assert.deepEqual([r.rules[0]!.requestTimeoutMs, r.rules[0]!.backendTimeoutMs], [86_400_000, 86_400_000]);
    const f = compilePolicyFiles([{ source: 'f.yaml', text: 'apiVersion: palisade.dev/v1\nkind: FaultInjection\nmetadata: {name: chaos, namespace: shop}\nspec:\n  delay: {fixedDelay: 59m60s}\n' }]);
    assert.equal(f.faults![0]!.delay!.ms, 3_600_000);
  });

  it('a backoff above 250 ms (the longest a retry waits) is used as 250 ms, with a warning', () => {
    const r = parsePolicies(`${HEAD}  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    retry: {backoff: 10s}\n`, 'p.yaml');
    assert.deepEqual(r.problems, []);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0]!, /^p\.yaml:10: warning: HTTPRoute shop\/web-canary: spec\.rules\[0\]\.retry\.backoff: \("10s"\) is above 250ms, the longest a retry waits: 250ms is used$/);
    assert.equal(compile(`${HEAD}  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n    retry: {backoff: 10s}\n`).rules[0]!.retry!.backoffMs, 250);
  });

  it('warns that hostnames are ignored on a Service parent', () => {
    const r = parsePolicies(`${HEAD}  parentRefs: [{kind: Service, name: web}]\n  hostnames: [web.example]\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n`, 'p.yaml');
    assert.deepEqual(r.problems, []);
    assert.match(r.warnings[0]!, /^p\.yaml:8: warning: HTTPRoute shop\/web-canary: spec.hostnames: is ignored/);
  });

  const REGEX: [string, string | undefined][] = [
    ['/api/v[0-9]+/users', undefined],
    ['(?:/a|/b)', undefined],
    ['(?<name>x)y+', undefined],
    ['[(]+', undefined],
    ['(a+)+', 'repeats a group'],
    ['(a|aa)*', 'repeats a group'],
    ['((ab)*c)+', 'repeats a group'],
    ['(?=a)', 'lookaround'],
    ['(?<!a)b', 'lookaround'],
    ['\\k<x>(?<x>a)', 'backreference'],
    ['', 'is empty'],
    ['a'.repeat(1025), 'longer than'],
  ];
  for (const [pattern, problem] of REGEX) {
    it(`regex ${JSON.stringify(pattern.slice(0, 20))} is ${problem ?? 'accepted'}`, () => {
      const p = regexProblem(pattern);
      if (problem === undefined) assert.equal(p, undefined);
      else assert.ok(p?.includes(problem), p);
    });
  }

  describe('RouteTable: which rule serves a request', () => {
    const table = new RouteTable([compile(CANARY)]);
    const routes = table.lookup('shop', 'web', 80, 'shop')!;
    const CASES: [string, RouteRequest, number | undefined][] = [
      ['a header match on any path', req('/other', { headers: { 'x-user-group': ['beta'] } }), 0],
      ['a longer path prefix is more specific than a header match (Gateway API precedence)', req('/api/x?v=1', { headers: { 'x-user-group': ['beta'] } }), 1],
      ['path prefix + method + query regex', req('/api/x?v=12'), 1],
      ['the prefix is element-wise (/apix is not /api/)', req('/apix?v=1'), 2],
      ['a query regex matches the whole value', req('/api/x?v=1a'), 2],
      ['another method falls through', req('/api/x?v=1', { method: 'POST' }), 2],
      ['the catch-all', req('/'), 2],
    ];
    for (const [what, request, rule] of CASES) {
      it(what, () => assert.equal(routes.select(request)?.rule.index, rule));
    }
    it('another port of the Service has no route (plain TCP)', () => assert.equal(table.lookup('shop', 'web', 8080, 'shop'), undefined));
    it('a Service no route attaches to has none', () => assert.equal(table.lookup('shop', 'api', 80, 'shop'), undefined));

    it('unmatched requests get no rule (the proxy answers 404)', () => {
      const only = new RouteTable([compile(`${HEAD}  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - matches: [{path: {type: Exact, value: /a}}]\n    backendRefs: [{name: a, port: 80}]\n`)]);
      const s = only.lookup('shop', 'web', 80, 'x')!;
      assert.equal(s.select(req('/a'))?.rule.index, 0);
      assert.equal(s.select(req('/a/b')), undefined);
    });

    it('the catch-all rule (PathPrefix / and nothing else), which routes connections that are not HTTP: none when every rule has a condition', () => {
      assert.equal(routes.catchAll?.rule.index, 2);
      const conditional = new RouteTable([compile(`${HEAD}  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - matches: [{path: {type: Exact, value: /}}, {headers: [{name: a, value: b}]}, {method: GET}]\n    backendRefs: [{name: a, port: 80}]\n`)]);
      assert.equal(conditional.lookup('shop', 'web', 80, 'x')!.catchAll, undefined);
    });

    it("GAMMA: a consumer route applies to its own namespace only, and replaces the producer's there", () => {
      const consumer = compile(CANARY.replace('namespace: shop', 'namespace: team').replace('name: web, port: 80}', 'name: web, namespace: shop}'));
      const t = new RouteTable([compile(CANARY), consumer]);
      assert.deepEqual(t.lookup('shop', 'web', 80, 'team')!.routes, ['team/web-canary']);
      assert.deepEqual(t.lookup('shop', 'web', 80, 'other')!.routes, ['shop/web-canary']);
      assert.equal(t.lookup('shop', 'web', 8080, 'other'), undefined);
      assert.deepEqual(t.lookup('shop', 'web', 8080, 'team')!.routes, ['team/web-canary']);
    });
  });

  it('parseHttpRouteSpec reports every problem, not only the first', () => {
    const r = parseHttpRouteSpec({ parentRefs: [{ kind: 'Service', name: 'Web' }], rules: [{ backendRefs: [{ name: 'a', port: 0 }] }] }, 'shop');
    assert.deepEqual(r.problems.map((p) => p.path), ['spec.parentRefs[0].name', 'spec.rules[0].backendRefs[0].port']);
    assert.equal(r.spec, undefined);
  });
});
