/**
 * A change's set compiled and checked in the policy worker (set-check.ts): every problem as
 * compiling it on the collector's thread says it, routes' Services and FaultInjections checked
 * only for what the change brings, and the answer the digest the collector would make itself.
 */
import { strict as assert } from 'node:assert';
import { CompiledPolicies } from '../../../../collector/policies/compiled-set';
import { manifestText } from '../../../../collector/policies/manifest-text';
import { PolicyParser } from '../../../../collector/policies/policy-parser';
import { desiredPolicy, policyKey, type DesiredPolicy } from '../../../../collector/policies/repository';
import { SetChecker } from '../../../../collector/policies/set-check';
import { authorizationSelecting, digestOf } from '../../../../collector/policies/set-digest';
import { toWire } from '../../../../collector/policies/wire';
import { silentLogger } from '../../../../common/log';
import { threadCpu } from '../../../bench/loop/thread-cpu';
import type { RegistryService } from '../../../../common/mesh-protocol';
import { allOf, compilePolicyFiles, PolicyInvalidError } from '../../../../common/policy';

const svc = (name: string, port = 80): RegistryService => ({ namespace: 'shop', name, vips: ['10.96.0.1'], ports: [{ name: '', port }], endpoints: [] });
const AUTHZ = (name: string, action: string, app?: string): string =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}, namespace: shop}\nspec:\n${app ? `  selector: {matchLabels: {app: ${app}}}\n` : ''}  action: ${action}\n  rules: [{from: [{source: {namespaces: [ops]}}]}]\n`;
const EGRESS = 'apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: out, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  allow: [{hosts: [a.example.com, "*.b.example.com"], ports: [443]}]\n  deny: [{cidrs: [10.0.0.0/8]}]\n';
const FAULT = 'apiVersion: palisade.dev/v1\nkind: FaultInjection\nmetadata: {name: slow, namespace: shop}\nspec:\n  delay: {fixedDelay: 1s, percentage: {value: 10}}\n';
const ROUTE = (backend: string, fault = false): string =>
  `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: canary, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, name: web, port: 80}]\n  rules:\n  - backendRefs: [{name: ${backend}, port: 80}]\n` +
  (fault ? '    filters: [{type: ExtensionRef, extensionRef: {group: palisade.dev, kind: FaultInjection, name: slow}}]\n' : '');

/** The policies of `yaml` as a change from the API brings them. */
const desired = (...yaml: string[]): DesiredPolicy[] => allOf(compilePolicyFiles([{ source: 'p.yaml', text: yaml.join('---\n') }])).map((p) => desiredPolicy(p, 'api'));
const job = (next: DesiredPolicy[], incoming: DesiredPolicy[] = next, services?: RegistryService[]): Parameters<SetChecker['check']>[0] => ({
  next: toWire(next),
  incoming: incoming.map(policyKey),
  ...(services ? { services } : {}),
});

describe('set-check: a change\'s set checked in the policy worker', function () {
  this.timeout(60_000);

  it('answers the digest the collector would make of the set compiled on its own thread', () => {
    const next = desired(AUTHZ('deny-all', 'DENY'), AUTHZ('allow-web', 'ALLOW', 'web'), AUTHZ('audit-db', 'AUDIT', 'db'), EGRESS);
    const here = CompiledPolicies.of(next);
    assert.deepEqual(new SetChecker().check(job(next)), digestOf(here.set, here.index));
  });

  it('the digest selects as the compiled index does: DENY, ALLOW, AUDIT for a workload', () => {
    const next = desired(AUTHZ('deny-all', 'DENY'), AUTHZ('allow-web', 'ALLOW', 'web'), AUTHZ('audit-db', 'AUDIT', 'db'));
    const here = CompiledPolicies.of(next);
    const digest = new SetChecker().check(job(next));
    for (const labels of [{ app: 'web' }, { app: 'db' }, {}] as Array<Record<string, string>>) {
      const p = here.index.policies({ namespace: 'shop', labels });
      assert.deepEqual(
        authorizationSelecting(digest, { namespace: 'shop', labels }).map((x) => x.name),
        [...p.deny, ...p.allow, ...p.audit].map((x) => x.name),
      );
    }
  });

  const ROUTES: Array<[string, DesiredPolicy[], DesiredPolicy[], RegistryService[], string[]]> = [
    ['a route to known Services', desired(ROUTE('web-v1')), desired(ROUTE('web-v1')), [svc('web'), svc('web-v1')], []],
    ['a route to an unknown Service: one line', desired(ROUTE('web-v3')), desired(ROUTE('web-v3')), [svc('web'), svc('web-v1')], ['api:HTTPRoute/shop/canary:1: HTTPRoute shop/canary: spec.rules[0].backendRefs[0]: unknown Service shop/web-v3 (palisade status lists the services)']],
    ['a route naming a FaultInjection brought with it', desired(ROUTE('web-v1', true), FAULT), desired(ROUTE('web-v1', true), FAULT), [svc('web'), svc('web-v1')], []],
    ['a route naming a FaultInjection already in force', desired(ROUTE('web-v1', true), FAULT), desired(ROUTE('web-v1', true)), [svc('web'), svc('web-v1')], []],
    ['a route naming a FaultInjection not in force', desired(ROUTE('web-v1', true)), desired(ROUTE('web-v1', true)), [svc('web'), svc('web-v1')], ['api:HTTPRoute/shop/canary:1: HTTPRoute shop/canary: spec.rules[0].filters[0].extensionRef: no FaultInjection shop/slow (apply it first, or with the route)']],
    ['a route in force, not brought by the change, is not checked again', desired(ROUTE('web-v3'), EGRESS), desired(EGRESS), [svc('web')], []],
  ];
  for (const [what, next, incoming, services, problems] of ROUTES) {
    it(what, () => {
      const check = (): unknown => new SetChecker().check(job(next, incoming, services));
      if (problems.length === 0) assert.doesNotThrow(check);
      else assert.throws(check, (e: unknown) => e instanceof PolicyInvalidError && assert.deepEqual(e.problems, problems) === undefined);
    });
  }

  it('reuses what it compiled last: a change compiles only the policies it brings', () => {
    const checker = new SetChecker();
    const before = desired(AUTHZ('a', 'ALLOW', 'web'), AUTHZ('b', 'ALLOW', 'db'));
    checker.check(job(before));
    const after = [before[0]!, ...desired(AUTHZ('b', 'DENY', 'db'))];
    const seen = new Set<string>();
    const original = CompiledPolicies.prototype.with;
    const counting = function (this: CompiledPolicies, policies: readonly DesiredPolicy[], ...reuse: readonly CompiledPolicies[]): CompiledPolicies {
      for (const p of policies) if (![this, ...reuse].some((pool) => pool.entry(`api:${policyKey(p)}`)?.file.text === manifestText(p.manifest))) seen.add(p.name);
      return original.call(this, policies, ...reuse);
    };
    CompiledPolicies.prototype.with = counting;
    try {
      const digest = checker.check(job(after, after.slice(1)));
      assert.deepEqual(digest.authorization.map((p) => [p.name, p.action]), [['a', 'ALLOW'], ['b', 'DENY']]);
    } finally {
      CompiledPolicies.prototype.with = original;
    }
    assert.deepEqual([...seen], ['b'], 'only the changed policy is new to the worker');
  });

  it('through the worker thread: problems as PolicyInvalidError, the services sent only when the change routes', async () => {
    const parser = new PolicyParser({ log: silentLogger() });
    try {
      let asked = 0;
      const services = (): RegistryService[] => {
        asked++;
        return [svc('web'), svc('web-v1')];
      };
      const next = desired(AUTHZ('a', 'ALLOW', 'web'));
      const digest = await parser.check(next, { keys: next.map(policyKey), kinds: ['AuthorizationPolicy'] }, services);
      assert.deepEqual(digest.authorization.map((p) => p.name), ['a']);
      assert.equal(asked, 0, 'no route: the registry\'s services are not sent');
      const bad = desired(ROUTE('web-v3'));
      await assert.rejects(
        parser.check(bad, { keys: bad.map(policyKey), kinds: ['HTTPRoute'] }, services),
        (e: unknown) => e instanceof PolicyInvalidError && e.problems.length === 1 && /unknown Service shop\/web-v3/.test(e.problems[0]!),
      );
      assert.equal(asked, 1);
    } finally {
      await parser.close();
    }
  });
});

describe('the policy worker', function () {
  this.timeout(60_000);

  it('is started warm and named policy-worker in /proc (the benches tell its CPU from the collector\'s), gone once closed', async () => {
    const parser = new PolicyParser({ log: silentLogger() });
    try {
      parser.warm(desired(AUTHZ('a', 'ALLOW', 'web')));
      // warming starts the thread now, not at the first change (its name is set as it starts)
      for (let i = 0; i < 200 && !threadCpu().has('policy-worker'); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(threadCpu().has('policy-worker'), `threads: ${[...threadCpu().keys()].join(', ')}`);
    } finally {
      await parser.close();
    }
    assert.ok(!threadCpu().has('policy-worker'), `threads after close: ${[...threadCpu().keys()].join(', ')}`);
  });
});
