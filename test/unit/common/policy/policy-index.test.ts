import { strict as assert } from 'node:assert';
import { compilePolicyFiles, PolicyIndex } from '../../../../common/policy';
import { authzPolicy, indexOf } from './helpers';

const YAML = [
  authzPolicy({ name: 'z-deny', action: 'DENY', rules: ['{from: [{source: {namespaces: [dev]}}]}'] }),
  authzPolicy({ name: 'a-deny', action: 'DENY', selector: '{app: httpbin}', rules: ['{to: [{operation: {methods: [DELETE]}}]}'] }),
  authzPolicy({ name: 'allow', selector: '{app: httpbin}', rules: ['{to: [{operation: {ports: ["8000"]}}]}'] }),
  authzPolicy({ name: 'audit', action: 'AUDIT', selector: '{app: tcp}', rules: ['{}'] }),
  authzPolicy({ name: 'mesh', namespace: 'istio-system', action: 'DENY', selector: '{app: httpbin}', rules: ['{from: [{source: {ipBlocks: ["192.0.2.0/24"]}}]}'] }),
  'apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: out, namespace: foo}\nspec:\n  selector: {matchLabels: {app: httpbin}}\n  allow: [{cidrs: [10.0.0.0/8]}]\n',
].join('---\n');

describe('PolicyIndex', () => {
  const index = indexOf(YAML);

  describe('policies', () => {
    it('splits the selecting policies by action, ordered by namespace then name', () => {
      const wp = index.policies({ namespace: 'foo', labels: { app: 'httpbin' } });
      assert.deepEqual(wp.deny.map((p) => p.id), ['foo/a-deny', 'foo/z-deny', 'istio-system/mesh']);
      assert.deepEqual(wp.allow.map((p) => p.id), ['foo/allow']);
      assert.deepEqual(wp.audit.map((p) => p.id), []);
      assert.deepEqual(wp.egress.map((p) => p.id), ['foo/out']);
    });

    it('gives the same answer for equal label sets in any order, from the cache', () => {
      const a = index.policies({ namespace: 'foo', labels: { app: 'httpbin', version: 'v1' } });
      const b = index.policies({ namespace: 'foo', labels: { version: 'v1', app: 'httpbin' } });
      assert.equal(a, b);
    });

    it('recomputes when the same labels object is used with another namespace', () => {
      const labels = { app: 'httpbin' };
      assert.equal(index.policies({ namespace: 'foo', labels }).allow.length, 1);
      assert.equal(index.policies({ namespace: 'bar', labels }).allow.length, 0);
      assert.equal(index.policies({ namespace: 'foo', labels }).allow.length, 1);
    });

    it('recomputes when a labels object was changed in place (regression: stale cache entry)', () => {
      const labels: Record<string, string> = { app: 'httpbin' };
      const w = { namespace: 'foo', labels };
      assert.equal(index.policies(w).allow.length, 1);
      labels.app = 'tcp';
      assert.equal(index.policies(w).allow.length, 0);
      assert.equal(index.policies(w).audit.length, 1);
      labels.extra = 'x';
      assert.equal(index.policies(w).audit.length, 1);
      delete labels.app;
      assert.equal(index.policies(w).audit.length, 0);
    });

    it('does not let label keys reach Object.prototype', () => {
      const w = { namespace: 'foo', labels: Object.assign(Object.create(null) as Record<string, string>, { app: 'httpbin' }) };
      assert.equal(index.policies(w).allow.length, 1);
      assert.equal(index.policies({ namespace: 'foo', labels: { toString: 'x' } }).allow.length, 0);
    });
  });

  describe('needsHttp', () => {
    it('is true when a selecting policy has an HTTP-only condition', () => {
      assert.equal(index.needsHttp({ namespace: 'foo', labels: { app: 'httpbin' } }), true);
    });
    it('is false when the selecting policies only use connection-level fields', () => {
      assert.equal(index.needsHttp({ namespace: 'foo', labels: { app: 'tcp' } }), false);
      assert.equal(index.needsHttp({ namespace: 'nowhere', labels: {} }), false);
    });
  });

  describe('egressFor', () => {
    it('lists the EgressPolicies selecting the workload', () => {
      assert.deepEqual(index.egressFor({ namespace: 'foo', labels: { app: 'httpbin' } }).map((p) => p.id), ['foo/out']);
      assert.deepEqual(index.egressFor({ namespace: 'foo', labels: { app: 'tcp' } }), []);
    });
  });

  describe('constructor', () => {
    it('takes the root namespace from the options, else from the set, else istio-system', () => {
      const set = compilePolicyFiles([], { rootNamespace: 'from-set' });
      assert.equal(new PolicyIndex(set).rootNamespace, 'from-set');
      assert.equal(new PolicyIndex(set, { rootNamespace: 'from-opts' }).rootNamespace, 'from-opts');
      assert.equal(new PolicyIndex({ authorization: [], egress: [] }).rootNamespace, 'istio-system');
    });

    it('accepts sets merged by concatenation', () => {
      const a = compilePolicyFiles([{ source: 'a.yaml', text: authzPolicy({ name: 'a' }) }]);
      const b = compilePolicyFiles([{ source: 'b.yaml', text: authzPolicy({ name: 'b' }) }]);
      const merged = new PolicyIndex({ authorization: [...a.authorization, ...b.authorization], egress: [] });
      assert.deepEqual(merged.policies({ namespace: 'foo', labels: {} }).allow.map((p) => p.id), ['foo/a', 'foo/b']);
    });
  });
});
