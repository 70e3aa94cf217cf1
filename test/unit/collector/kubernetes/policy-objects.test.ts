import { strict as assert } from 'node:assert';
import { parse } from 'yaml';
import { APPLIED_BY, appliedThroughCollector, meshRouteOf, policyFileOf, policyObjectOf, POLICY_RESOURCES, type PolicyObject } from '../../../../collector/kubernetes/policy-objects';
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

describe('policyObjectOf (a policy as the object written to the API) and back', function () {
  const resource = (kind: string): (typeof POLICY_RESOURCES)[number] => POLICY_RESOURCES.find((r) => r.kind === kind)!;
  /** The manifest the policy parser keeps for `yaml` (what the collector stores and writes). */
  const manifestOf = (yaml: string): Record<string, unknown> => {
    const r = parsePolicies(yaml, 'f.yaml');
    assert.deepEqual(r.problems, []);
    assert.equal(r.policies.length, 1);
    return r.policies[0]!.manifest as Record<string, unknown>;
  };
  const cases: Array<[string, string, string]> = [
    ['AuthorizationPolicy (v1beta1 file, the cluster serves v1)', 'security.istio.io/v1', 'apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: shop, labels: {team: a}, annotations: {note: x}}\nspec:\n  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules: [{to: [{operation: {paths: [/admin]}}]}]\n'],
    ['EgressPolicy', 'palisade.dev/v1', 'apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: out, namespace: shop, labels: {palisade.dev/managed-by: cli}}\nspec:\n  selector: {matchLabels: {app: web}}\n  allow: [{hosts: [api.example.com], ports: [443]}]\n'],
    ['FaultInjection', 'palisade.dev/v1', 'apiVersion: palisade.dev/v1\nkind: FaultInjection\nmetadata: {name: chaos, namespace: shop}\nspec:\n  abort: {httpStatus: 503, percentage: {value: 2.5}}\n'],
    ['HTTPRoute', 'gateway.networking.k8s.io/v1', 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: canary, namespace: shop}\nspec:\n  parentRefs: [{group: "", kind: Service, name: web, port: 80}]\n  rules:\n  - backendRefs: [{name: web-v1, port: 80, weight: 90}, {name: web-v2, port: 80, weight: 10}]\n'],
    ['GRPCRoute', 'gateway.networking.k8s.io/v1', 'apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: greeter, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, name: greeter}]\n  rules:\n  - backendRefs: [{name: greeter-v1, port: 50051}]\n'],
    ['DestinationRule', 'networking.istio.io/v1', 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\nspec:\n  host: web\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n'],
  ];
  for (const [name, served, yaml] of cases) {
    it(`${name}: written at the served version, marked, and read back as the same policy`, function () {
      const manifest = manifestOf(yaml);
      const r = resource(manifest.kind as string);
      const object = policyObjectOf(manifest, r, served, 'admin:0123abcd via collector-0');
      assert.equal(object.apiVersion, served);
      assert.equal(object.kind, r.kind);
      assert.equal(object.metadata?.annotations?.[APPLIED_BY], 'admin:0123abcd via collector-0');
      assert.ok(appliedThroughCollector(object));
      assert.equal(object.metadata?.resourceVersion, undefined, 'a create names no resourceVersion');
      const file = policyFileOf(meshRouteOf(object, r)!, r)!;
      assert.equal(file.source, `${r.kind} shop/${(manifest.metadata as { name: string }).name}`);
      assert.deepEqual(manifestOf(file.text), { ...manifest, apiVersion: served }, 'the round trip keeps the policy (the mark is not part of it)');
    });
  }

  it('an update keeps the object\'s metadata (its resourceVersion, kubectl\'s copy) but takes the policy\'s labels and annotations', function () {
    const manifest = manifestOf(cases[0]![2]);
    const existing: PolicyObject = {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'deny-admin', namespace: 'shop', uid: 'u-1', resourceVersion: '42', labels: { old: 'y' }, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', stale: 'z', [APPLIED_BY]: 'admin:ffff via collector-1' } },
      spec: { action: 'ALLOW' },
    };
    const object = policyObjectOf(manifest, resource('AuthorizationPolicy'), 'security.istio.io/v1', 'admin:0123abcd via collector-0', existing);
    assert.deepEqual(object.metadata, {
      name: 'deny-admin',
      namespace: 'shop',
      uid: 'u-1',
      resourceVersion: '42',
      labels: { team: 'a' },
      annotations: { note: 'x', 'kubectl.kubernetes.io/last-applied-configuration': '{}', [APPLIED_BY]: 'admin:0123abcd via collector-0' },
    });
    assert.deepEqual(object.spec, manifest.spec);
  });

  it('an update of a route keeps the parentRefs naming no Service (a gateway\'s, which the mesh never read)', function () {
    const manifest = manifestOf(cases[3]![2]);
    const gw = { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'ingress' };
    const existing: PolicyObject = { metadata: { name: 'canary', namespace: 'shop', resourceVersion: '7' }, spec: { parentRefs: [gw, { kind: 'Service', name: 'old' }] } };
    const object = policyObjectOf(manifest, resource('HTTPRoute'), 'gateway.networking.k8s.io/v1', 'a via b', existing);
    assert.deepEqual((object.spec as { parentRefs: unknown[] }).parentRefs, [{ group: '', kind: 'Service', name: 'web', port: 80 }, gw]);
    assert.deepEqual(manifestOf(policyFileOf(meshRouteOf(object, resource('HTTPRoute'))!, resource('HTTPRoute'))!.text).spec, manifest.spec, 'the mesh reads the policy\'s parents only');
  });

  it('an object kubectl made (no mark) is not the collector\'s', function () {
    assert.equal(appliedThroughCollector({ metadata: { name: 'x', namespace: 'y', annotations: { note: 'x' } } }), false);
    assert.equal(appliedThroughCollector(undefined), false);
  });
});
