/**
 * Every field of an AuthorizationPolicy rule, and its `not` form, against requests. Semantics per
 * istio.io "Authorization Policy" reference (Rule, Source, Operation, Condition) and the Envoy
 * RBAC config Istio generates (pilot/pkg/security/authz/model, matcher).
 */
import { strict as assert } from 'node:assert';
import { ruleMatches, type RequestSpec } from './helpers';

type Row = [string, string, RequestSpec, boolean];

function table(rows: Row[]): void {
  for (const [what, rule, req, expected] of rows) {
    it(`${expected ? 'matches' : 'does not match'} ${what}`, () => {
      assert.equal(ruleMatches(rule, req), expected, `rule ${rule}`);
    });
  }
}

const src = (fields: string): string => `{from: [{source: {${fields}}}]}`;
const op = (fields: string): string => `{to: [{operation: {${fields}}}]}`;
const when = (key: string, list: string): string => `{when: [{key: "${key}", ${list}}]}`;
const OTHER = 'spiffe://cluster.local/ns/dev/sa/client';
const PLAIN: RequestSpec = { principal: null };

describe('authorize: rule fields', () => {
  describe('principals / notPrincipals', () => {
    table([
      ['an exact principal', src('principals: ["cluster.local/ns/default/sa/sleep"]'), {}, true],
      ['another principal', src('principals: ["cluster.local/ns/default/sa/sleep"]'), { principal: OTHER }, false],
      ['a plaintext peer (principals need mTLS)', src('principals: ["cluster.local/ns/default/sa/sleep"]'), PLAIN, false],
      ['a principal written with spiffe://', src('principals: ["spiffe://cluster.local/ns/default/sa/sleep"]'), {}, true],
      ['a prefix', src('principals: ["cluster.local/ns/default/*"]'), {}, true],
      ['a prefix of another namespace', src('principals: ["cluster.local/ns/dev/*"]'), {}, false],
      ['a suffix', src('principals: ["*/sa/sleep"]'), {}, true],
      ['a suffix of another account', src('principals: ["*/sa/client"]'), {}, false],
      ['"*" with mTLS (any authenticated peer)', src('principals: ["*"]'), {}, true],
      ['"*" without mTLS', src('principals: ["*"]'), PLAIN, false],
      ['one of several (OR)', src('principals: ["a/ns/b/sa/c", "cluster.local/ns/default/sa/sleep"]'), {}, true],
      ['a principal of another trust domain', src('principals: ["other.td/ns/default/sa/sleep"]'), {}, false],
      ['notPrincipals naming the peer', src('notPrincipals: ["cluster.local/ns/default/sa/sleep"]'), {}, false],
      ['notPrincipals naming another peer', src('notPrincipals: ["cluster.local/ns/dev/sa/client"]'), {}, true],
      ['notPrincipals without mTLS (no principal matches none)', src('notPrincipals: ["cluster.local/ns/dev/sa/client"]'), PLAIN, true],
      ['notPrincipals "*" with mTLS', src('notPrincipals: ["*"]'), {}, false],
      ['notPrincipals "*" without mTLS', src('notPrincipals: ["*"]'), PLAIN, true],
    ]);
  });

  describe('namespaces / notNamespaces', () => {
    table([
      ['the peer namespace', src('namespaces: ["default"]'), {}, true],
      ['another namespace', src('namespaces: ["dev"]'), {}, false],
      ['a namespace claimed without mTLS (Istio takes it from the certificate)', src('namespaces: ["default"]'), { principal: null, namespace: 'default' }, false],
      ['a prefix', src('namespaces: ["def*"]'), {}, true],
      ['a suffix', src('namespaces: ["*ult"]'), {}, true],
      ['"*" with mTLS', src('namespaces: ["*"]'), {}, true],
      ['"*" without mTLS', src('namespaces: ["*"]'), PLAIN, false],
      ['notNamespaces naming the peer namespace', src('notNamespaces: ["default"]'), {}, false],
      ['notNamespaces naming another namespace', src('notNamespaces: ["dev"]'), {}, true],
      ['notNamespaces without mTLS', src('notNamespaces: ["default"]'), PLAIN, true],
    ]);
  });

  describe('serviceAccounts / notServiceAccounts', () => {
    const inFoo = 'spiffe://cluster.local/ns/foo/sa/web';
    table([
      ['namespace/account', src('serviceAccounts: ["default/sleep"]'), {}, true],
      ['a bare account in the policy namespace (foo)', src('serviceAccounts: ["web"]'), { principal: inFoo }, true],
      ['a bare account of another namespace', src('serviceAccounts: ["sleep"]'), {}, false],
      ['any trust domain', src('serviceAccounts: ["default/sleep"]'), { principal: 'spiffe://other.td/ns/default/sa/sleep' }, true],
      ['an account that only shares a prefix', src('serviceAccounts: ["default/sle"]'), {}, false],
      ['a plaintext peer', src('serviceAccounts: ["default/sleep"]'), PLAIN, false],
      ['notServiceAccounts naming the peer', src('notServiceAccounts: ["default/sleep"]'), {}, false],
      ['notServiceAccounts naming another', src('notServiceAccounts: ["default/other"]'), {}, true],
      ['notServiceAccounts without mTLS', src('notServiceAccounts: ["default/sleep"]'), PLAIN, true],
    ]);
  });

  describe('trustDomains / notTrustDomains', () => {
    table([
      ['the trust domain', src('trustDomains: ["cluster.local"]'), {}, true],
      ['another trust domain', src('trustDomains: ["prod.example"]'), {}, false],
      ['a suffix', src('trustDomains: ["*.local"]'), {}, true],
      ['a prefix', src('trustDomains: ["cluster*"]'), {}, true],
      ['"*" with mTLS', src('trustDomains: ["*"]'), {}, true],
      ['"*" without mTLS', src('trustDomains: ["*"]'), PLAIN, false],
      ['notTrustDomains naming it', src('notTrustDomains: ["cluster.local"]'), {}, false],
      ['notTrustDomains naming another', src('notTrustDomains: ["prod.example"]'), {}, true],
    ]);
  });

  describe('requestPrincipals / notRequestPrincipals (no JWT in Palisade: always absent)', () => {
    table([
      ['requestPrincipals "*"', src('requestPrincipals: ["*"]'), {}, false],
      ['requestPrincipals naming one', src('requestPrincipals: ["https://issuer/sub"]'), {}, false],
      ['notRequestPrincipals "*"', src('notRequestPrincipals: ["*"]'), {}, true],
      ['notRequestPrincipals naming one', src('notRequestPrincipals: ["https://issuer/sub"]'), {}, true],
    ]);
  });

  describe('ipBlocks / notIpBlocks / remoteIpBlocks / notRemoteIpBlocks', () => {
    table([
      ['a source in the block', src('ipBlocks: ["10.1.0.0/16"]'), { sourceIp: '10.1.2.3' }, true],
      ['a source outside the block', src('ipBlocks: ["10.1.0.0/16"]'), { sourceIp: '10.2.0.1' }, false],
      ['a single address', src('ipBlocks: ["10.1.0.5"]'), { sourceIp: '10.1.0.5' }, true],
      ['a different single address', src('ipBlocks: ["10.1.0.5"]'), { sourceIp: '10.1.0.6' }, false],
      ['/0', src('ipBlocks: ["0.0.0.0/0"]'), { sourceIp: '192.0.2.1' }, true],
      ['an IPv4-mapped IPv6 source in an IPv4 block', src('ipBlocks: ["10.1.0.0/16"]'), { sourceIp: '::ffff:10.1.2.3' }, true],
      ['an IPv6 source in an IPv6 block', src('ipBlocks: ["2001:db8::/32"]'), { sourceIp: '2001:db8:1::7' }, true],
      ['an IPv6 source outside it', src('ipBlocks: ["2001:db8::/32"]'), { sourceIp: '2001:db9::7' }, false],
      ['an IPv4 source in ::/0 (families differ)', src('ipBlocks: ["::/0"]'), { sourceIp: '10.1.2.3' }, false],
      ['an IPv6 /128', src('ipBlocks: ["2001:db8::1"]'), { sourceIp: '2001:DB8:0:0::1' }, true],
      ['a block written as mapped IPv6', src('ipBlocks: ["::ffff:10.1.0.0/112"]'), { sourceIp: '10.1.2.3' }, true],
      ['a source that does not parse', src('ipBlocks: ["0.0.0.0/0"]'), { sourceIp: 'garbage' }, false],
      ['one of several blocks', src('ipBlocks: ["192.168.0.0/16", "10.1.0.0/16"]'), { sourceIp: '10.1.2.3' }, true],
      ['notIpBlocks containing the source', src('notIpBlocks: ["10.1.0.0/16"]'), { sourceIp: '10.1.2.3' }, false],
      ['notIpBlocks not containing it', src('notIpBlocks: ["10.9.0.0/16"]'), { sourceIp: '10.1.2.3' }, true],
      ['remoteIpBlocks (the source: no trusted proxies)', src('remoteIpBlocks: ["10.1.0.0/16"]'), { sourceIp: '10.1.2.3' }, true],
      ['remoteIpBlocks elsewhere', src('remoteIpBlocks: ["10.9.0.0/16"]'), { sourceIp: '10.1.2.3' }, false],
      ['notRemoteIpBlocks containing the source', src('notRemoteIpBlocks: ["10.1.0.0/16"]'), { sourceIp: '10.1.2.3' }, false],
    ]);
  });

  describe('hosts / notHosts', () => {
    // ALLOW rules: Istio's exact, case-insensitive :authority match, port included.
    table([
      ['(ALLOW) the exact host, a port sent: Istio matches the whole authority', op('hosts: ["httpbin.foo"]'), { host: 'httpbin.foo:8000' }, false],
      ['the exact host without a port', op('hosts: ["httpbin.foo"]'), { host: 'httpbin.foo' }, true],
      ['a host in another case', op('hosts: ["HTTPBin.Foo"]'), { host: 'httpbin.foo' }, true],
      ['a host that only starts the same', op('hosts: ["httpbin.foo"]'), { host: 'httpbin.foo.evil' }, false],
      ['a value with a port, same port', op('hosts: ["httpbin.foo:8000"]'), { host: 'httpbin.foo:8000' }, true],
      ['a value with a port, other port', op('hosts: ["httpbin.foo:8000"]'), { host: 'httpbin.foo:9000' }, false],
      ['a value with a port, no port sent', op('hosts: ["httpbin.foo:8000"]'), { host: 'httpbin.foo' }, false],
      ['a value with ":*" (Istio best-practice form)', op('hosts: ["httpbin.foo:*"]'), { host: 'httpbin.foo:8000' }, true],
      ['a suffix, host with a port (the suffix covers the port, as in Istio)', op('hosts: ["*.foo:8000"]'), { host: 'httpbin.foo:8000' }, true],
      ['(ALLOW) a suffix without port, host with a port', op('hosts: ["*.foo"]'), { host: 'httpbin.foo:8000' }, false],
      ['a suffix, other domain', op('hosts: ["*.bar"]'), { host: 'httpbin.foo:8000' }, false],
      ['a prefix', op('hosts: ["httpbin.*"]'), { host: 'httpbin.foo:8000' }, true],
      ['"*"', op('hosts: ["*"]'), {}, true],
      ['(ALLOW) an IPv6 literal host, a port sent', op('hosts: ["[2001:db8::1]"]'), { host: '[2001:db8::1]:8000' }, false],
      ['an IPv6 literal host without a port', op('hosts: ["[2001:db8::1]"]'), { host: '[2001:db8::1]' }, true],
      ['(ALLOW) notHosts naming the host, a port sent: the port is ignored, so it still counts as that host', op('notHosts: ["httpbin.foo"]'), { host: 'httpbin.foo:8000' }, false],
      ['notHosts naming another host', op('notHosts: ["admin.foo"]'), { host: 'httpbin.foo:8000' }, true],
    ]);
    // DENY rules: a port in the Host header must not dodge the rule (Istio would let it).
    const deny = (what: string, rule: string, host: string, expected: boolean): void => {
      it(`(DENY) ${expected ? 'matches' : 'does not match'} ${what}`, () => assert.equal(ruleMatches(rule, { host }, 'DENY'), expected));
    };
    deny('the exact host with a port added', op('hosts: ["httpbin.foo"]'), 'httpbin.foo:8000', true);
    deny('a suffix, host with a port added', op('hosts: ["*.foo"]'), 'httpbin.foo:8000', true);
    deny('an IPv6 literal host with a port added', op('hosts: ["[2001:db8::1]"]'), '[2001:db8::1]:8000', true);
    deny('notHosts naming the host, a port sent: exact, so the port makes it another host and DENY applies', op('notHosts: ["httpbin.foo"]'), 'httpbin.foo:8000', true);
    deny('notHosts naming the host exactly', op('notHosts: ["httpbin.foo"]'), 'httpbin.foo', false);
  });

  describe('ports / notPorts', () => {
    table([
      ['the destination port', op('ports: ["8000"]'), { port: 8000 }, true],
      ['the port as a YAML number', op('ports: [8000]'), { port: 8000 }, true],
      ['another port', op('ports: ["8000"]'), { port: 9000 }, false],
      ['one of several ports', op('ports: ["80", "8000"]'), { port: 8000 }, true],
      ['notPorts naming the port', op('notPorts: ["8000"]'), { port: 8000 }, false],
      ['notPorts naming another', op('notPorts: ["80"]'), { port: 8000 }, true],
    ]);
  });

  describe('methods / notMethods', () => {
    table([
      ['the method', op('methods: ["GET"]'), { method: 'GET' }, true],
      ['another method', op('methods: ["GET"]'), { method: 'POST' }, false],
      ['a method in another case (case-sensitive, like Envoy)', op('methods: ["get"]'), { method: 'GET' }, false],
      ['a prefix', op('methods: ["P*"]'), { method: 'PUT' }, true],
      ['a suffix', op('methods: ["*ST"]'), { method: 'POST' }, true],
      ['"*"', op('methods: ["*"]'), { method: 'DELETE' }, true],
      ['notMethods naming it', op('notMethods: ["GET"]'), { method: 'GET' }, false],
      ['notMethods naming another', op('notMethods: ["GET"]'), { method: 'HEAD' }, true],
    ]);
  });

  describe('paths / notPaths', () => {
    table([
      ['the exact path', op('paths: ["/ip"]'), { path: '/ip' }, true],
      ['a longer path', op('paths: ["/ip"]'), { path: '/ip/x' }, false],
      ['a path in another case (case-sensitive)', op('paths: ["/ip"]'), { path: '/IP' }, false],
      ['a prefix, on the prefix itself', op('paths: ["/info*"]'), { path: '/info' }, true],
      ['a prefix', op('paths: ["/info*"]'), { path: '/info/x' }, true],
      ['a suffix', op('paths: ["*/info"]'), { path: '/a/b/info' }, true],
      ['"*"', op('paths: ["*"]'), { path: '/' }, true],
      ['a template {*}', op('paths: ["/foo/{*}"]'), { path: '/foo/bar' }, true],
      ['a template {*} across segments', op('paths: ["/foo/{*}"]'), { path: '/foo/bar/baz' }, false],
      ['a template {**}', op('paths: ["/foo/{**}"]'), { path: '/foo/bar/baz' }, true],
      ['a template mixed with a plain path', op('paths: ["/x", "/foo/{*}/bar"]'), { path: '/foo/a/bar' }, true],
      ['notPaths naming it', op('notPaths: ["/healthz"]'), { path: '/healthz' }, false],
      ['notPaths naming another', op('notPaths: ["/healthz"]'), { path: '/admin' }, true],
      ['notPaths with a template', op('notPaths: ["/admin/{**}"]'), { path: '/admin/users/1' }, false],
    ]);
  });

  describe('when', () => {
    table([
      ['request.headers[x-token] with the value', when('request.headers[x-token]', 'values: ["admin"]'), { headers: { 'x-token': ['admin'] } }, true],
      ['request.headers[x-token] with another value', when('request.headers[x-token]', 'values: ["admin"]'), { headers: { 'x-token': ['guest'] } }, false],
      ['request.headers[x-token] absent', when('request.headers[x-token]', 'values: ["admin"]'), {}, false],
      ['a header name in another case', when('request.headers[X-Token]', 'values: ["admin"]'), { headers: { 'x-token': ['admin'] } }, true],
      ['a header prefix', when('request.headers[user-agent]', 'values: ["curl/*"]'), { headers: { 'user-agent': ['curl/8.1'] } }, true],
      ['a header value in another case (case-sensitive)', when('request.headers[x-token]', 'values: ["admin"]'), { headers: { 'x-token': ['Admin'] } }, false],
      ['header presence "*", empty value', when('request.headers[x-token]', 'values: ["*"]'), { headers: { 'x-token': [''] } }, true],
      ['header presence "*", absent', when('request.headers[x-token]', 'values: ["*"]'), {}, false],
      ['header notValues, absent', when('request.headers[x-token]', 'notValues: ["admin"]'), {}, true],
      ['header notValues, the value', when('request.headers[x-token]', 'notValues: ["admin"]'), { headers: { 'x-token': ['admin'] } }, false],
      ['header notValues "*", absent', when('request.headers[x-token]', 'notValues: ["*"]'), {}, true],
      ['header notValues "*", present', when('request.headers[x-token]', 'notValues: ["*"]'), { headers: { 'x-token': ['x'] } }, false],
      ['a header named like an Object property', when('request.headers[constructor]', 'values: ["*"]'), {}, false],
      ['values and notValues together', when('request.headers[x-v]', 'values: ["v*"], notValues: ["v2"]'), { headers: { 'x-v': ['v1'] } }, true],
      ['values and notValues together, excluded', when('request.headers[x-v]', 'values: ["v*"], notValues: ["v2"]'), { headers: { 'x-v': ['v2'] } }, false],
      ['source.ip', when('source.ip', 'values: ["10.1.0.0/16"]'), { sourceIp: '10.1.0.5' }, true],
      ['source.ip outside', when('source.ip', 'values: ["10.9.0.0/16"]'), { sourceIp: '10.1.0.5' }, false],
      ['remote.ip', when('remote.ip', 'values: ["10.1.0.5"]'), { sourceIp: '10.1.0.5' }, true],
      ['source.ip notValues', when('source.ip', 'notValues: ["10.1.0.5"]'), { sourceIp: '10.1.0.5' }, false],
      ['destination.ip', when('destination.ip', 'values: ["10.2.0.0/24"]'), { destinationIp: '10.2.0.7' }, true],
      ['destination.ip outside', when('destination.ip', 'values: ["10.3.0.0/24"]'), { destinationIp: '10.2.0.7' }, false],
      ['destination.port', when('destination.port', 'values: ["8000"]'), { port: 8000 }, true],
      ['destination.port other', when('destination.port', 'values: [9000]'), { port: 8000 }, false],
      ['destination.port notValues', when('destination.port', 'notValues: ["8000"]'), { port: 8000 }, false],
      ['source.namespace', when('source.namespace', 'values: ["default"]'), {}, true],
      ['source.namespace without mTLS', when('source.namespace', 'values: ["default"]'), { principal: null, namespace: 'default' }, false],
      ['source.namespace notValues, without mTLS', when('source.namespace', 'notValues: ["default"]'), PLAIN, true],
      ['source.principal', when('source.principal', 'values: ["cluster.local/ns/default/sa/sleep"]'), {}, true],
      ['source.principal other', when('source.principal', 'values: ["cluster.local/ns/dev/*"]'), {}, false],
      ['source.serviceAccount', when('source.serviceAccount', 'values: ["default/sleep"]'), {}, true],
      ['source.trustDomain', when('source.trustDomain', 'values: ["cluster.local"]'), {}, true],
      ['source.trustDomain other', when('source.trustDomain', 'notValues: ["cluster.local"]'), {}, false],
      ['connection.sni', when('connection.sni', 'values: ["*.foo.svc"]'), { sni: 'httpbin.foo.svc' }, true],
      ['connection.sni absent', when('connection.sni', 'values: ["*"]'), {}, false],
      ['connection.sni notValues, absent', when('connection.sni', 'notValues: ["x.foo.svc"]'), {}, true],
      ['request.auth.principal values (no JWT)', when('request.auth.principal', 'values: ["*"]'), {}, false],
      ['request.auth.audiences notValues (no JWT)', when('request.auth.audiences', 'notValues: ["aud"]'), {}, true],
      ['request.auth.presenter values', when('request.auth.presenter', 'values: ["p"]'), {}, false],
      ['request.auth.claims[iss] values', when('request.auth.claims[iss]', 'values: ["https://accounts.google.com"]'), {}, false],
      ['request.auth.claims[a][b] notValues', when('request.auth.claims[a][b]', 'notValues: ["x"]'), {}, true],
    ]);
  });

  describe('combining', () => {
    table([
      ['an empty rule (matches everything)', '{}', PLAIN, true],
      ['any of several sources (OR)', '{from: [{source: {namespaces: [dev]}}, {source: {principals: ["*/sa/sleep"]}}]}', {}, true],
      ['none of several sources', '{from: [{source: {namespaces: [dev]}}, {source: {principals: ["*/sa/x"]}}]}', {}, false],
      ['fields of one source (AND), all hold', src('namespaces: [default], ipBlocks: ["10.1.0.0/16"]'), { sourceIp: '10.1.0.5' }, true],
      ['fields of one source (AND), one fails', src('namespaces: [default], ipBlocks: ["10.9.0.0/16"]'), { sourceIp: '10.1.0.5' }, false],
      ['any of several operations (OR)', '{to: [{operation: {methods: [POST]}}, {operation: {paths: ["/ip"]}}]}', { path: '/ip' }, true],
      ['fields of one operation (AND), one fails', op('methods: [GET], paths: ["/data"]'), { path: '/ip' }, false],
      ['from AND to, both hold', '{from: [{source: {namespaces: [default]}}], to: [{operation: {methods: [GET]}}]}', {}, true],
      ['from AND to, to fails', '{from: [{source: {namespaces: [default]}}], to: [{operation: {methods: [POST]}}]}', {}, false],
      ['when conditions (AND), all hold', '{when: [{key: source.ip, values: ["10.1.0.5"]}, {key: destination.port, values: ["8000"]}]}', {}, true],
      ['when conditions (AND), one fails', '{when: [{key: source.ip, values: ["10.1.0.5"]}, {key: destination.port, values: ["80"]}]}', {}, false],
      ['positive and negative fields together', op('paths: ["/api/*"], notPaths: ["/api/admin*"]'), { path: '/api/admin/x' }, false],
    ]);
  });
});
