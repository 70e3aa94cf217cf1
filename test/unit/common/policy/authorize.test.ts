/**
 * Decision order, policy selection, the three stages and repeated headers. Istio's documented
 * examples are in authorize-istio.test.ts.
 */
import { strict as assert } from 'node:assert';
import { authorize } from '../../../../common/policy';
import { authzPolicy, decide, HTTPBIN, indexOf, request, type RequestSpec } from './helpers';

const DEV = 'spiffe://cluster.local/ns/dev/sa/client';

describe('authorize', () => {
  describe('decision order (DENY, then ALLOW; AUDIT only reports)', () => {
    const allowGet = authzPolicy({ name: 'allow-get', rules: ['{to: [{operation: {methods: [POST]}}]}', '{to: [{operation: {methods: [GET]}}]}'] });
    const denyDev = authzPolicy({ name: 'deny-dev', action: 'DENY', rules: ['{from: [{source: {namespaces: [x]}}]}', '{from: [{source: {namespaces: [dev]}}]}'] });
    const auditAll = authzPolicy({ name: 'audit-b', action: 'AUDIT', rules: ['{}'] });
    const auditGet = authzPolicy({ name: 'audit-a', action: 'AUDIT', rules: ['{to: [{operation: {methods: [GET]}}]}'] });

    it('allows with no-policy when no policy selects the workload', () => {
      assert.deepEqual(decide(allowGet, { workload: { namespace: 'other', labels: {} } }), { allowed: true, reason: 'no-policy' });
    });
    it('reports the ALLOW policy and the index of the rule that matched', () => {
      assert.deepEqual(decide(allowGet, {}), { allowed: true, reason: 'allowed-by-policy', policy: 'foo/allow-get', rule: 1 });
    });
    it('denies with no-allow-policy-matched naming the ALLOW policies when none matches', () => {
      assert.deepEqual(decide(allowGet, { method: 'DELETE' }), { allowed: false, reason: 'no-allow-policy-matched', policy: 'foo/allow-get' });
      const two = `${allowGet}---\n${authzPolicy({ name: 'allow-put', rules: ['{to: [{operation: {methods: [PUT]}}]}'] })}`;
      assert.deepEqual(decide(two, { method: 'DELETE' }), { allowed: false, reason: 'no-allow-policy-matched', policy: 'foo/allow-get,foo/allow-put' });
    });
    it('reports the DENY policy and rule, before any ALLOW', () => {
      assert.deepEqual(decide(`${allowGet}---\n${denyDev}`, { principal: DEV }), { allowed: false, reason: 'denied-by-policy', policy: 'foo/deny-dev', rule: 1 });
    });
    it('allows with no-policy when only DENY policies select the workload and none matches', () => {
      assert.deepEqual(decide(denyDev, {}), { allowed: true, reason: 'no-policy' });
    });
    it('allows if any of several ALLOW policies matches', () => {
      const other = authzPolicy({ name: 'allow-delete', rules: ['{to: [{operation: {methods: [DELETE]}}]}'] });
      assert.deepEqual(decide(`${allowGet}---\n${other}`, { method: 'DELETE' }), { allowed: true, reason: 'allowed-by-policy', policy: 'foo/allow-delete', rule: 0 });
    });
    it('never lets AUDIT change the decision, and reports the first AUDIT policy (by name) that matched', () => {
      const yaml = `${auditAll}---\n${auditGet}`;
      assert.deepEqual(decide(yaml, {}), { allowed: true, reason: 'no-policy', audit: { policy: 'foo/audit-a', rule: 0 } });
      assert.deepEqual(decide(yaml, { method: 'PUT' }), { allowed: true, reason: 'no-policy', audit: { policy: 'foo/audit-b', rule: 0 } });
      assert.deepEqual(decide(`${yaml}---\n${denyDev}`, { principal: DEV }), {
        allowed: false,
        reason: 'denied-by-policy',
        policy: 'foo/deny-dev',
        rule: 1,
        audit: { policy: 'foo/audit-a', rule: 0 },
      });
      assert.deepEqual(decide(`${yaml}---\n${allowGet}`, { method: 'PUT' }), { allowed: false, reason: 'no-allow-policy-matched', policy: 'foo/allow-get', audit: { policy: 'foo/audit-b', rule: 0 } });
    });
  });

  describe('policy selection', () => {
    const selected = (yaml: string, workload: { namespace: string; labels: Record<string, string> }, opts: { rootNamespace?: string } = {}): boolean =>
      !decide(yaml, { workload }, 'request', opts).allowed; // every policy here is allow-nothing
    const nothing = (namespace: string, selector?: string): string => authzPolicy({ name: 'allow-nothing', namespace, ...(selector ? { selector } : {}) });
    const rows: [string, string, { namespace: string; labels: Record<string, string> }, boolean, string?][] = [
      ['a policy without selector: every workload of its namespace', nothing('foo'), { namespace: 'foo', labels: {} }, true],
      ['a policy without selector: not another namespace', nothing('bar'), HTTPBIN, false],
      ['a selector whose labels the workload has', nothing('foo', '{app: httpbin}'), HTTPBIN, true],
      ['a selector with all of several labels', nothing('foo', '{app: httpbin, version: v1}'), HTTPBIN, true],
      ['a selector with a label the workload lacks', nothing('foo', '{app: httpbin, tier: web}'), HTTPBIN, false],
      ['a selector with another value', nothing('foo', '{version: v2}'), HTTPBIN, false],
      ['a root-namespace policy: every namespace', nothing('istio-system', '{version: v1}'), HTTPBIN, true],
      ['a root-namespace policy: still by labels', nothing('istio-system', '{version: v2}'), HTTPBIN, false],
      ['a root-namespace policy without selector: the whole mesh', nothing('istio-system'), { namespace: 'anything', labels: {} }, true],
      ['a configured root namespace', nothing('mesh-root'), HTTPBIN, true, 'mesh-root'],
      ['istio-system when another root is configured', nothing('istio-system'), HTTPBIN, false, 'mesh-root'],
    ];
    for (const [what, yaml, workload, expected, root] of rows) {
      it(`${expected ? 'applies' : 'does not apply'} ${what}`, () => {
        assert.equal(selected(yaml, workload, root ? { rootNamespace: root } : {}), expected);
      });
    }
  });

  describe('stages', () => {
    const tcp: RequestSpec = { http: false };
    describe("'tcp': Istio's TCP semantics (istio.io/latest/docs/tasks/security/authorization/authz-tcp)", () => {
      const rows: [string, string, 'ALLOW' | 'DENY', RequestSpec, boolean][] = [
        ['an ALLOW rule with only TCP fields matches', '{to: [{operation: {ports: ["8000"]}}]}', 'ALLOW', tcp, true],
        ['an ALLOW rule with methods never matches', '{to: [{operation: {methods: [GET], ports: ["8000"]}}]}', 'ALLOW', tcp, false],
        ['an ALLOW rule with notMethods never matches', '{to: [{operation: {notMethods: [GET]}}]}', 'ALLOW', tcp, false],
        ['an ALLOW rule with an HTTP operation among alternatives never matches (the rule is dropped)', '{to: [{operation: {paths: ["/x"]}}, {operation: {ports: ["8000"]}}]}', 'ALLOW', tcp, false],
        ['an ALLOW rule with requestPrincipals never matches', '{from: [{source: {notRequestPrincipals: ["*"]}}]}', 'ALLOW', tcp, false],
        ['an ALLOW rule with a header condition never matches', '{when: [{key: "request.headers[x]", notValues: ["y"]}]}', 'ALLOW', tcp, false],
        ['an ALLOW rule with request.auth.claims never matches', '{when: [{key: "request.auth.claims[iss]", notValues: ["y"]}]}', 'ALLOW', tcp, false],
        ['a DENY rule: HTTP-only conditions hold', '{to: [{operation: {methods: [GET]}}]}', 'DENY', tcp, true],
        ['a DENY rule: negative HTTP-only conditions hold too', '{to: [{operation: {notMethods: [GET], notHosts: ["*"]}}]}', 'DENY', tcp, true],
        ['a DENY rule: the TCP fields still decide', '{to: [{operation: {methods: [GET], ports: ["9000"]}}]}', 'DENY', tcp, false],
        ['a DENY rule: requestPrincipals hold', '{from: [{source: {requestPrincipals: ["*"], namespaces: [default]}}]}', 'DENY', tcp, true],
      ];
      for (const [what, rule, action, spec, expected] of rows) {
        it(what, () => {
          const v = decide(authzPolicy({ action, rules: [rule] }), spec, 'tcp');
          assert.equal(action === 'ALLOW' ? v.allowed : !v.allowed, expected, JSON.stringify(v));
        });
      }
      it('an AUDIT rule: HTTP-only conditions hold, as for DENY (Istio ignores generation errors for AUDIT too)', () => {
        const v = decide(authzPolicy({ action: 'AUDIT', rules: ['{to: [{operation: {methods: [GET]}}]}'] }), tcp, 'tcp');
        assert.deepEqual(v, { allowed: true, reason: 'no-policy', audit: { policy: 'foo/p', rule: 0 } });
      });
      it("evaluates a 'request' without an HTTP part as 'tcp'", () => {
        const yaml = authzPolicy({ action: 'DENY', rules: ['{to: [{operation: {methods: [POST]}}]}'] });
        assert.equal(decide(yaml, tcp, 'request').allowed, false);
        assert.equal(decide(yaml, { method: 'GET' }, 'request').allowed, true);
      });
    });

    describe("'connection': denied only if every request on it would be", () => {
      const rows: [string, string, 'ALLOW' | 'DENY', RequestSpec, boolean][] = [
        ['a DENY with only HTTP conditions does not deny the connection', '{to: [{operation: {methods: [GET]}}]}', 'DENY', {}, true],
        ['a DENY with no HTTP conditions that matches denies it', '{from: [{source: {namespaces: [default]}}]}', 'DENY', {}, false],
        ['a DENY whose non-HTTP alternative matches denies it', '{to: [{operation: {methods: [GET]}}, {operation: {ports: ["8000"]}}]}', 'DENY', {}, false],
        ['a DENY mixing HTTP and TCP conditions in one operation does not', '{to: [{operation: {methods: [GET], ports: ["8000"]}}]}', 'DENY', {}, true],
        ['an ALLOW whose HTTP conditions some request may meet allows it', '{to: [{operation: {methods: [GET], paths: ["/admin"]}}]}', 'ALLOW', {}, true],
        ['an ALLOW whose non-HTTP conditions fail denies it', '{from: [{source: {namespaces: [dev]}}], to: [{operation: {methods: [GET]}}]}', 'ALLOW', {}, false],
        ['an ALLOW with negative HTTP conditions allows it', '{to: [{operation: {notPaths: ["/admin"]}}]}', 'ALLOW', {}, true],
      ];
      for (const [what, rule, action, spec, allowed] of rows) {
        it(what, () => assert.equal(decide(authzPolicy({ action, rules: [rule] }), spec, 'connection').allowed, allowed));
      }
      it('an allow-nothing policy denies it', () => {
        assert.deepEqual(decide(authzPolicy({ name: 'allow-nothing' }), {}, 'connection'), { allowed: false, reason: 'no-allow-policy-matched', policy: 'foo/allow-nothing' });
      });
      it('an AUDIT rule with HTTP conditions is not reported', () => {
        assert.deepEqual(decide(authzPolicy({ action: 'AUDIT', rules: ['{to: [{operation: {methods: [GET]}}]}'] }), {}, 'connection'), { allowed: true, reason: 'no-policy' });
      });
      it('is never stricter than the requests it carries (exhaustive over a mix of policies)', () => {
        const yaml = [
          authzPolicy({ name: 'deny-post-admin', action: 'DENY', rules: ['{to: [{operation: {methods: [POST], paths: ["/admin*"]}}]}'] }),
          authzPolicy({ name: 'deny-no-token', action: 'DENY', rules: ['{to: [{operation: {paths: ["/secure*"]}}], when: [{key: "request.headers[x-token]", notValues: ["ok"]}]}'] }),
          authzPolicy({ name: 'allow-get', rules: ['{from: [{source: {namespaces: [default]}}], to: [{operation: {methods: [GET, HEAD]}}]}', '{to: [{operation: {hosts: ["admin.*"], ports: ["8000"]}}]}'] }),
        ].join('---\n');
        const index = indexOf(yaml);
        for (const principal of [undefined, DEV]) {
          const base = request({ principal: principal ?? null });
          const connection = authorize(base, index, 'connection');
          let anyAllowed = false;
          for (const method of ['GET', 'HEAD', 'POST']) {
            for (const path of ['/', '/admin/x', '/secure']) {
              for (const host of ['httpbin.foo', 'admin.foo']) {
                for (const headers of [{}, { 'x-token': ['ok'] }] as Record<string, string[]>[]) {
                  const v = authorize({ ...base, http: { method, path, host, headers } }, index, 'request');
                  anyAllowed ||= v.allowed;
                }
              }
            }
          }
          assert.equal(connection.allowed, anyAllowed, `principal ${principal}: ${JSON.stringify(connection)}`);
        }
      });
    });
  });

  describe('repeated request headers (fail-safe, see conditions.ts)', () => {
    const rows: [string, string, string[], boolean][] = [
      ['DENY values: any value matching denies', 'DENY', ['evil'], false],
      ['DENY values: a matching value among others denies', 'DENY', ['ok', 'evil'], false],
      ['DENY values: no value matching allows', 'DENY', ['ok', 'fine'], true],
      ['ALLOW values: every value must match', 'ALLOW', ['good', 'good'], true],
      ['ALLOW values: one value not matching denies', 'ALLOW', ['good', 'evil'], false],
    ];
    for (const [what, action, values, allowed] of rows) {
      it(what, () => {
        const value = action === 'DENY' ? 'evil' : 'good';
        const yaml = authzPolicy({ action: action as 'ALLOW' | 'DENY', rules: [`{when: [{key: "request.headers[x-h]", values: ["${value}"]}]}`] });
        assert.equal(decide(yaml, { headers: { 'x-h': values } }).allowed, allowed);
      });
    }
    it('DENY notValues (authz-deny task): any value that is not admin denies', () => {
      const yaml = authzPolicy({ action: 'DENY', rules: ['{when: [{key: "request.headers[x-token]", notValues: ["admin"]}]}'] });
      assert.equal(decide(yaml, { headers: { 'x-token': ['admin'] } }).allowed, true);
      assert.equal(decide(yaml, { headers: { 'x-token': ['admin', 'guest'] } }).allowed, false);
    });
    it('ALLOW notValues: every value must avoid them', () => {
      const yaml = authzPolicy({ rules: ['{when: [{key: "request.headers[x-h]", notValues: ["evil"]}]}'] });
      assert.equal(decide(yaml, { headers: { 'x-h': ['ok', 'fine'] } }).allowed, true);
      assert.equal(decide(yaml, { headers: { 'x-h': ['ok', 'evil'] } }).allowed, false);
    });
    it('AUDIT: every value must match', () => {
      const yaml = authzPolicy({ action: 'AUDIT', rules: ['{when: [{key: "request.headers[x-h]", values: ["a"]}]}'] });
      assert.equal(decide(yaml, { headers: { 'x-h': ['a', 'b'] } }).audit, undefined);
      assert.ok(decide(yaml, { headers: { 'x-h': ['a', 'a'] } }).audit);
    });
  });
});
