import { strict as assert } from 'node:assert';
import { compilePolicyFiles, parsePolicies } from '../../../../common/policy';
import { hostWithoutPort, modifiedPath, redirectLocation, requestEdit, type RedirectRequest } from '../../../../common/routes/filters';
import type { CompiledRoute, PathModifier, RedirectFilter } from '../../../../common/routes';

const HTTP = 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, name: web}]\n  rules:\n';
const GRPC = HTTP.replace('HTTPRoute', 'GRPCRoute');

function compile(text: string): CompiledRoute {
  const set = compilePolicyFiles([{ source: 'r.yaml', text }]);
  assert.equal(set.routes?.length, 1);
  return set.routes![0]!;
}

describe('HTTPRoute and GRPCRoute filters (common/routes/parse-filters.ts, filters.ts)', () => {
  it('compiles every HTTPRoute filter: header modifiers, URLRewrite, RequestMirror (percent and fraction), backendRef filters', () => {
    const r = compile(`${HTTP}  - matches: [{path: {type: PathPrefix, value: /api/}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Env, value: canary}]
        add: [{name: X-Tag, value: "a,b"}]
        remove: [X-Debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: Cache-Control, value: no-store}]}
    - type: URLRewrite
      urlRewrite: {hostname: api.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, percent: 25}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow2, port: 8080}, fraction: {numerator: 1, denominator: 3}}}
    backendRefs:
    - name: web-v1
      port: 80
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-backend, value: v1}]}}]
`);
    const rule = r.rules[0]!;
    const f = rule.filters!;
    assert.deepEqual(f.requestHeaders, [
      { op: 'set', name: 'x-env', value: 'canary' },
      { op: 'add', name: 'x-tag', value: 'a,b' },
      { op: 'remove', name: 'x-debug', value: '' },
    ]);
    assert.deepEqual(f.responseHeaders, [{ op: 'set', name: 'cache-control', value: 'no-store' }]);
    assert.deepEqual(f.rewrite, { hostname: 'api.internal', path: { type: 'ReplacePrefixMatch', value: '/v2' } });
    assert.deepEqual(f.mirrors, [
      { backend: { namespace: 'shop', name: 'shadow', port: 80 }, numerator: 25, denominator: 100 },
      { backend: { namespace: 'shop', name: 'shadow2', port: 8080 }, numerator: 1, denominator: 3 },
    ]);
    assert.deepEqual(rule.backends[0]!.filters!.requestHeaders, [{ op: 'set', name: 'x-backend', value: 'v1' }]);
    // the edit of a request: the rule's request headers, then the backendRef's; the prefix rewritten element-wise
    assert.deepEqual(requestEdit(rule, rule.backends[0], '/api/users'), {
      request: [...f.requestHeaders, { op: 'set', name: 'x-backend', value: 'v1' }],
      response: f.responseHeaders,
      path: '/v2/users',
      host: 'api.internal',
    });
    assert.deepEqual(requestEdit(rule, undefined, '/api')?.request, f.requestHeaders, 'a mirrored copy gets the rule\'s edits alone');
    // the manifest compiles back to the same route (what the collector stores and pushes)
    assert.deepEqual(parsePolicies(JSON.stringify(r.manifest), 'm.json').problems, []);
  });

  it('a rule without filters has no edit; a RequestRedirect rule has no backendRefs and a 302 by default', () => {
    assert.equal(requestEdit(compile(`${HTTP}  - backendRefs: [{name: a, port: 80}]\n`).rules[0]!, undefined, '/'), undefined);
    const r = compile(`${HTTP}  - filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n`);
    assert.deepEqual(r.rules[0]!.backends, []);
    assert.deepEqual(r.rules[0]!.filters!.redirect, { scheme: 'https', hostname: undefined, path: undefined, port: undefined, statusCode: 302 });
  });

  it('GRPCRoute takes header modifiers and mirrors, on the rule and on a backendRef', () => {
    const r = compile(`${GRPC}  - filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-caller, value: client}]}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 50051}}}
    backendRefs: [{name: g, port: 50051, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {remove: [x-internal]}}]}]
`);
    assert.deepEqual(r.rules[0]!.filters!.requestHeaders, [{ op: 'add', name: 'x-caller', value: 'client' }]);
    assert.deepEqual(r.rules[0]!.filters!.mirrors[0]!.numerator / r.rules[0]!.filters!.mirrors[0]!.denominator, 1, 'no percent: every request');
    assert.deepEqual(r.rules[0]!.backends[0]!.filters!.responseHeaders, [{ op: 'remove', name: 'x-internal', value: '' }]);
  });

  // Each bad input: one line naming the field, and nothing compiled.
  const mod = (x: string): string => `  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestHeaderModifier, requestHeaderModifier: ${x}}]\n`;
  const BAD: [string, string, string, string][] = [
    ['two RequestHeaderModifiers', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters:\n    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}\n    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: c, value: d}]}}\n', 'spec.rules[0].filters[1]: a second RequestHeaderModifier filter'],
    ['two URLRewrites', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters:\n    - {type: URLRewrite, urlRewrite: {hostname: a}}\n    - {type: URLRewrite, urlRewrite: {hostname: b}}\n', 'a second URLRewrite filter'],
    ['URLRewrite with RequestRedirect', HTTP, '  - filters:\n    - {type: URLRewrite, urlRewrite: {hostname: a}}\n    - {type: RequestRedirect, requestRedirect: {hostname: b}}\n', 'spec.rules[0].filters: has both URLRewrite and RequestRedirect'],
    ['a redirect with backendRefs', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n', 'spec.rules[0].backendRefs: must be left out with a RequestRedirect'],
    ['a redirect status outside 301/302/303/307/308', HTTP, '  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 304}}]\n', 'requestRedirect.statusCode: must be one of 301, 302, 303, 307, 308'],
    ['a redirect scheme other than http/https', HTTP, '  - filters: [{type: RequestRedirect, requestRedirect: {scheme: ftp}}]\n', 'requestRedirect.scheme: must be http or https'],
    ['ReplacePrefixMatch without a PathPrefix match', HTTP, '  - matches: [{path: {type: Exact, value: /a}}]\n    backendRefs: [{name: a, port: 80}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]\n', 'spec.rules[0].matches: must be exactly one PathPrefix match'],
    ['ReplacePrefixMatch with two matches', HTTP, '  - matches: [{path: {value: /a}}, {path: {value: /b}}]\n    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /c}}}]\n', 'must be exactly one PathPrefix match'],
    ['a path modifier of the other type', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replacePrefixMatch: /b}}}]\n', 'urlRewrite.path.replacePrefixMatch: must not be set when type is ReplaceFullPath'],
    ['a rewritten path with a query', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: "/a?x=1"}}}]\n', 'urlRewrite.path.replaceFullPath: must be a normalized path'],
    ['a rewritten path with dot segments', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /a/../admin}}}]\n', 'must be a normalized path'],
    ['a rewrite hostname with a port', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: URLRewrite, urlRewrite: {hostname: "api:8080"}}]\n', 'urlRewrite.hostname: must be a lowercase DNS name without a port'],
    ['URLRewrite on the rule and a backendRef', HTTP, '  - backendRefs: [{name: a, port: 80, filters: [{type: URLRewrite, urlRewrite: {hostname: b}}]}]\n    filters: [{type: URLRewrite, urlRewrite: {hostname: a}}]\n', 'spec.rules[0]: has a URLRewrite on the rule and on a backendRef'],
    ['a redirect on a backendRef', HTTP, '  - backendRefs: [{name: a, port: 80, filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]}]\n', 'spec.rules[0].backendRefs[0].filters[0].type: RequestRedirect is not supported on a backendRef'],
    ['an invalid header name', HTTP, mod('{set: [{name: "bad header", value: x}]}'), 'requestHeaderModifier.set[0].name: is not a valid header name'],
    ['a pseudo-header', HTTP, mod('{set: [{name: ":path", value: /x}]}'), '":path" is a pseudo-header'],
    ['Host (URLRewrite changes it)', HTTP, mod('{set: [{name: Host, value: x}]}'), '"Host" is the request\'s authority (to change it, use URLRewrite hostname)'],
    ['a hop-by-hop header', HTTP, mod('{remove: [Connection]}'), '"Connection" is the mesh\'s or the connection\'s own header'],
    ['framing', HTTP, mod('{set: [{name: Content-Length, value: "5"}]}'), '"Content-Length" is the mesh\'s or the connection\'s own header'],
    ['x-forwarded-client-cert', HTTP, mod('{set: [{name: X-Forwarded-Client-Cert, value: x}]}'), '"X-Forwarded-Client-Cert" is the mesh\'s or the connection\'s own header'],
    ['an x-palisade-* header', HTTP, mod('{add: [{name: x-palisade-identity, value: x}]}'), '"x-palisade-identity" is the mesh\'s own header (x-palisade-*)'],
    ['an x_palisade_* header (read as x-palisade-*)', HTTP, mod('{remove: [x_palisade_identity]}'), 'is the mesh\'s own header (x-palisade-*)'],
    ['a grpc-* header in a GRPCRoute', GRPC, mod('{set: [{name: grpc-timeout, value: 1S}]}'), '"grpc-timeout" is reserved by gRPC'],
    ['two actions on one header', HTTP, mod('{set: [{name: X-A, value: "1"}], remove: [x-a]}'), 'requestHeaderModifier.remove[0]: "x-a" is named twice (one action per header name)'],
    ['a header value with a newline', HTTP, mod('{set: [{name: X-A, value: "a\\nb"}]}'), 'requestHeaderModifier.set[0].value: must be 1 to 4096 printable ASCII characters'],
    ['an empty header value', HTTP, mod('{add: [{name: X-A, value: ""}]}'), 'requestHeaderModifier.add[0].value: must be 1 to 4096'],
    ['a modifier field that does not exist', HTTP, mod('{append: []}'), 'requestHeaderModifier.append: unknown or unsupported field'],
    ['a filter without its settings', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: ResponseHeaderModifier}]\n', 'spec.rules[0].filters[0].responseHeaderModifier: is missing'],
    ['a filter with another type\'s settings', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: URLRewrite, urlRewrite: {}, requestRedirect: {}}]\n', 'spec.rules[0].filters[0].requestRedirect: unknown or unsupported field'],
    ['an unknown filter type', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RateLimit}]\n', 'spec.rules[0].filters[0].type: must be one of RequestHeaderModifier'],
    ['CORS', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: CORS, cors: {}}]\n', 'spec.rules[0].filters[0].type: CORS is not supported in a HTTPRoute: CORS is not supported (remove it)'],
    ['a RequestRedirect in a GRPCRoute', GRPC, '  - filters: [{type: RequestRedirect, requestRedirect: {}}]\n', 'RequestRedirect is not supported in a GRPCRoute'],
    ['a mirror with percent and fraction', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 80}, percent: 5, fraction: {numerator: 1}}}]\n', 'requestMirror: has both percent and fraction'],
    ['a mirror percent above 100', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 80}, percent: 150}}]\n', 'requestMirror.percent: must be a whole number from 0 to 100'],
    ['a mirror fraction above 1', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 80}, fraction: {numerator: 3, denominator: 2}}}]\n', 'requestMirror.fraction: numerator (3) must not be above denominator (2)'],
    ['a mirror without a port', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s}}}]\n', 'requestMirror.backendRef.port: is missing'],
    ['a mirror with a weight', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 80, weight: 1}}}]\n', 'requestMirror.backendRef.weight: unknown or unsupported field'],
    ['a mirror to another namespace', HTTP, '  - backendRefs: [{name: a, port: 80}]\n    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, namespace: other, port: 80}}}]\n', 'requestMirror.backendRef.namespace: a backend in another namespace'],
  ];
  for (const [what, head, spec, message] of BAD) {
    it(`refuses ${what} with one line naming the field`, () => {
      const r = parsePolicies(head + spec, 'p.yaml');
      assert.equal(r.policies.length, 0);
      assert.equal(r.problems.length, 1, r.problems.join('\n'));
      assert.ok(r.problems[0]!.includes(message), r.problems[0]);
    });
  }

  // Gateway API's table for ReplacePrefixMatch (HTTPPathModifier), and ReplaceFullPath.
  const PATHS: [string, string, PathModifier, string][] = [
    ['/foo/bar', '/foo', { type: 'ReplacePrefixMatch', value: '/xyz' }, '/xyz/bar'],
    ['/foo/bar', '/foo', { type: 'ReplacePrefixMatch', value: '/xyz/' }, '/xyz/bar'],
    ['/foo/bar', '/foo/', { type: 'ReplacePrefixMatch', value: '/xyz' }, '/xyz/bar'],
    ['/foo/bar', '/foo/', { type: 'ReplacePrefixMatch', value: '/xyz/' }, '/xyz/bar'],
    ['/foo', '/foo', { type: 'ReplacePrefixMatch', value: '/xyz' }, '/xyz'],
    ['/foo/', '/foo', { type: 'ReplacePrefixMatch', value: '/xyz' }, '/xyz/'],
    ['/foo/bar', '/foo', { type: 'ReplacePrefixMatch', value: '' }, '/bar'],
    ['/foo/', '/foo', { type: 'ReplacePrefixMatch', value: '' }, '/'],
    ['/foo', '/foo', { type: 'ReplacePrefixMatch', value: '' }, '/'],
    ['/foo/', '/foo', { type: 'ReplacePrefixMatch', value: '/' }, '/'],
    ['/foo', '/foo', { type: 'ReplacePrefixMatch', value: '/' }, '/'],
    ['/a/b', '/', { type: 'ReplacePrefixMatch', value: '/v2' }, '/v2/a/b'],
    ['/anything/here', '/anything', { type: 'ReplaceFullPath', value: '/fixed' }, '/fixed'],
  ];
  for (const [path, prefix, m, want] of PATHS) {
    it(`${m.type} ${JSON.stringify(m.value)} of ${path} (prefix ${prefix}) is ${want}`, () => assert.equal(modifiedPath(path, m, prefix), want));
  }

  const redirect = (r: Partial<RedirectFilter>): RedirectFilter => ({ scheme: undefined, hostname: undefined, path: undefined, port: undefined, statusCode: 302, ...r });
  const REQ: RedirectRequest = { path: '/shop/cart', query: '?id=7', host: 'web.shop:8080' };
  const LOCATIONS: [string, RedirectFilter, string][] = [
    ['nothing set: the request\'s host, the listener port, path and query', redirect({}), 'http://web.shop:80/shop/cart?id=7'.replace(':80/', '/')],
    ['a scheme: its well-known port, left out', redirect({ scheme: 'https' }), 'https://web.shop/shop/cart?id=7'],
    ['a scheme and a port', redirect({ scheme: 'https', port: 8443 }), 'https://web.shop:8443/shop/cart?id=7'],
    ['a hostname', redirect({ hostname: 'example.com' }), 'http://example.com/shop/cart?id=7'],
    ['a port', redirect({ port: 9090 }), 'http://web.shop:9090/shop/cart?id=7'],
    ['http on 443 keeps the port', redirect({ scheme: 'http', port: 443 }), 'http://web.shop:443/shop/cart?id=7'],
    ['a full path', redirect({ path: { type: 'ReplaceFullPath', value: '/login' } }), 'http://web.shop/login?id=7'],
    ['a prefix', redirect({ path: { type: 'ReplacePrefixMatch', value: '/store' } }), 'http://web.shop/store/cart?id=7'],
  ];
  for (const [what, r, want] of LOCATIONS) {
    it(`redirect Location, ${what}: ${want}`, () => assert.equal(redirectLocation(r, REQ, 80, '/shop'), want));
  }
  it('redirect Location on a listener port other than 80 names it', () => assert.equal(redirectLocation(redirect({}), { path: '/', query: '', host: 'web' }, 8080, undefined), 'http://web:8080/'));

  it('the host of a Host value, without its port', () => {
    assert.deepEqual(['web', 'web:80', '10.0.0.1:8080', '[::1]:80', '[::1]'].map(hostWithoutPort), ['web', 'web', '10.0.0.1', '[::1]', '[::1]']);
  });
});
