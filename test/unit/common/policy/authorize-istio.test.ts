/**
 * Istio's documented examples, with the verdicts the pages state. Each block cites its source.
 * Palisade has no JWT authentication, so conditions on request principals / claims behave as in
 * Istio without a RequestAuthentication: they are never present.
 */
import { strict as assert } from 'node:assert';
import { authorize, type AuthzStage } from '../../../../common/policy';
import { indexOf, request, type RequestSpec } from './helpers';

const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';
const DEV = 'spiffe://cluster.local/ns/dev/sa/client';
const TEST = 'spiffe://cluster.local/ns/test/sa/tester';
const FOO = 'spiffe://cluster.local/ns/foo/sa/sleep';
const INGRESS = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account';
const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';

type Row = [string, RequestSpec, boolean, AuthzStage?];

/** Rows of `[what, request, allowed, stage]` against the policies in `yaml`. */
function verdicts(yaml: string, rows: Row[]): void {
  const index = indexOf(yaml);
  for (const [what, spec, allowed, stage = 'request'] of rows) {
    it(`${allowed ? 'allows' : 'denies'} ${what}${stage === 'request' ? '' : ` (${stage})`}`, () => {
      const v = authorize(request(spec), index, stage);
      assert.equal(v.allowed, allowed, JSON.stringify(v));
    });
  }
}

const doc = (name: string, body: string, namespace = 'foo'): string =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n${body}`;

describe('authorize: istio.io examples', () => {
  // https://istio.io/latest/docs/reference/config/security/authorization-policy/ (first example)
  describe('reference: httpbin ALLOW from sleep or namespace test, GET /info* or POST /data, with a JWT issuer', () => {
    const rules = `  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    - source:
        namespaces: ["test"]
    to:
    - operation:
        methods: ["GET"]
        paths: ["/info*"]
    - operation:
        methods: ["POST"]
        paths: ["/data"]
`;
    describe('as written (the JWT condition is never met without request authentication)', () => {
      verdicts(doc('httpbin', `${rules}    when:\n    - key: request.auth.claims[iss]\n      values: ["https://accounts.google.com"]\n`), [
        ['GET /info from sleep', { principal: SLEEP, method: 'GET', path: '/info' }, false],
      ]);
    });
    describe('without the JWT condition', () => {
      verdicts(doc('httpbin', rules), [
        ['GET /info from sleep', { principal: SLEEP, method: 'GET', path: '/info' }, true],
        ['GET /info/headers from namespace test', { principal: TEST, method: 'GET', path: '/info/headers' }, true],
        ['POST /data from sleep', { principal: SLEEP, method: 'POST', path: '/data' }, true],
        ['POST /info from sleep', { principal: SLEEP, method: 'POST', path: '/info' }, false],
        ['GET /data from sleep', { principal: SLEEP, method: 'GET', path: '/data' }, false],
        ['GET /info from namespace dev', { principal: DEV, method: 'GET', path: '/info' }, false],
        ['GET /info from a plaintext client', { principal: null, method: 'GET', path: '/info' }, false],
      ]);
    });
  });

  // Same page: "denies requests from the dev namespace to the POST method on all workloads in foo".
  describe('reference: DENY POST from namespace dev', () => {
    verdicts(doc('httpbin', '  action: DENY\n  rules:\n  - from:\n    - source:\n        namespaces: ["dev"]\n    to:\n    - operation:\n        methods: ["POST"]\n'), [
      ['POST from dev', { principal: DEV, method: 'POST' }, false],
      ['GET from dev', { principal: DEV, method: 'GET' }, true],
      ['POST from default', { principal: SLEEP, method: 'POST' }, true],
    ]);
  });

  // Same page: "denies all the requests with POST method on port 8080" and its note on TCP traffic.
  describe('reference: DENY POST on port 8080, and TCP traffic on that port', () => {
    verdicts(doc('httpbin', '  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: ["POST"]\n        ports: ["8080"]\n'), [
      ['POST on 8080', { method: 'POST', port: 8080 }, false],
      ['GET on 8080', { method: 'GET', port: 8080 }, true],
      ['POST on 8000', { method: 'POST', port: 8000 }, true],
      ['TCP on 8080 ("all TCP traffic on port 8080 would be denied")', { http: false, port: 8080 }, false, 'tcp'],
      ['TCP on 9000', { http: false, port: 9000 }, true, 'tcp'],
    ]);
  });

  // Same page: AUDIT GET /user/profile/* (AUDIT never changes the decision).
  describe('reference: AUDIT GET /user/profile/*', () => {
    const index = indexOf(doc('anyname', '  selector:\n    matchLabels:\n      app: httpbin\n  action: AUDIT\n  rules:\n  - to:\n    - operation:\n        methods: ["GET"]\n        paths: ["/user/profile/*"]\n', 'foo'));
    it('audits GET /user/profile/1 and allows it', () => {
      assert.deepEqual(authorize(request({ path: '/user/profile/1' }), index, 'request'), { allowed: true, reason: 'no-policy', audit: { policy: 'foo/anyname', rule: 0 } });
    });
    it('does not audit GET /user/settings', () => {
      assert.deepEqual(authorize(request({ path: '/user/settings' }), index, 'request'), { allowed: true, reason: 'no-policy' });
    });
  });

  // Same page and https://istio.io/latest/docs/concepts/security/#allow-nothing-deny-all-and-allow-all-policy
  describe('allow-nothing, allow-all, deny-all', () => {
    describe('allow-nothing (spec: {})', () => {
      verdicts(doc('allow-nothing', '  {}\n'), [
        ['any request', {}, false],
        ['TCP', { http: false }, false, 'tcp'],
      ]);
    });
    describe('allow-all (rules: [{}])', () => {
      verdicts(doc('allow-all', '  rules:\n  - {}\n'), [
        ['any request', { principal: null, method: 'DELETE' }, true],
        ['TCP', { http: false }, true, 'tcp'],
      ]);
    });
    describe('deny-all (DENY, rules: [{}]) beats allow-all', () => {
      verdicts(`${doc('allow-all', '  rules:\n  - {}\n')}---\n${doc('deny-all', '  action: DENY\n  rules:\n  - {}\n')}`, [
        ['any request', {}, false],
        ['TCP', { http: false }, false, 'tcp'],
        ['the connection', {}, false, 'connection'],
      ]);
    });
    describe('allow-nothing for app: httpbin in bar, and for version: v1 mesh-wide (root namespace)', () => {
      const yaml = `${doc('allow-nothing', '  selector:\n    matchLabels:\n      app: httpbin\n', 'bar')}---\n${doc('allow-nothing', '  selector:\n    matchLabels:\n      version: v1\n', 'istio-system')}`;
      verdicts(yaml, [
        ['httpbin v1 in foo (the mesh-wide one)', {}, false],
        ['httpbin v2 in bar', { workload: { namespace: 'bar', labels: { app: 'httpbin', version: 'v2' } } }, false],
        ['details v2 in bar', { workload: { namespace: 'bar', labels: { app: 'details', version: 'v2' } } }, true],
        ['httpbin v2 in foo', { workload: { namespace: 'foo', labels: { app: 'httpbin', version: 'v2' } } }, true],
      ]);
    });
  });

  // https://istio.io/latest/docs/concepts/security/#authorization-policies ("denies requests if the source is not the foo namespace")
  describe('concepts: DENY when the source is not namespace foo', () => {
    verdicts(doc('httpbin-deny', '  selector:\n    matchLabels:\n      app: httpbin\n      version: v1\n  action: DENY\n  rules:\n  - from:\n    - source:\n        notNamespaces: ["foo"]\n'), [
      ['a request from foo', { principal: FOO }, true],
      ['a request from default', { principal: SLEEP }, false],
      ['a plaintext request (no namespace is "not foo")', { principal: null }, false],
      ['httpbin v2 (not selected)', { principal: SLEEP, workload: { namespace: 'foo', labels: { app: 'httpbin', version: 'v2' } } }, true],
    ]);
  });

  // https://istio.io/latest/docs/concepts/security/#value-matching ("/test/*" prefix or "*/info" suffix)
  describe('concepts: value matching, paths /test/* or */info', () => {
    verdicts(doc('tester', '  selector:\n    matchLabels:\n      app: httpbin\n  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        paths: ["/test/*", "*/info"]\n'), [
      ['/test/a', { path: '/test/a' }, true],
      ['/a/b/info', { path: '/a/b/info' }, true],
      ['/testing', { path: '/testing' }, false],
      ['/info/a', { path: '/info/a' }, false],
    ]);
  });

  // https://istio.io/latest/docs/concepts/security/#exclusion-matching
  describe('concepts: exclusion matching', () => {
    describe('disable-jwt-for-healthz: ALLOW notPaths /healthz with requestPrincipals *', () => {
      verdicts(doc('disable-jwt-for-healthz', '  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        notPaths: ["/healthz"]\n    from:\n    - source:\n        requestPrincipals: ["*"]\n'), [
        ['/api without a JWT', { path: '/api' }, false],
        ['/healthz (the only ALLOW policy does not match it)', { path: '/healthz' }, false],
      ]);
    });
    describe('enable-jwt-for-admin: DENY /admin without request principals', () => {
      verdicts(doc('enable-jwt-for-admin', '  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths: ["/admin"]\n    from:\n    - source:\n        notRequestPrincipals: ["*"]\n'), [
        ['/admin without a JWT', { path: '/admin' }, false],
        ['/public', { path: '/public' }, true],
      ]);
    });
  });

  // https://istio.io/latest/docs/concepts/security/#authenticated-and-unauthenticated-identity
  describe('concepts: authenticated and unauthenticated identity', () => {
    describe('no source: public', () => {
      verdicts(doc('httpbin', '  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        methods: ["GET", "POST"]\n'), [
        ['GET from a plaintext client', { principal: null }, true],
        ['PUT', { method: 'PUT' }, false],
      ]);
    });
    describe('principals: ["*"]: authenticated only', () => {
      verdicts(doc('httpbin', '  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals: ["*"]\n    to:\n    - operation:\n        methods: ["GET", "POST"]\n'), [
        ['GET with mTLS', {}, true],
        ['GET from a plaintext client', { principal: null }, false],
      ]);
    });
  });

  // https://istio.io/latest/docs/tasks/security/authorization/authz-http/
  describe('task: HTTP traffic (bookinfo, default namespace)', () => {
    const yaml = [
      doc('allow-nothing', '  {}\n', 'default'),
      doc('productpage-viewer', '  selector:\n    matchLabels:\n      app: productpage\n  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        methods: ["GET"]\n', 'default'),
      doc('details-viewer', '  selector:\n    matchLabels:\n      app: details\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]\n    to:\n    - operation:\n        methods: ["GET"]\n', 'default'),
    ].join('---\n');
    const workload = (app: string): RequestSpec['workload'] => ({ namespace: 'default', labels: { app } });
    verdicts(yaml, [
      ['GET productpage from the ingress', { principal: INGRESS, workload: workload('productpage') }, true],
      ['POST productpage', { principal: INGRESS, method: 'POST', workload: workload('productpage') }, false],
      ['GET details from productpage', { principal: PRODUCTPAGE, workload: workload('details') }, true],
      ['GET details from sleep', { principal: SLEEP, workload: workload('details') }, false],
      ['GET reviews from productpage (not granted yet)', { principal: PRODUCTPAGE, workload: workload('reviews') }, false],
    ]);
  });

  // https://istio.io/latest/docs/tasks/security/authorization/authz-deny/
  describe('task: explicit deny', () => {
    const denyGet = doc('deny-method-get', '  selector:\n    matchLabels:\n      app: httpbin\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: ["GET"]\n    when:\n    - key: request.headers[x-token]\n      notValues: ["admin"]\n');
    describe('deny-method-get unless x-token: admin', () => {
      verdicts(denyGet, [
        ['GET with x-token: admin', { path: '/get', headers: { 'x-token': ['admin'] } }, true],
        ['GET with x-token: guest', { path: '/get', headers: { 'x-token': ['guest'] } }, false],
        ['POST', { method: 'POST', path: '/post' }, true],
      ]);
    });
    describe('plus allow-path-ip', () => {
      const allowIp = doc('allow-path-ip', '  selector:\n    matchLabels:\n      app: httpbin\n  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        paths: ["/ip"]\n');
      verdicts(`${denyGet}---\n${allowIp}`, [
        ['GET /ip with x-token: guest (DENY takes precedence)', { path: '/ip', headers: { 'x-token': ['guest'] } }, false],
        ['GET /ip with x-token: admin', { path: '/ip', headers: { 'x-token': ['admin'] } }, true],
        ['GET /get with x-token: admin (no ALLOW matches)', { path: '/get', headers: { 'x-token': ['admin'] } }, false],
      ]);
    });
  });

  // https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/
  describe('task: TCP traffic (tcp-echo on 9000, 9001, 9002)', () => {
    const tcp = (port: number): RequestSpec => ({ http: false, port, workload: { namespace: 'foo', labels: { app: 'tcp-echo' } } });
    const policy = (action: string, operation: string): string =>
      doc('tcp-policy', `  selector:\n    matchLabels:\n      app: tcp-echo\n  action: ${action}\n  rules:\n  - to:\n    - operation:\n${operation}`);
    describe('ALLOW ports 9000, 9001', () => {
      verdicts(policy('ALLOW', '        ports: ["9000", "9001"]\n'), [
        ['port 9000', tcp(9000), true, 'tcp'],
        ['port 9001', tcp(9001), true, 'tcp'],
        ['port 9002', tcp(9002), false, 'tcp'],
      ]);
    });
    describe('ALLOW methods GET on port 9000 (the rule becomes invalid for TCP)', () => {
      verdicts(policy('ALLOW', '        methods: ["GET"]\n        ports: ["9000"]\n'), [
        ['port 9000', tcp(9000), false, 'tcp'],
        ['port 9001', tcp(9001), false, 'tcp'],
      ]);
    });
    describe('DENY methods GET (HTTP-only: denies all TCP traffic)', () => {
      verdicts(policy('DENY', '        methods: ["GET"]\n'), [
        ['port 9000', tcp(9000), false, 'tcp'],
        ['port 9001', tcp(9001), false, 'tcp'],
      ]);
    });
    describe('DENY methods GET on port 9000', () => {
      verdicts(policy('DENY', '        methods: ["GET"]\n        ports: ["9000"]\n'), [
        ['port 9000', tcp(9000), false, 'tcp'],
        ['port 9001', tcp(9001), true, 'tcp'],
      ]);
    });
  });

  // https://istio.io/latest/docs/ops/configuration/security/security-policy-examples/
  describe('security policy examples', () => {
    describe('namespace isolation', () => {
      verdicts(doc('foo-isolation', '  action: ALLOW\n  rules:\n  - from:\n    - source:\n        namespaces: ["foo"]\n'), [
        ['from foo', { principal: FOO }, true],
        ['from default', { principal: SLEEP }, false],
        ['plaintext', { principal: null }, false],
      ]);
    });
    describe('namespace isolation with ingress exception (ALLOW)', () => {
      verdicts(doc('ns-isolation-except-ingress', '  action: ALLOW\n  rules:\n  - from:\n    - source:\n        namespaces: ["foo"]\n    - source:\n        principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]\n'), [
        ['from foo', { principal: FOO }, true],
        ['from the ingress gateway', { principal: INGRESS }, true],
        ['from default', { principal: SLEEP }, false],
      ]);
    });
    describe('require mTLS (DENY notPrincipals *)', () => {
      verdicts(doc('require-mtls', '  action: DENY\n  rules:\n  - from:\n    - source:\n        notPrincipals: ["*"]\n'), [
        ['an mTLS request', {}, true],
        ['a plaintext request', { principal: null }, false],
        ['a plaintext TCP connection', { principal: null, http: false }, false, 'tcp'],
        ['a plaintext connection', { principal: null }, false, 'connection'],
      ]);
    });
    describe('require JWT (DENY notRequestPrincipals *): denies everything in Palisade', () => {
      verdicts(doc('require-jwt', '  action: DENY\n  rules:\n  - from:\n    - source:\n        notRequestPrincipals: ["*"]\n'), [['an mTLS request without a JWT', {}, false]]);
    });
    describe('namespace isolation except ingress (DENY notNamespaces + notPrincipals)', () => {
      verdicts(doc('ns-isolation-except-ingress', '  action: DENY\n  rules:\n  - from:\n    - source:\n        notNamespaces: ["foo"]\n        notPrincipals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]\n'), [
        ['from foo', { principal: FOO }, true],
        ['from the ingress gateway', { principal: INGRESS }, true],
        ['from default', { principal: SLEEP }, false],
        ['plaintext', { principal: null }, false],
      ]);
    });
  });

  // https://istio.io/latest/docs/ops/best-practices/security/#use-allow-with-positive-matching-and-deny-with-negative-match-patterns
  describe('best practices: ALLOW-with-positive-matching and DENY-with-negative-matching agree', () => {
    const allow = indexOf(doc('foo', '  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        paths: ["/public"]\n'));
    const deny = indexOf(doc('foo', '  action: DENY\n  rules:\n  - to:\n    - operation:\n        notPaths: ["/public"]\n'));
    for (const path of ['/public', '/public/', '/private', '/PUBLIC']) {
      it(`on ${path}`, () => {
        const a = authorize(request({ path }), allow, 'request').allowed;
        assert.equal(a, path === '/public');
        assert.equal(authorize(request({ path }), deny, 'request').allowed, a);
      });
    }
  });

  // https://istio.io/latest/docs/ops/best-practices/security/#writing-host-match-policies
  describe('best practices: host match with and without port', () => {
    verdicts(doc('ingress-host', '  action: DENY\n  rules:\n  - to:\n    - operation:\n        hosts: ["example.com", "example.com:*"]\n'), [
      ['example.com', { host: 'example.com' }, false],
      ['example.com:8080', { host: 'example.com:8080' }, false],
      ['EXAMPLE.com (normalized lowercase by the proxy)', { host: 'example.com' }, false],
      ['www.example.com', { host: 'www.example.com' }, true],
    ]);
  });

  // Istio tests/integration/security/authz_test.go TestAuthz_PathTemplating (and the Operation.paths reference).
  describe('path templates (Istio integration test TestAuthz_PathTemplating)', () => {
    verdicts(doc('path-templating', '  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        paths: ["/allow/admin/{**}", "/foo/{*}/bar/{**}", "/store/{**}/cart"]\n'), [
      ['/allow/admin/', { path: '/allow/admin/' }, true],
      ['/allow/admin (no trailing "/")', { path: '/allow/admin' }, false],
      ['/allow/user/', { path: '/allow/user/' }, false],
      ['/allow', { path: '/allow' }, false],
      ['/allow/admin/temp', { path: '/allow/admin/temp' }, true],
      ['/allow/admin/temp.txt', { path: '/allow/admin/temp.txt' }, true],
      ['/allow/admin/foo/temp.txt', { path: '/allow/admin/foo/temp.txt' }, true],
      ['/foo/buzz/bar/bat.txt', { path: '/foo/buzz/bar/bat.txt' }, true],
      ['/foo/buzz/bar/bat.temp.txt', { path: '/foo/buzz/bar/bat.temp.txt' }, true],
      ['/foo/buzz/bar/bat/fuzz.txt', { path: '/foo/buzz/bar/bat/fuzz.txt' }, true],
      ['/foo/bar/bat.txt', { path: '/foo/bar/bat.txt' }, false],
      ['/foo//bar/bat.txt', { path: '/foo//bar/bat.txt' }, false],
      ['/foo/buzz/bar/bat', { path: '/foo/buzz/bar/bat' }, true],
      ['/store//cart', { path: '/store//cart' }, true],
      ['/store/cart', { path: '/store/cart' }, false],
      ['/store/foo/cart', { path: '/store/foo/cart' }, true],
      ['/store/foo/bar/cart', { path: '/store/foo/bar/cart' }, true],
    ]);
  });
});
