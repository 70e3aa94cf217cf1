import { strict as assert } from 'node:assert';
import { parse } from 'yaml';
import { policyFileOf, POLICY_RESOURCES } from '../../../../collector/kubernetes/policy-objects';
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
