import { strict as assert } from 'node:assert';
import { apiWritesOf, storeOf, withKubernetesPolicies } from '../../../../collector/policies/kubernetes-policies';
import type { StoredPolicy } from '../../../../collector/policies/repository';
import { compilePolicyFiles } from '../../../../common/policy';

const doc = (name: string): string => `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}, namespace: shop}\nspec: {action: DENY, rules: [{}]}\n`;
const stored = (name: string, origin: StoredPolicy['origin'], id: number): StoredPolicy => ({ id, version: 1, kind: 'AuthorizationPolicy', namespace: 'shop', name, origin, manifest: {} });

describe('withKubernetesPolicies', function () {
  it('replaces what the API owned, takes over CLI-created policies, leaves the policy directory\'s in force', function () {
    const current = [stored('old-k8s', 'kubernetes', 1), stored('from-cli', 'api', 2), stored('from-dir', 'dir', 3), stored('cli-only', 'api', 4)];
    const set = compilePolicyFiles(['from-cli', 'from-dir', 'new-k8s'].map((n) => ({ source: `AuthorizationPolicy shop/${n}`, text: doc(n) })));
    const r = withKubernetesPolicies(set, current);
    assert.deepEqual(r.next.map((p) => `${p.name}:${p.origin}`).sort(), ['cli-only:api', 'from-cli:kubernetes', 'from-dir:dir', 'new-k8s:kubernetes']);
    assert.deepEqual(r.takenOver.map((p) => p.name), ['from-cli']);
    assert.deepEqual(r.shadowed, ['AuthorizationPolicy shop/from-dir']);
    assert.equal(r.next.find((p) => p.name === 'new-k8s')!.file, 'AuthorizationPolicy shop/new-k8s');
  });
});

describe('apiWritesOf', function () {
  const id = (name: string) => ({ kind: 'AuthorizationPolicy' as const, namespace: 'shop', name });
  const want = (name: string): StoredPolicy => ({ ...stored(name, 'api', 0), manifest: { kind: 'AuthorizationPolicy', metadata: { name } } });
  const cases: Array<[string, Array<{ op: 'create' | 'update' | 'delete' | 'unchanged'; name: string }>, string[]]> = [
    ['a create and an update are puts of the manifests in the next set, in the plan\'s order', [{ op: 'create', name: 'a' }, { op: 'update', name: 'b' }], ['put a {"kind":"AuthorizationPolicy","metadata":{"name":"a"}}', 'put b {"kind":"AuthorizationPolicy","metadata":{"name":"b"}}']],
    ['a delete names the object only', [{ op: 'delete', name: 'gone' }], ['delete gone']],
    ['unchanged policies write nothing', [{ op: 'unchanged', name: 'a' }, { op: 'create', name: 'b' }], ['put b {"kind":"AuthorizationPolicy","metadata":{"name":"b"}}']],
  ];
  for (const [name, changes, writes] of cases) {
    it(name, function () {
      const next = ['a', 'b'].map(want);
      const got = apiWritesOf(changes.map((c) => ({ op: c.op, ...id(c.name) })), next);
      assert.deepEqual(got.map((w) => `${w.op} ${w.name}${w.manifest ? ` ${JSON.stringify(w.manifest)}` : ''}`), writes);
    });
  }
});

describe('storeOf: where a change made in Kubernetes mode is stored', function () {
  // The cluster serves AuthorizationPolicy and EgressPolicy, not HTTPRoute; it holds shop/held only.
  const cluster = {
    served: (kind: string): boolean | undefined => (kind === 'HTTPRoute' ? false : kind === 'GRPCRoute' ? undefined : true),
    holds: (p: { name: string }): boolean => p.name === 'held',
  };
  const c = (op: 'create' | 'update' | 'delete' | 'unchanged', kind: string, name: string) => ({ op, kind: kind as 'AuthorizationPolicy', namespace: 'shop', name });
  const cases: Array<[string, ReturnType<typeof c>[], { where: 'api' | 'local'; unserved: string[] } | RegExp]> = [
    ['puts of served kinds: the API', [c('create', 'AuthorizationPolicy', 'a'), c('update', 'EgressPolicy', 'e')], { where: 'api', unserved: [] }],
    ['a kind not known yet: the API (which refuses it until listed)', [c('create', 'GRPCRoute', 'g')], { where: 'api', unserved: [] }],
    ['the delete of an object the API holds: the API', [c('delete', 'AuthorizationPolicy', 'held')], { where: 'api', unserved: [] }],
    ['the delete of this replica\'s own policy: here', [c('delete', 'AuthorizationPolicy', 'mine')], { where: 'local', unserved: [] }],
    ['only kinds the cluster does not serve: here, named', [c('create', 'HTTPRoute', 'r'), c('unchanged', 'AuthorizationPolicy', 'a')], { where: 'local', unserved: ['HTTPRoute'] }],
    ['both: refused, naming what would stay here', [c('create', 'AuthorizationPolicy', 'a'), c('create', 'HTTPRoute', 'r')], /^HTTPRoute shop\/r: kept at this collector only \(the cluster serves no HTTPRoute: its CRD is not installed\), while the rest/],
  ];
  for (const [name, changes, want] of cases) {
    it(name, function () {
      if (want instanceof RegExp) assert.throws(() => storeOf(changes, cluster), (e: Error & { code?: string }) => e.code === 'PALISADE_ERR_INVALID_ARGUMENT' && want.test(e.message));
      else assert.deepEqual(storeOf(changes, cluster), want);
    });
  }
});
