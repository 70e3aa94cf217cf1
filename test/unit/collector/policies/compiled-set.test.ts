import { strict as assert } from 'node:assert';
import { CompiledPolicies, policyFiles } from '../../../../collector/policies/compiled-set';
import { desiredPolicy, type DesiredPolicy } from '../../../../collector/policies/repository';
import { compilePolicyFiles, PolicyInvalidError, type CompiledPolicy, type PolicySet } from '../../../../common/policy';

const authz = (ns: string, name: string, principal: string): string =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  selector: {matchLabels: {app: api}}\n  rules:\n  - from: [{source: {principals: [${principal}]}}]\n`;
const egress = (ns: string, name: string, host: string): string =>
  `apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  allow:\n  - hosts: [${host}]\n`;

/** Desired policies as an apply makes them: compiled from YAML, origin api (or dir). */
function desired(origin: 'api' | 'dir', ...docs: string[]): DesiredPolicy[] {
  const set = compilePolicyFiles([{ source: 'p.yaml', text: docs.join('---\n') }]);
  return [...set.authorization, ...set.egress].map((p) => desiredPolicy(p, origin, origin === 'dir' ? 'p.yaml' : undefined));
}

/** A compiled set as plain data (compiled conditions are closures: compared through what they came from). */
function shape(set: PolicySet): unknown {
  const one = (p: CompiledPolicy): unknown => ({ kind: p.kind, id: p.id, source: p.source, line: p.line, selector: p.selector, manifest: p.manifest });
  return { authorization: set.authorization.map(one), egress: set.egress.map(one), rootNamespace: set.rootNamespace, warnings: set.warnings };
}

/** The problems compiling `policies` as one set reports (none: undefined). */
function problemsOf(compile: () => unknown): readonly string[] | undefined {
  try {
    compile();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof PolicyInvalidError, String(err));
    return err.problems;
  }
}

const A = authz('shop', 'a', 'cluster.local/ns/shop/sa/web');
const A2 = authz('shop', 'a', 'cluster.local/ns/shop/sa/other');
const B = egress('shop', 'b', 'api.example.com');
const C = authz('istio-system', 'c', 'cluster.local/ns/default/sa/sleep');

describe('CompiledPolicies', () => {
  describe('of / with: the set compilePolicyFiles(policyFiles(policies)) gives, in its order', () => {
    const cases: [string, DesiredPolicy[], DesiredPolicy[]][] = [
      ['nothing', [], []],
      ['nothing → some', [], desired('api', A, B)],
      ['a new policy', desired('api', A), desired('api', A, B, C)],
      ['a changed policy', desired('api', A, B), [...desired('api', A2), ...desired('api', B)]],
      ['a deleted policy', desired('api', A, B, C), desired('api', A, C)],
      ['a policy taken over by the policy directory (its source changes)', desired('api', A, B), [...desired('dir', A), ...desired('api', B)]],
      ['egress before authorization in the given order', desired('api', A), [...desired('api', B), ...desired('api', C), ...desired('api', A)]],
    ];
    for (const [what, before, after] of cases) {
      it(what, () => {
        const current = CompiledPolicies.of(before);
        assert.deepEqual(shape(current.set), shape(compilePolicyFiles(policyFiles(before))));
        const next = current.with(after);
        assert.deepEqual(shape(next.set), shape(compilePolicyFiles(policyFiles(after))));
        assert.deepEqual(next.files, policyFiles(after));
        assert.deepEqual(shape(current.set), shape(compilePolicyFiles(policyFiles(before))), 'the current set is unchanged');
      });
    }
  });

  describe('with: compiles only what is new', () => {
    it('keeps the compiled policy of every unchanged file and compiles the changed and added ones', () => {
      const current = CompiledPolicies.of(desired('api', A, B));
      const [a, b] = [current.set.authorization[0]!, current.set.egress[0]!];
      const next = current.with([...desired('api', A2), ...desired('api', B, C)]);
      assert.equal(next.set.egress[0], b, 'B unchanged: the same compiled object');
      assert.notEqual(next.set.authorization[0], a, 'A changed: compiled again');
      assert.equal(next.set.authorization.length, 2);
    });

    it('reuses what another set compiled (the repository keeps the old manifest of an unchanged policy)', () => {
      const before = CompiledPolicies.of(desired('api', A, B));
      const candidate = before.with(desired('api', A, C));
      const stored = [...desired('api', A, B, C)];
      const after = candidate.with(stored, before);
      for (const p of [...after.set.authorization, ...after.set.egress]) {
        assert.ok([...before.set.authorization, ...before.set.egress, ...candidate.set.authorization].includes(p), `${p.id} compiled again`);
      }
    });

    it('keeps the index of a set and builds it from the set', () => {
      const set = CompiledPolicies.of(desired('api', A, B, C));
      assert.equal(set.index, set.index);
      assert.deepEqual(set.index.egress.map((p) => p.id), ['shop/b']);
      assert.equal(set.index.rootNamespace, 'istio-system');
    });
  });

  describe('with: refuses what compiling the whole set refuses, with the same problems', () => {
    const [a] = desired('api', A);
    const [b] = desired('api', B);
    const cases: [string, DesiredPolicy[]][] = [
      ['a stored manifest that no longer validates', [a!, { ...b!, manifest: { ...b!.manifest, spec: { allow: [{ hosts: ['bad host'] }] } } }]],
      ['a manifest defining the same policy as another one', [a!, { ...b!, manifest: a!.manifest }]],
      ['two bad manifests: every problem, in file order', [{ ...a!, manifest: { ...a!.manifest, spec: { action: 'deny' } } }, { ...b!, manifest: { kind: 'EgressPolicy' } }]],
    ];
    for (const [what, policies] of cases) {
      it(what, () => {
        const expected = problemsOf(() => compilePolicyFiles(policyFiles(policies)));
        assert.ok(expected && expected.length > 0, 'the case is invalid as a whole');
        assert.deepEqual(problemsOf(() => CompiledPolicies.EMPTY.with(policies)), expected);
        assert.deepEqual(problemsOf(() => CompiledPolicies.of([a!, b!]).with(policies)), expected, 'also when some files are reused');
      });
    }
  });
});
