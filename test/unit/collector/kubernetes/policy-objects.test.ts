import { strict as assert } from 'node:assert';
import { parse } from 'yaml';
import { meshRouteOf, policyFileOf, POLICY_RESOURCES } from '../../../../collector/kubernetes/policy-objects';
import { parsePolicies } from '../../../../common/policy';

const [AP, EGP] = POLICY_RESOURCES as [(typeof POLICY_RESOURCES)[number], (typeof POLICY_RESOURCES)[number]];

describe('policyFileOf', function () {
  it('writes the object as the document a user applied: server fields and kubectl\'s last-applied copy left out, the rest kept', function () {
    const file = policyFileOf(
      {
        apiVersion: 'security.istio.io/v1beta1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'deny', namespace: 'shop', uid: 'u', generation: 3, resourceVersion: '9', labels: { team: 'a' }, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":1}', note: 'x' } },
        spec: { action: 'DENY', rules: [{}] },
      },
      AP,
    )!;
    assert.equal(file.source, 'AuthorizationPolicy shop/deny');
    assert.deepEqual(parse(file.text), {
      apiVersion: 'security.istio.io/v1beta1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'deny', namespace: 'shop', labels: { team: 'a' }, annotations: { note: 'x' } },
      spec: { action: 'DENY', rules: [{}] },
    });
    assert.deepEqual(parsePolicies(file.text, file.source).problems, []);
  });

  it('keeps an annotation the parser refuses (istio.io/dry-run): such a policy is refused, not enforced', function () {
    const file = policyFileOf({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'dry', namespace: 'shop', annotations: { 'istio.io/dry-run': 'true' } }, spec: { action: 'DENY', rules: [{}] } }, AP)!;
    assert.match(parsePolicies(file.text, file.source).problems[0]!, /^AuthorizationPolicy shop\/dry:\d+: .*istio\.io\/dry-run is not supported/);
  });

  it('names problems by kind, namespace and name, with the line in the document', function () {
    const file = policyFileOf({ apiVersion: 'palisade.dev/v1', kind: 'EgressPolicy', metadata: { name: 'out', namespace: 'shop' }, spec: { allow: [{ cidrs: ['10.0.0.0/33'] }] } }, EGP)!;
    assert.match(parsePolicies(file.text, file.source).problems[0]!, /^EgressPolicy shop\/out:\d+: EgressPolicy shop\/out: spec\.allow\[0\]\.cidrs: "10\.0\.0\.0\/33" has an invalid prefix length/);
  });

  it('is undefined for an object without a name or namespace', function () {
    assert.equal(policyFileOf({ metadata: { name: 'x' } }, AP), undefined);
  });
});

describe('meshRouteOf', function () {
  const [HR, GR] = ['HTTPRoute', 'GRPCRoute'].map((k) => POLICY_RESOURCES.find((r) => r.kind === k)!) as [(typeof POLICY_RESOURCES)[number], (typeof POLICY_RESOURCES)[number]];
  const svc = { kind: 'Service', name: 'web' };
  const gw = { name: 'ingress' };
  const route = (parentRefs: unknown): { metadata: { name: string; namespace: string }; spec: { parentRefs?: unknown; rules: unknown[] } } => ({
    metadata: { name: 'r', namespace: 'shop' },
    spec: { ...(parentRefs === undefined ? {} : { parentRefs }), rules: [{}] },
  });
  const cases: Array<[string, (typeof POLICY_RESOURCES)[number], unknown, unknown[] | 'ignored' | 'as is']> = [
    ["a Service parent: the mesh's, as it is", HR, [svc], 'as is'],
    ['group "" and core name a Service too', GR, [{ ...svc, group: '' }, { ...svc, group: 'core', name: 'api' }], 'as is'],
    ["a Gateway parent only (kind defaults to Gateway): a gateway's route, ignored", HR, [gw], 'ignored'],
    ['an explicit Gateway kind: ignored', GR, [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'ingress' }], 'ignored'],
    ['kind Service in another group is not a Service: ignored', HR, [{ kind: 'Service', group: 'example.com', name: 'web' }], 'ignored'],
    ['no parentRefs: attached to nothing, ignored', HR, undefined, 'ignored'],
    ['empty parentRefs: ignored', HR, [], 'ignored'],
    ['a Gateway and a Service: only the Service parent is read', HR, [gw, svc], [svc]],
    ['parentRefs not a list: left for the parser to refuse', HR, 'web', 'as is'],
  ];
  for (const [name, resource, parentRefs, want] of cases) {
    it(name, function () {
      const o = route(parentRefs);
      const got = meshRouteOf(o, resource);
      if (want === 'ignored') assert.equal(got, undefined);
      else if (want === 'as is') assert.equal(got, o);
      else assert.deepEqual(got, { ...o, spec: { ...o.spec, parentRefs: want } });
    });
  }

  it('leaves every policy kind as it is, whatever its spec', function () {
    for (const r of POLICY_RESOURCES.filter((r) => r.kind !== 'HTTPRoute' && r.kind !== 'GRPCRoute')) {
      const o = { metadata: { name: 'x', namespace: 'shop' }, spec: { parentRefs: [gw] } };
      assert.equal(meshRouteOf(o, r), o, r.kind);
    }
  });
});
