import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { PalisadeError } from '../../../../common/errors';
import { compilePolicyFiles, parseManifest, parsePolicies, PolicyInvalidError, type CompiledAuthorizationPolicy } from '../../../../common/policy';
import { problemsOf } from './helpers';

const FIXTURES = path.resolve(__dirname, '../../../../../test/fixtures/policies');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

/** Lines 1-6; the spec's own lines start at 7. */
const AUTHZ = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: foo\nspec:\n';
const EGRESS = 'apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata:\n  name: e\n  namespace: foo\nspec:\n';

/** Asserts exactly these problems: each `p.yaml:<line>: ` and containing the text, in order. */
function expectProblems(text: string, expected: [number, string][]): void {
  const problems = problemsOf(text);
  const shown = problems.join('\n');
  assert.equal(problems.length, expected.length, `expected ${expected.length} problems, got:\n${shown}`);
  expected.forEach(([line, what], i) => {
    const p = problems[i]!;
    assert.ok(p.startsWith(`p.yaml:${line}: `), `problem ${i} is not at line ${line}: ${p}`);
    assert.ok(p.includes(what), `problem ${i} does not say ${JSON.stringify(what)}: ${p}`);
  });
}

describe('policy parsing', () => {
  describe('parsePolicies', () => {
    describe('accepts', () => {
      it('the istio.io example policies, including kubectl output with server-set metadata and status', () => {
        const r = parsePolicies(fixture('istio-examples.yaml'), 'istio-examples.yaml');
        assert.deepEqual(r.problems, []);
        assert.deepEqual(
          r.policies.map((p) => `${p.kind} ${p.id} ${(p as CompiledAuthorizationPolicy).action} ${(p as CompiledAuthorizationPolicy).rules.length}`),
          [
            'AuthorizationPolicy foo/httpbin ALLOW 1',
            'AuthorizationPolicy foo/httpbin-deny DENY 1',
            'AuthorizationPolicy bar/allow-nothing ALLOW 0',
            'AuthorizationPolicy baz/allow-all ALLOW 1',
            'AuthorizationPolicy ns1/anyname AUDIT 1',
            'AuthorizationPolicy default/details-viewer ALLOW 1',
            'AuthorizationPolicy foo/tcp-policy ALLOW 1',
            'AuthorizationPolicy foo/require-mtls DENY 1',
          ],
        );
        assert.deepEqual(r.policies.map((p) => p.line), [6, 30, 46, 54, 63, 79, 97, 113]); // each document's first line
      });

      it('JSON (a subset of YAML)', () => {
        const r = parsePolicies(fixture('bookinfo.json'), 'bookinfo.json');
        assert.deepEqual(r.problems, []);
        assert.equal(r.policies[0]?.id, 'default/ratings-viewer');
        assert.deepEqual(r.policies[0]?.selector, { app: 'ratings' });
      });

      it('JSON indented with tabs, and one-line JSON with its problems on line 1', () => {
        const policy = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'x' }, spec: { rules: [{}] } };
        assert.deepEqual(parsePolicies(JSON.stringify(policy, null, '\t'), 'x.json').problems, []);
        const bad = JSON.stringify({ ...policy, spec: { action: 'DENY', rulez: [] } });
        assert.deepEqual(parsePolicies(bad, 'x.json').problems, [
          'x.json:1: AuthorizationPolicy default/x: spec: unknown field "rulez" (did you mean "rules"?)',
          'x.json:1: AuthorizationPolicy default/x: spec.rules: a DENY policy without rules never matches (add `rules: [{}]` to deny every request, as Istio requires)',
        ]);
      });

      it('a kubectl List of policies', () => {
        const r = parsePolicies(fixture('list.yaml'), 'list.yaml');
        assert.deepEqual(r.problems, []);
        assert.deepEqual(r.policies.map((p) => `${p.id}@${p.line}`), ['foo/deny-get@5', 'foo/allow-ip-path@17']);
      });

      it('EgressPolicy deny entries; allowlist unless deny entries and no allow field', () => {
        const egress = (body: string) => {
          const r = parsePolicies(`${EGRESS}${body}`, 'e.yaml');
          assert.deepEqual(r.problems, []);
          const p = r.policies[0];
          assert.ok(p?.kind === 'EgressPolicy');
          return p;
        };
        const p = egress('  deny:\n  - hosts: [Evil.Example., "*.paste.example"]\n    ports: [443]\n  - cidrs: [10.0.0.0/8]\n');
        assert.equal(p.allowlist, false);
        assert.deepEqual(p.rules, []);
        assert.deepEqual([...(p.deny[0]?.hosts ?? [])], ['evil.example']);
        assert.deepEqual(p.deny[0]?.hostSuffixes, ['.paste.example']);
        assert.deepEqual([...(p.deny[0]?.ports ?? [])], [443]);
        assert.deepEqual(p.deny[1]?.cidrs?.map((c) => c.text), ['10.0.0.0/8']);
        assert.equal(egress('  allow: []\n  deny: [{cidrs: [10.0.0.0/8]}]\n').allowlist, true);
        assert.equal(egress('  allow: [{cidrs: [10.0.0.0/8]}]\n  deny: [{cidrs: [10.1.0.0/16]}]\n').allowlist, true);
        assert.equal(egress('  {}\n').allowlist, true);
        const roundTrip = parsePolicies(JSON.stringify(p.manifest), 'm.json').policies[0];
        assert.ok(roundTrip?.kind === 'EgressPolicy');
        assert.equal(roundTrip.deny.length, 2);
        assert.equal(roundTrip.allowlist, false);
      });

      it('an EgressPolicy, lowercasing hosts and stripping a trailing dot', () => {
        const r = parsePolicies(`${EGRESS}  allow:\n  - hosts: [API.Example.COM., "*.Example.org"]\n`, 'e.yaml');
        assert.deepEqual(r.problems, []);
        const rule = r.policies[0]?.kind === 'EgressPolicy' ? r.policies[0].rules[0] : undefined;
        assert.deepEqual([...(rule?.hosts ?? [])], ['api.example.com']);
        assert.deepEqual(rule?.hostSuffixes, ['.example.org']);
        assert.equal(rule?.ports, undefined);
      });

      it('EgressPolicy entries with a protocol: TCP by default, any case accepted, kept in the manifest', () => {
        const text = `${EGRESS}  allow:\n  - hosts: [a.com]\n  - cidrs: [10.9.0.0/16]\n    ports: [53]\n    protocol: udp\n  - cidrs: [10.8.0.0/16]\n    protocol: ICMP\n  deny:\n  - cidrs: [10.9.9.0/24]\n    protocol: Udp\n`;
        const r = parsePolicies(text, 'e.yaml');
        assert.deepEqual(r.problems, []);
        const p = r.policies[0];
        assert.ok(p?.kind === 'EgressPolicy');
        assert.deepEqual(p.rules.map((rule) => rule.protocol), ['TCP', 'UDP', 'ICMP']);
        assert.deepEqual(p.deny.map((rule) => rule.protocol), ['UDP']);
        const back = parsePolicies(JSON.stringify(p.manifest), 'm.json').policies[0];
        assert.ok(back?.kind === 'EgressPolicy');
        assert.deepEqual(back.rules.map((rule) => rule.protocol), ['TCP', 'UDP', 'ICMP']);
      });

      it('an empty file, comments only, and empty documents between "---"', () => {
        for (const text of ['', '# nothing\n', '---\n---\n', `---\n${AUTHZ}  {}\n---\n---\n`]) {
          const r = parsePolicies(text, 'e.yaml');
          assert.deepEqual(r.problems, [], text);
        }
        assert.equal(parsePolicies(`---\n${AUTHZ}  {}\n---\n---\n`, 'e.yaml').policies.length, 1);
      });

      it('defaults metadata.namespace to "default" and action to ALLOW; an absent spec allows nothing', () => {
        const r = parsePolicies('apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: x}\n', 'x.yaml');
        const p = r.policies[0] as CompiledAuthorizationPolicy;
        assert.equal(p.id, 'default/x');
        assert.equal(p.action, 'ALLOW');
        assert.deepEqual(p.rules, []);
      });

      it('keeps a JSON-safe manifest without status or server-set metadata, which compiles back', () => {
        const text = fixture('istio-examples.yaml');
        const policy = parsePolicies(text, 'x.yaml').policies.find((p) => p.name === 'require-mtls')!;
        const meta = policy.manifest.metadata as Record<string, unknown>;
        assert.equal(policy.manifest.status, undefined);
        assert.deepEqual(Object.keys(meta).sort(), ['annotations', 'name', 'namespace']);
        const again = parsePolicies(JSON.stringify(policy.manifest), 'manifest.json');
        assert.deepEqual(again.problems, []);
        assert.equal(again.policies[0]?.id, 'foo/require-mtls');
        const defaulted = parsePolicies(`${AUTHZ.replace('  namespace: foo\n', '')}  {}\n`, 'x.yaml').policies[0]!;
        assert.equal((defaulted.manifest.metadata as Record<string, unknown>).namespace, 'default');
      });

      it('principals and source.principal written with "spiffe://"', () => {
        const text = `${AUTHZ}  rules:\n  - from: [{source: {principals: ["spiffe://cluster.local/ns/a/sa/b"]}}]\n    when: [{key: source.principal, values: ["spiffe://td/*"]}]\n`;
        assert.deepEqual(parsePolicies(text, 'x.yaml').problems, []);
      });

      it('ports as YAML numbers or strings, and every supported when key', () => {
        const keys = [
          ['request.headers[X-Token]', 'a'], ['source.ip', '10.0.0.0/8'], ['remote.ip', '::1'], ['source.namespace', 'ns*'],
          ['source.principal', '*'], ['source.serviceAccount', 'ns/sa'], ['source.trustDomain', '*.local'],
          ['destination.ip', '10.0.0.1'], ['destination.port', '80'], ['connection.sni', '*.example.com'],
          ['request.auth.principal', 'iss/sub'], ['request.auth.audiences', 'aud'], ['request.auth.presenter', 'p'],
          ['request.auth.claims[groups]', 'g'], ['request.auth.claims[a][b]', 'c'],
        ];
        const when = keys.map(([k, v]) => `    - {key: "${k}", values: ["${v}"]}`).join('\n');
        const text = `${AUTHZ}  rules:\n  - to: [{operation: {ports: [80, "443"], notPorts: [8080]}}]\n    when:\n${when}\n`;
        assert.deepEqual(parsePolicies(text, 'x.yaml').problems, []);
      });
    });

    describe('reports every problem with its line', () => {
      const cases: [string, string, [number, string][]][] = [
        ['a misspelt spec field', `${AUTHZ}  actoin: DENY\n`, [[7, 'spec: unknown field "actoin" (did you mean "action"?)']]],
        ['an unknown spec field', `${AUTHZ}  color: red\n`, [[7, 'spec: unknown field "color" (allowed: selector, action, rules, targetRef, targetRefs, provider)']]],
        ['a misspelt source field', `${AUTHZ}  rules:\n  - from:\n    - source:\n        principal: [a]\n`, [[10, 'unknown field "principal" (did you mean "principals"?)']]],
        ['a misspelt operation field', `${AUTHZ}  rules:\n  - to:\n    - operation: {method: [GET]}\n`, [[9, 'spec.rules[0].to[0].operation: unknown field "method" (did you mean "methods"?)']]],
        ['a misspelt rule field', `${AUTHZ}  rules:\n  - form: []\n`, [[8, 'spec.rules[0]: unknown field "form" (did you mean "from"?)']]],
        ['the CUSTOM action', `${AUTHZ}  action: CUSTOM\n`, [[7, 'CUSTOM is not supported']]],
        ['a lowercase action', `${AUTHZ}  action: deny\n`, [[7, 'unknown action "deny" (use "DENY")']]],
        ['provider', `${AUTHZ}  provider: {name: ext}\n`, [[7, 'spec.provider: is not supported']]],
        ['targetRefs', `${AUTHZ}  targetRefs: [{kind: Gateway, name: gw}]\n`, [[7, 'spec.targetRefs: is not supported: Palisade has no Gateway API attachment (use spec.selector.matchLabels)']]],
        ['targetRef', `${AUTHZ}  targetRef: {kind: Gateway, name: gw}\n`, [[7, 'spec.targetRef: is not supported']]],
        ['a DENY policy without rules (Istio rejects it)', `${AUTHZ}  action: DENY\n`, [[7, 'a DENY policy without rules never matches (add `rules: [{}]`']]],
        ['rules that are not a list', `${AUTHZ}  rules: {from: []}\n`, [[7, 'spec.rules: must be a list']]],
        ['a null rule', `${AUTHZ}  rules:\n  -\n  - {}\n`, [[8, 'spec.rules[0]: a rule must not be empty (use {} to match every request)']]],
        ['an empty from', `${AUTHZ}  rules:\n  - from: []\n`, [[8, 'spec.rules[0].from: must not be empty (remove "from" to match any source)']]],
        ['an empty to', `${AUTHZ}  rules:\n  - to: []\n`, [[8, 'spec.rules[0].to: must not be empty (remove "to" to match any operation)']]],
        ['a from entry without source', `${AUTHZ}  rules:\n  - from:\n    - {}\n`, [[9, 'spec.rules[0].from[0].source: must be set']]],
        ['an empty source', `${AUTHZ}  rules:\n  - from:\n    - source: {}\n`, [[9, 'spec.rules[0].from[0].source: must not be empty (remove the entry to match any source)']]],
        ['an empty operation', `${AUTHZ}  rules:\n  - to:\n    - operation:\n`, [[9, 'spec.rules[0].to[0].operation: must be set']]],
        ['an operation whose lists are all empty', `${AUTHZ}  rules:\n  - to:\n    - operation: {methods: [], paths: []}\n`, [[9, 'spec.rules[0].to[0].operation: must not be empty']]],
        ['an empty string value', `${AUTHZ}  rules:\n  - from:\n    - source:\n        principals:\n        - ""\n`, [[11, 'principals[0]: empty value not allowed']]],
        ['an empty match value (the hint says "*")', `${AUTHZ}  rules:\n  - to:\n    - operation:\n        paths: ["/a", ""]\n`, [[10, 'spec.rules[0].to[0].operation.paths[1]: empty value not allowed (remove it, or use "*" to require any value)']]],
        ['a number where a string belongs', `${AUTHZ}  rules:\n  - to:\n    - operation:\n        methods: [1]\n`, [[10, 'methods[0]: must be a string, got 1 (quote it: "1")']]],
        ['a string where a list belongs', `${AUTHZ}  rules:\n  - from:\n    - source:\n        namespaces: dev\n`, [[10, 'namespaces: must be a list of strings, got "dev" (write ["dev"])']]],
        [
          'bad wildcards in several fields',
          `${AUTHZ}  rules:\n  - from:\n    - source:\n        namespaces: ["a*b"]\n    to:\n    - operation:\n        hosts: ["**"]\n        paths: ["/a/*/b"]\n`,
          [
            [10, 'namespaces: bad wildcard "a*b" (use "*" alone, "prefix*" or "*suffix"'],
            [13, 'hosts: bad wildcard "**"'],
            [14, 'paths: bad wildcard "/a/*/b"'],
          ],
        ],
        [
          'bad path templates (Istio CheckValidPathTemplate)',
          `${AUTHZ}  rules:\n  - to:\n    - operation:\n        paths:\n        - "/{**}/{*}"\n        - "/foo/{*}.txt"\n        - "foo/{*}"\n        - "/foo/{bar}"\n        - "/foo//{*}"\n        - "/a/{*}/*"\n`,
          [
            [11, '{**} must be the last operator'],
            [12, 'segment "{*}.txt" mixes {*}/{**} with other characters'],
            [13, 'path template "foo/{*}" must start with "/"'],
            [14, 'has "{" or "}" outside a path template'],
            [15, 'segment "" has an empty segment'],
            [16, 'segment "*" has "*" outside {*} or {**}'],
          ],
        ],
        [
          'bad ports',
          `${AUTHZ}  rules:\n  - to:\n    - operation:\n        ports: ["0", "65536", http, "80*", 443]\n`,
          [
            [10, '"0" is not a port (a number from 1 to 65535)'],
            [10, '"65536" is not a port'],
            [10, '"http" is not a port'],
            [10, '"80*" is not a port (a number from 1 to 65535; ports take no wildcards)'],
          ],
        ],
        [
          'bad IP blocks',
          `${AUTHZ}  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.1/8, "2001:db8::1/32", 10.0.0.0/33, 300.0.0.1, 010.0.0.1, "fe80::1%eth0"]\n`,
          [
            [10, '"10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)'],
            [10, '"2001:db8::1/32" has host bits set (did you mean 2001:db8::/32?)'],
            [10, '"10.0.0.0/33" has an invalid prefix length "/33" (use /0 to /32)'],
            [10, '"300.0.0.1" is not an IP address or CIDR'],
            [10, '"010.0.0.1" is not an IP address or CIDR (write each part of the address without leading zeros)'],
            [10, '"fe80::1%eth0" is not an IP address or CIDR (remove the "%zone" part)'],
          ],
        ],
        [
          'bad when keys',
          `${AUTHZ}  rules:\n  - when:\n    - {key: source.principle, values: [a]}\n    - {key: "request.header[x-a]", values: [a]}\n    - {key: "destination.labels[app]", values: [a]}\n    - {key: "experimental.envoy.filters.a[b]", values: [a]}\n    - {key: "request.headers[]", values: [a]}\n    - {key: "request.headers[a b]", values: [a]}\n    - {key: destination.namespace, values: [a]}\n    - {key: bogus, values: [a]}\n`,
          [
            [9, 'unknown key "source.principle" (did you mean "source.principal"?)'],
            [10, 'unknown key "request.header[x-a]" (did you mean "request.headers[x-a]"?)'],
            [11, 'is replaced by the workload selector (use spec.selector.matchLabels)'],
            [12, 'is not supported: Palisade has no Envoy filter metadata'],
            [13, 'bad key "request.headers[]" (write request.headers[<header name>]'],
            [14, '"a b" is not an HTTP header name'],
            [15, 'is replaced by metadata.namespace'],
            [16, 'unknown key "bogus" (allowed: request.headers[<name>], source.ip'],
          ],
        ],
        [
          'a condition without key, and one without values (Istio requires one)',
          `${AUTHZ}  rules:\n  - when:\n    - values: [a]\n    - key: source.ip\n    - {key: source.ip, values: []}\n`,
          [
            [9, 'spec.rules[0].when[0]: missing "key"'],
            [10, 'when[1]: key "source.ip" has no "values" or "notValues" (Istio requires one: add values: [...] or notValues: [...])'],
            [11, 'when[2]: key "source.ip" has no "values" or "notValues"'],
          ],
        ],
        [
          'bad service accounts and trust domains',
          `${AUTHZ}  rules:\n  - from:\n    - source:\n        serviceAccounts: ["ns/*", "a/b/c"]\n        principals: [x]\n    - source:\n        trustDomains: ["td/ns"]\n`,
          [
            [10, 'serviceAccounts cannot be combined with principals in one source (use separate "from" entries)'],
            [10, '"ns/*" takes no wildcards'],
            [10, '"a/b/c" must be "serviceaccount" or "namespace/serviceaccount"'],
            [13, 'trust domain "td/ns" must not contain "/"'],
          ],
        ],
        [
          'bad selectors',
          `${AUTHZ}  selector:\n    matchLabel: {app: web}\n---\n${AUTHZ.replace('name: p', 'name: q')}  selector:\n    matchLabels: {app: "*", version: 1, "bad key!": x}\n`,
          [
            [8, 'spec.selector: unknown field "matchLabel" (did you mean "matchLabels"?)'],
            [17, 'label "app" value "*" is invalid (wildcards are not supported in selectors)'],
            [17, '"version" must have a string value, got 1 (quote it: "1")'],
            [17, 'label key "bad key!" is invalid'],
          ],
        ],
        ['a YAML duplicate key', `${AUTHZ}  action: DENY\n  action: ALLOW\n`, [[8, 'duplicate key "action" in the same mapping']]],
        ['a YAML syntax error', `${AUTHZ}  rules: [\n`, [[8, 'YAML syntax error']]],
      ];
      for (const [what, text, expected] of cases) {
        it(what, () => expectProblems(text, expected));
      }

      const docCases: [string, string, [number, string][]][] = [
        ['a document that is a list', '- a\n- b\n', [[1, 'document #1: must be a mapping with apiVersion, kind, metadata and spec, got a list']]],
        ['a missing kind', 'apiVersion: security.istio.io/v1\nmetadata: {name: x}\n', [[1, 'missing "kind" (supported: AuthorizationPolicy with apiVersion security.istio.io/v1 or v1beta1, EgressPolicy with apiVersion palisade.dev/v1, HTTPRoute or GRPCRoute with apiVersion gateway.networking.k8s.io/v1, FaultInjection with apiVersion palisade.dev/v1, DestinationRule with apiVersion networking.istio.io/v1)']]],
        ['an unsupported kind', 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: x}\n', [[2, 'unsupported kind "PeerAuthentication" (supported: AuthorizationPolicy']]],
        ['a misspelt kind', 'apiVersion: security.istio.io/v1\nkind: AuthorisationPolicy\nmetadata: {name: x}\n', [[2, 'unsupported kind "AuthorisationPolicy" (did you mean "AuthorizationPolicy"?)']]],
        ['an unsupported apiVersion', 'apiVersion: security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: x}\n', [[1, 'AuthorizationPolicy needs apiVersion security.istio.io/v1 or security.istio.io/v1beta1, got "security.istio.io/v1alpha1"']]],
        ['an EgressPolicy with an Istio apiVersion', 'apiVersion: security.istio.io/v1\nkind: EgressPolicy\nmetadata: {name: x}\n', [[1, 'EgressPolicy needs apiVersion palisade.dev/v1']]],
        ['a missing apiVersion', 'kind: AuthorizationPolicy\nmetadata: {name: x}\n', [[1, 'missing "apiVersion" (use security.istio.io/v1)']]],
        ['missing metadata', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nspec: {}\n', [[1, 'missing "metadata" (give at least metadata.name)']]],
        ['a missing name', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  namespace: foo\n', [[4, 'AuthorizationPolicy #1: metadata: missing "name"']]],
        ['a name that is not DNS-1123', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: Allow_All\n', [[4, 'metadata.name: must be a DNS-1123 subdomain (lowercase letters, digits, \'-\' and \'.\', at most 253 characters), got "Allow_All" (try "allow-all")']]],
        ['a bad namespace', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: x\n  namespace: Foo.Bar\n', [[5, 'metadata.namespace: must be a DNS-1123 label']]],
        ['an unknown metadata field', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: x\n  nmespace: foo\n', [[5, 'metadata: unknown field "nmespace" (did you mean "namespace"?)']]],
        ['labels that are not a mapping', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: x\n  labels: [a]\n', [[5, 'metadata.labels: must be a mapping of names to strings']]],
        ['the istio.io/dry-run annotation', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: x\n  annotations:\n    istio.io/dry-run: "true"\n', [[6, 'istio.io/dry-run is not supported']]],
        ['a misspelt top-level field', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x}\nspecs: {}\n', [[4, 'AuthorizationPolicy default/x: unknown field "specs" (did you mean "spec"?)']]],
        [
          'the same policy twice in one file',
          `${AUTHZ}  {}\n---\n${AUTHZ}  rules: [{}]\n`,
          [[9, 'AuthorizationPolicy foo/p: defined again, first at line 1 (remove or rename one)']],
        ],
        [
          'problems in several documents, in line order, with metadata and spec problems of one policy together',
          `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: BAD}\nspec:\n  action: NOPE\n---\nkind: Gateway\n`,
          [
            [3, 'AuthorizationPolicy default/BAD: metadata.name: must be a DNS-1123 subdomain'],
            [5, 'AuthorizationPolicy default/BAD: spec.action: unknown action "NOPE" (use ALLOW, DENY or AUDIT)'],
            [7, 'document #2: kind: unsupported kind "Gateway"'],
            [7, 'document #2: missing "metadata"'],
          ],
        ],
      ];
      for (const [what, text, expected] of docCases) {
        it(what, () => expectProblems(text, expected));
      }

      const egressCases: [string, string, [number, string][]][] = [
        ['hosts and cidrs in one rule', `${EGRESS}  allow:\n  - hosts: [a.com]\n    cidrs: [10.0.0.0/8]\n`, [[9, 'spec.allow[0]: has both "hosts" and "cidrs" (split it into two rules)']]],
        ['neither hosts nor cidrs', `${EGRESS}  allow:\n  - ports: [443]\n`, [[8, 'spec.allow[0]: needs "hosts" or "cidrs"']]],
        [
          'bad hosts',
          `${EGRESS}  allow:\n  - hosts:\n    - 10.0.0.1\n    - "[2001:db8::1]"\n    - "*"\n    - "a.*.com"\n    - "api.example.com:443"\n    - "bad host"\n`,
          [
            [9, '"10.0.0.1" is an IP address (use cidrs for addresses)'],
            [10, '"[2001:db8::1]" is an IP address (use cidrs for addresses)'],
            [11, '"*" matches every host (use cidrs: [0.0.0.0/0, "::/0"] to allow every destination)'],
            [12, '"a.*.com" is a bad wildcard (use an exact name or "*.suffix", like *.example.com)'],
            [13, '"api.example.com:443" has a port (use "ports" for ports)'],
            [14, '"bad host" is not a DNS name'],
          ],
        ],
        ['a bad CIDR', `${EGRESS}  allow:\n  - cidrs: [192.168.1.1/24]\n`, [[8, '"192.168.1.1/24" has host bits set (did you mean 192.168.1.0/24?)']]],
        ['bad ports', `${EGRESS}  allow:\n  - hosts: [a.com]\n    ports: [0, 70000]\n`, [[9, '"0" is not a port'], [9, '"70000" is not a port']]],
        ['empty lists', `${EGRESS}  allow:\n  - hosts: []\n  - cidrs: [10.0.0.0/8]\n    ports: []\n`, [[8, 'spec.allow[0].hosts: must not be empty'], [10, 'spec.allow[1].ports: must not be empty (remove "ports" to allow any port)']]],
        ['a misspelt rule field', `${EGRESS}  allow:\n  - host: [a.com]\n`, [[8, 'spec.allow[0]: unknown field "host" (did you mean "hosts"?)'], [8, 'needs "hosts" or "cidrs"']]],
        ['a misspelt spec field', `${EGRESS}  alow: []\n`, [[7, 'spec: unknown field "alow" (did you mean "allow"?)']]],
        ['deny: hosts and cidrs in one entry', `${EGRESS}  deny:\n  - hosts: [a.com]\n    cidrs: [10.0.0.0/8]\n`, [[9, 'spec.deny[0]: has both "hosts" and "cidrs" (split it into two rules)']]],
        ['deny: neither hosts nor cidrs', `${EGRESS}  deny:\n  - ports: [443]\n`, [[8, 'spec.deny[0]: needs "hosts" or "cidrs" (what the workload may not connect to)']]],
        ['deny: every host', `${EGRESS}  deny:\n  - hosts: ["*", 10.0.0.1]\n`, [[8, 'spec.deny[0].hosts: "*" matches every host (use cidrs: [0.0.0.0/0, "::/0"] to deny every destination)'], [8, '"10.0.0.1" is an IP address']]],
        ['deny: empty lists', `${EGRESS}  deny:\n  - hosts: []\n  - cidrs: [10.0.0.0/8]\n    ports: []\n`, [[8, 'spec.deny[0].hosts: must not be empty (a rule with nothing in it denies nothing: remove it)'], [10, 'spec.deny[1].ports: must not be empty (remove "ports" to deny any port)']]],
        ['deny: an empty list', `${EGRESS}  deny: []\n`, [[7, 'spec.deny: must not be empty (remove "deny": a policy with neither allow nor deny entries denies every destination)']]],
        ['deny: nothing', `${EGRESS}  allow: [{cidrs: [10.0.0.0/8]}]\n  deny:\n`, [[8, 'spec.deny: must not be empty']]],
        ['deny: a bad CIDR', `${EGRESS}  deny:\n  - cidrs: [10.0.0.1/8]\n`, [[8, 'spec.deny[0].cidrs: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)']]],
        ['deny: a bad port', `${EGRESS}  deny:\n  - cidrs: [10.0.0.0/8]\n    ports: [http]\n`, [[9, 'spec.deny[0].ports: "http" is not a port']]],
        ['deny: not a list', `${EGRESS}  deny: {hosts: [a.com]}\n`, [[7, 'spec.deny: must be a list']]],
        ['an unknown protocol', `${EGRESS}  allow:\n  - cidrs: [10.0.0.0/8]\n    protocol: SCTP\n`, [[9, 'spec.allow[0].protocol: "SCTP" is not a protocol (use TCP, UDP or ICMP)']]],
        ['a protocol that is not a string', `${EGRESS}  allow:\n  - cidrs: [10.0.0.0/8]\n    protocol: 17\n`, [[9, 'spec.allow[0].protocol: must be a string, got 17']]],
        [
          'UDP hosts',
          `${EGRESS}  allow:\n  - hosts: [dns.example.com]\n    protocol: UDP\n`,
          [[9, 'spec.allow[0].protocol: UDP with "hosts": host rules are TCP only (names are checked against TLS SNI and HTTP Host); use cidrs for UDP']],
        ],
        ['ICMP hosts in deny', `${EGRESS}  deny:\n  - hosts: [a.com]\n    protocol: icmp\n`, [[9, 'spec.deny[0].protocol: ICMP with "hosts": host rules are TCP only']]],
        ['ICMP with ports', `${EGRESS}  allow:\n  - cidrs: [10.0.0.0/8]\n    ports: [7]\n    protocol: ICMP\n`, [[9, 'spec.allow[0].ports: ICMP has no ports (remove "ports")']]],
      ];
      for (const [what, text, expected] of egressCases) {
        it(`EgressPolicy: ${what}`, () => expectProblems(text, expected));
      }
    });

    describe('warns (and accepts)', () => {
      it('about a DENY rule whose HTTP-only conditions make it deny all TCP traffic, unless scoped by port', () => {
        const text = `${AUTHZ}  action: DENY\n  rules:\n  - to: [{operation: {methods: [GET]}}]\n  - to: [{operation: {methods: [GET], ports: ["8000"]}}]\n`;
        const r = parsePolicies(text, 'p.yaml');
        assert.deepEqual(r.problems, []);
        assert.equal(r.warnings.length, 1);
        assert.match(r.warnings[0]!, /^p\.yaml:9: warning: AuthorizationPolicy foo\/p: spec\.rules\[0\]: on non-HTTP traffic .* denies all TCP traffic/);
      });

      it('about a selector without labels', () => {
        const r = parsePolicies(`${AUTHZ}  selector: {}\n`, 'p.yaml');
        assert.deepEqual(r.problems, []);
        assert.match(r.warnings[0]!, /^p\.yaml:7: warning: .*spec\.selector: has no labels, so it selects every workload/);
        assert.equal(r.policies[0]?.selector, undefined);
      });
    });
  });

  describe('compilePolicyFiles', () => {
    it('compiles several files into one set split by kind, with the root namespace', () => {
      const set = compilePolicyFiles(
        ['istio-examples.yaml', 'egress.yaml', 'bookinfo.json'].map((f) => ({ source: f, text: fixture(f) })),
        { rootNamespace: 'mesh-root' },
      );
      assert.equal(set.authorization.length, 9);
      assert.deepEqual(set.egress.map((p) => p.id), ['shop/web-egress']);
      assert.equal(set.rootNamespace, 'mesh-root');
      assert.equal(compilePolicyFiles([]).rootNamespace, 'istio-system');
    });

    it('throws PolicyInvalidError with every problem of every file, nothing compiled (all or nothing)', () => {
      const files = [
        { source: 'good.yaml', text: fixture('egress.yaml') },
        { source: 'invalid.yaml', text: fixture('invalid.yaml') },
      ];
      let thrown: unknown;
      try {
        compilePolicyFiles(files);
      } catch (err) {
        thrown = err;
      }
      assert.ok(thrown instanceof PolicyInvalidError, String(thrown));
      assert.ok(thrown instanceof PalisadeError);
      assert.equal(thrown.code, 'PALISADE_ERR_POLICY_INVALID');
      assert.equal(thrown.exitCode, 1);
      assert.deepEqual(thrown.problems, [
        'invalid.yaml:11: AuthorizationPolicy shop/web: spec.rules[0].from[0].source: unknown field "principal" (did you mean "principals"?)',
        'invalid.yaml:14: AuthorizationPolicy shop/web: spec.rules[0].to[0].operation.ports: "http" is not a port (a number from 1 to 65535)',
        'invalid.yaml:23: EgressPolicy shop/web-egress: spec.allow[0].hosts: "10.0.0.1" is an IP address (use cidrs for addresses)',
      ]);
      assert.equal(thrown.message, `${thrown.problems[0]} (and 2 more problems)`);
    });

    it('reports a policy defined in two files at the second one, naming the first', () => {
      const text = `${AUTHZ}  {}\n`;
      assert.throws(
        () => compilePolicyFiles([{ source: 'a.yaml', text }, { source: 'b.yaml', text: `# again\n${text}` }]),
        (err: PolicyInvalidError) => {
          assert.deepEqual(err.problems, ['b.yaml:2: AuthorizationPolicy foo/p: defined again, first at a.yaml:1 (remove or rename one)']);
          assert.equal(err.message, err.problems[0]);
          return true;
        },
      );
    });

    it('allows the same name for different kinds and namespaces', () => {
      const set = compilePolicyFiles([
        { source: 'a.yaml', text: `${AUTHZ}  {}\n---\n${AUTHZ.replace('namespace: foo', 'namespace: bar')}  {}\n` },
        { source: 'b.yaml', text: `${EGRESS.replace('name: e', 'name: p')}  {}\n` },
      ]);
      assert.equal(set.authorization.length + set.egress.length, 3);
    });

    it('carries the warnings', () => {
      const set = compilePolicyFiles([{ source: 'w.yaml', text: `${AUTHZ}  selector: {}\n` }]);
      assert.equal(set.warnings?.length, 1);
    });
  });
});

describe('parseManifest keep: a manifest the compiler made is kept as the policy\'s manifest', () => {
  const manifests = (): Array<Record<string, unknown>> => {
    const set = compilePolicyFiles(['istio-examples.yaml', 'egress.yaml', 'list.yaml'].map((f) => ({ source: f, text: fixture(f) })));
    return [...set.authorization, ...set.egress].map((p) => p.manifest as Record<string, unknown>);
  };
  it('the same compiled policy as without keep, its manifest the given object', () => {
    const all = manifests();
    assert.ok(all.length >= 5, `${all.length} manifests`);
    for (const m of all) {
      const made = parseManifest(m, 'api:x');
      const kept = parseManifest(m, 'api:x', { keep: true });
      assert.equal(kept.policies.length, 1);
      assert.equal(kept.policies[0]!.manifest, m, 'the given object');
      assert.notEqual(made.policies[0]!.manifest, m, 'without keep: a copy');
      assert.deepEqual(made.policies[0]!.manifest, m, 'the same data: keeping it changes nothing');
      const { manifest: _a, ...restKept } = kept.policies[0]!;
      const { manifest: _b, ...restMade } = made.policies[0]!;
      assert.deepEqual(JSON.stringify(restKept), JSON.stringify(restMade));
      assert.deepEqual(kept.warnings, made.warnings);
    }
  });
});
