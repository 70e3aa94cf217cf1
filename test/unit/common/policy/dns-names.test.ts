import { strict as assert } from 'node:assert';
import { authorizeDnsName, parsePolicies, type DnsNameVerdict, type PolicyWorkload } from '../../../../common/policy';
import { indexOf } from './helpers';

const egress = (name: string, body: string): string =>
  `apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, namespace: shop}\nspec:\n${body}`;

const POLICIES = [
  egress('web-out', '  selector: {matchLabels: {app: web}}\n  dns: Enforce\n  allow:\n  - hosts: [api.stripe.com, "*.googleapis.com"]\n    ports: [443]\n  - cidrs: [10.20.0.0/16]\n'),
  egress('web-deny', '  selector: {matchLabels: {app: web}}\n  deny:\n  - hosts: ["*.pastebin.com"]\n  - hosts: [storage.googleapis.com]\n    ports: [80]\n'),
  egress('api-out', '  selector: {matchLabels: {app: api}}\n  allow:\n  - hosts: [api.stripe.com]\n'),
  egress('batch-deny', '  selector: {matchLabels: {app: batch}}\n  dns: Enforce\n  deny:\n  - hosts: [evil.example]\n'),
].join('---\n');

const WEB: PolicyWorkload = { namespace: 'shop', labels: { app: 'web' } };
const API: PolicyWorkload = { namespace: 'shop', labels: { app: 'api' } };
const BATCH: PolicyWorkload = { namespace: 'shop', labels: { app: 'batch' } };

describe('authorizeDnsName', () => {
  const index = indexOf(POLICIES);
  const rows: Array<[string, PolicyWorkload, string, DnsNameVerdict]> = [
    ['no EgressPolicy selects the workload', { namespace: 'shop', labels: { app: 'other' } }, 'anything.example', { allowed: true }],
    ['an allowlist without dns: Enforce resolves every name', API, 'anything.example', { allowed: true }],
    ['Enforce: a name an allow hosts rule matches (on any port)', WEB, 'api.stripe.com', { allowed: true }],
    ['Enforce: a name a wildcard rule matches, any case, trailing dot', WEB, 'Maps.GoogleAPIs.com.', { allowed: true }],
    ['Enforce: a name no hosts rule matches: NXDOMAIN, naming the enforcing policy', WEB, 'evil.example', { allowed: false, reason: 'host-not-allowed', policy: 'shop/web-out' }],
    ['Enforce: the wildcard\'s own apex is not under it', WEB, 'googleapis.com', { allowed: false, reason: 'host-not-allowed', policy: 'shop/web-out' }],
    ['Enforce: a deny entry for every port refuses, from any selecting policy', WEB, 'x.pastebin.com', { allowed: false, reason: 'denied-by-host', policy: 'shop/web-deny', rule: 0 }],
    ['Enforce: a deny entry for one port leaves the name to the connection', WEB, 'storage.googleapis.com', { allowed: true }],
    ['Enforce on a deny-only policy: its denied names refused', BATCH, 'evil.example', { allowed: false, reason: 'denied-by-host', policy: 'shop/batch-deny', rule: 0 }],
    ['Enforce on a deny-only policy: every other name resolves', BATCH, 'api.stripe.com', { allowed: true }],
  ];
  for (const [what, source, name, want] of rows) it(what, () => assert.deepEqual(authorizeDnsName({ source, name }, index), want));
});

describe('EgressPolicy spec.dns', () => {
  const parse = (body: string) => parsePolicies(egress('p', body), 'p.yaml');

  it('is Resolve unless it says Enforce', () => {
    const p = parse('  allow:\n  - hosts: [a.example]\n').policies[0];
    assert.ok(p?.kind === 'EgressPolicy' && p.dns === 'Resolve');
    const q = parse('  dns: Enforce\n  allow:\n  - hosts: [a.example]\n').policies[0];
    assert.ok(q?.kind === 'EgressPolicy' && q.dns === 'Enforce');
  });

  it('refuses another value in one line, naming the modes', () => {
    assert.deepEqual(parse('  dns: refuse\n  allow:\n  - hosts: [a.example]\n').problems, [
      'p.yaml:5: EgressPolicy shop/p: spec.dns: unknown mode "refuse" (Resolve or Enforce; Enforce answers NXDOMAIN for names the policy never allows)',
    ]);
    assert.match(parse('  dns: [Enforce]\n').problems[0]!, /spec\.dns: must be a string/);
  });

  it('warns when Enforce has no allow hosts rule to let any name through', () => {
    const r = parse('  dns: Enforce\n  allow:\n  - cidrs: [10.0.0.0/8]\n');
    assert.deepEqual(r.problems, []);
    assert.match(r.warnings[0]!, /^p\.yaml:5: warning: EgressPolicy shop\/p: spec\.dns: Enforce without an allow "hosts" rule answers NXDOMAIN for every name/);
  });
});
