import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadWorkloadsFile, parseWorkloads, WorkloadsInvalidError } from '../../../agent/workloads';
import { PalisadeError } from '../../../common/errors';
import { WORKLOAD_LABEL } from '../../../common/labels';

const FIXTURES = path.resolve(__dirname, '../../../../test/fixtures/workloads');

const BASE: Record<string, string> = {
  name: 'web-1',
  namespace: 'default',
  serviceAccount: 'web',
  netns: '/var/run/netns/web-1',
  ip: '10.0.1.11',
};

/**
 * One workload, one field per line: line 1 `workloads:`, line 2 name, 3 namespace,
 * 4 serviceAccount, 5 netns, 6 ip, then extra fields in the order given. `null` drops a field.
 */
function oneWorkload(fields: Record<string, string | null> = {}): string {
  const merged: Record<string, string | null> = { ...BASE, ...fields };
  const lines = Object.entries(merged)
    .filter((entry): entry is [string, string] => entry[1] !== null)
    .map(([key, value], i) => `${i === 0 ? '  - ' : '    '}${key}: ${value}`);
  return `workloads:\n${lines.join('\n')}\n`;
}

/** The problems a file is rejected for (fails the test if it is accepted). */
function problemsOf(text: string, source = 'workloads.yaml'): string[] {
  try {
    parseWorkloads(text, source);
  } catch (err) {
    assert.ok(err instanceof WorkloadsInvalidError, `expected WorkloadsInvalidError, got ${String(err)}`);
    assert.ok(err instanceof PalisadeError);
    assert.equal(err.code, 'PALISADE_ERR_WORKLOADS_INVALID');
    for (const p of err.problems) assert.ok(!p.includes('\n'), `problem is not one line: ${JSON.stringify(p)}`);
    return [...err.problems];
  }
  assert.fail(`expected the file to be rejected:\n${text}`);
}

describe('workloads file', () => {
  describe('parseWorkloads', () => {
    it('accepts a minimal workload and fills defaults and the SPIFFE identity', () => {
      const config = parseWorkloads(oneWorkload(), 'workloads.yaml');
      assert.deepEqual(config, {
        trustDomain: 'cluster.local',
        workloads: [
          {
            name: 'web-1',
            namespace: 'default',
            serviceAccount: 'web',
            netns: '/var/run/netns/web-1',
            ip: '10.0.1.11',
            strict: false,
            labels: { 'palisade.dev/workload': 'web-1' },
            identity: 'spiffe://cluster.local/ns/default/sa/web',
          },
        ],
        services: [],
      });
    });

    it('accepts an empty workloads list', () => {
      assert.deepEqual(parseWorkloads('workloads: []\n', 'w.yaml'), { trustDomain: 'cluster.local', workloads: [], services: [] });
    });

    it('accepts a trust domain, strict, labels and /proc netns paths', () => {
      const text = [
        'trustDomain: prod.example_org-1',
        'workloads:',
        '  - {name: web-1, namespace: default, serviceAccount: web, netns: /proc/1234/ns/net, ip: 10.0.1.11,',
        '     strict: true, labels: {app: web, example.com/tier: front_end.v1, empty: ""}}',
      ].join('\n');
      const [w] = parseWorkloads(text, 'w.yaml').workloads;
      assert.equal(w?.identity, 'spiffe://prod.example_org-1/ns/default/sa/web');
      assert.equal(w?.strict, true);
      assert.equal(w?.netns, '/proc/1234/ns/net');
      assert.deepEqual(w?.labels, { app: 'web', 'example.com/tier': 'front_end.v1', empty: '', 'palisade.dev/workload': 'web-1' });
    });

    it('reads the optional host-side interface', () => {
      assert.equal(parseWorkloads(oneWorkload({ interface: 'veth1a2b3c' }), 'w.yaml').workloads[0]?.interface, 'veth1a2b3c');
      assert.equal(parseWorkloads(oneWorkload({}), 'w.yaml').workloads[0]?.interface, undefined);
    });

    it('gives every workload the label palisade.dev/workload: <name>, and accepts a file that sets it to the name', () => {
      const config = parseWorkloads(oneWorkload({ labels: '{palisade.dev/workload: web-1, app: web}' }), 'w.yaml');
      assert.deepEqual(config.workloads[0]?.labels, { 'palisade.dev/workload': 'web-1', app: 'web' });
      assert.equal(WORKLOAD_LABEL, 'palisade.dev/workload');
    });

    it('accepts YAML anchors and aliases for shared values', () => {
      const text = oneWorkload({ labels: '&common {app: web}' }) + [
        '  - name: web-2',
        '    namespace: default',
        '    serviceAccount: web',
        '    netns: /var/run/netns/web-2',
        '    ip: 10.0.1.12',
        '    labels: *common',
      ].join('\n');
      const config = parseWorkloads(text, 'w.yaml');
      assert.deepEqual(config.workloads[0]?.labels, { app: 'web', 'palisade.dev/workload': 'web-1' });
      assert.deepEqual(config.workloads[1]?.labels, { app: 'web', 'palisade.dev/workload': 'web-2' });
    });

    it('reads the good fixture', () => {
      const config = loadWorkloadsFile(path.join(FIXTURES, 'good.yaml'));
      assert.equal(config.trustDomain, 'example.org');
      assert.deepEqual(
        config.workloads.map((w) => [w.identity, w.strict, w.labels]),
        [
          ['spiffe://example.org/ns/default/sa/web', true, { app: 'web', 'app.kubernetes.io/version': '1.2', 'palisade.dev/workload': 'web-1' }],
          ['spiffe://example.org/ns/data/sa/db', false, { 'palisade.dev/workload': 'db-1' }],
        ],
      );
    });

    describe('rejects with exact one-line messages', () => {
      const cases: { name: string; text: string; problems: string[] }[] = [
        {
          name: 'a missing required field, at the workload line',
          text: oneWorkload({ ip: null }),
          problems: ['workloads.yaml:2: workload "web-1": missing required field "ip"'],
        },
        {
          name: 'a malformed IP, at the value line',
          text: oneWorkload({ ip: '10.0.1' }),
          problems: ['workloads.yaml:6: workload "web-1": "ip" must be an IPv4 address like 10.0.1.11, got "10.0.1"'],
        },
        {
          name: 'an unknown field with a did-you-mean, naming the workload by number when it has no name',
          text: oneWorkload({ name: null, serviceAccount: null, serviceacount: 'web' }),
          problems: [
            'workloads.yaml:2: workload #1: missing required field "name"',
            'workloads.yaml:2: workload #1: missing required field "serviceAccount"',
            'workloads.yaml:5: workload #1: unknown field "serviceacount" (did you mean "serviceAccount"?)',
          ],
        },
        {
          name: 'a YAML syntax error, with its line',
          text: 'workloads:\n  - name: web-1\n    ip: [10.0.1.11\n',
          problems: [
            'workloads.yaml:4: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
          ],
        },
        {
          name: 'a duplicate key inside a workload',
          text: oneWorkload({ extra: 'x' }).replace('extra: x', 'ip: 10.0.1.12'),
          problems: ['workloads.yaml:7: duplicate key "ip" in the same mapping'],
        },
      ];
      for (const c of cases) {
        it(c.name, () => assert.deepEqual(problemsOf(c.text), c.problems));
      }
    });

    describe('rejects', () => {
      // Each case: the file, and a fragment the first problem must contain (after `<source>:<line>: `).
      const cases: { name: string; text: string; line: number; expect: string | RegExp }[] = [
        // top level
        { name: 'an empty file', text: '', line: 1, expect: 'the top level must be a mapping with a "workloads" list, got an empty file' },
        { name: 'a comment-only file', text: '# nothing\n', line: 1, expect: 'got an empty file' },
        { name: 'a top-level list', text: '- name: web-1\n', line: 1, expect: 'the top level must be a mapping with a "workloads" list, got a list' },
        { name: 'a top-level scalar', text: 'hello\n', line: 1, expect: 'got "hello"' },
        { name: 'a missing workloads key', text: 'trustDomain: a.b\n', line: 1, expect: 'missing required top-level field "workloads"' },
        { name: 'workloads with no value', text: 'workloads:\n', line: 1, expect: '"workloads" must be a list, got nothing (use "workloads: []" for none)' },
        { name: 'workloads as a mapping', text: 'workloads:\n  web-1: {}\n', line: 2, expect: '"workloads" must be a list, got a mapping' },
        { name: 'an unknown top-level key', text: 'workloads: []\nworkload: []\n', line: 2, expect: 'unknown top-level field "workload" (did you mean "workloads"?)' },
        { name: 'a misspelt trustDomain', text: 'workloads: []\ntrust_domain: a.b\n', line: 2, expect: '(did you mean "trustDomain"?)' },
        { name: 'an unrelated top-level key', text: 'workloads: []\npolicies: []\n', line: 2, expect: 'unknown top-level field "policies" (allowed: workloads, trustDomain, services)' },
        { name: 'two YAML documents', text: 'workloads: []\n---\nworkloads: []\n', line: 2, expect: 'the file must hold a single YAML document' },
        { name: 'a duplicate top-level key', text: 'workloads: []\nworkloads: []\n', line: 2, expect: 'duplicate key "workloads"' },
        { name: 'a bad indentation', text: 'workloads:\n  - name: a\n   namespace: b\n', line: 3, expect: /^YAML syntax error: / },
        { name: 'an unknown YAML tag', text: oneWorkload({ name: '!secret web-1' }), line: 2, expect: 'Unresolved tag: !secret (remove the tag)' },
        // trustDomain
        { name: 'an uppercase trust domain', text: 'trustDomain: Example.ORG\nworkloads: []\n', line: 1, expect: '(use lowercase: "example.org")' },
        { name: 'a trust domain with a scheme', text: 'trustDomain: spiffe://example.org\nworkloads: []\n', line: 1, expect: '(give the trust domain without "spiffe://")' },
        { name: 'a trust domain with a port', text: 'trustDomain: "example.org:443"\nworkloads: []\n', line: 1, expect: 'got "example.org:443"' },
        { name: 'an empty trust domain', text: 'trustDomain: ""\nworkloads: []\n', line: 1, expect: '"trustDomain" must be a SPIFFE trust domain' },
        { name: 'a numeric trust domain', text: 'trustDomain: 42\nworkloads: []\n', line: 1, expect: 'got 42' },
        { name: 'a trust domain mapping', text: 'trustDomain:\n  name: a\nworkloads: []\n', line: 2, expect: 'got a mapping' },
        // workload shape
        { name: 'a workload that is a string', text: 'workloads:\n  - web-1\n', line: 2, expect: 'workload #1: must be a mapping with name, namespace, serviceAccount, netns and ip, got "web-1"' },
        { name: 'a workload that is empty', text: 'workloads:\n  -\n', line: 2, expect: 'workload #1: must be a mapping' },
        { name: 'an unknown workload key far from any field', text: oneWorkload({ port: '80' }), line: 7, expect: 'workload "web-1": unknown field "port" (allowed: name, namespace, serviceAccount, netns, ip, strict, interface, labels)' },
        { name: 'an interface name with a slash', text: oneWorkload({ interface: 'a/b' }), line: 7, expect: 'workload "web-1": "interface" must be a network interface name like veth1a2b3c (1-15 letters, digits, \'.\', \'-\', \'_\', \'@\'), got "a/b"' },
        { name: 'an interface name of 16 characters', text: oneWorkload({ interface: 'v'.repeat(16) }), line: 7, expect: '"interface" must be a network interface name' },
        { name: 'a numeric interface', text: oneWorkload({ interface: '7' }), line: 7, expect: '"interface" must be a string, got 7 (quote it: "7")' },
        { name: 'a transposed field name', text: oneWorkload({ nmae: 'web-1' }), line: 7, expect: 'unknown field "nmae" (did you mean "name"?)' },
        { name: 'a snake_case field name', text: oneWorkload({ serviceAccount: null, service_account: 'web' }), line: 2, expect: 'missing required field "serviceAccount"' },
        { name: 'a non-string key', text: oneWorkload({ 1: 'x' }), line: 2, expect: 'workload "web-1": unknown field 1' },
        // required strings
        { name: 'an empty name', text: oneWorkload({ name: '""' }), line: 2, expect: 'workload #1: "name" must not be empty' },
        { name: 'a name with no value', text: oneWorkload({ name: '' }), line: 2, expect: '"name" must not be empty' },
        { name: 'a numeric service account', text: oneWorkload({ serviceAccount: '123' }), line: 4, expect: '"serviceAccount" must be a string, got 123 (quote it: "123")' },
        { name: 'a boolean namespace', text: oneWorkload({ namespace: 'true' }), line: 3, expect: '"namespace" must be a string, got true' },
        { name: 'a list netns', text: oneWorkload({ netns: '[a]' }), line: 5, expect: '"netns" must be a string, got a list' },
        // DNS-1123 labels
        { name: 'an uppercase name', text: oneWorkload({ name: 'Web_1' }), line: 2, expect: 'workload "Web_1": "name" must be a DNS-1123 label (lowercase letters, digits and \'-\', starting and ending with a letter or digit, at most 63 characters), got "Web_1" (try "web-1")' },
        { name: 'a name ending in a dash', text: oneWorkload({ name: 'web-' }), line: 2, expect: 'got "web-" (try "web")' },
        { name: 'a namespace starting with a dash', text: oneWorkload({ namespace: '-default' }), line: 3, expect: '"namespace" must be a DNS-1123 label' },
        { name: 'a dotted service account', text: oneWorkload({ serviceAccount: 'web.sa' }), line: 4, expect: '"serviceAccount" must be a DNS-1123 label' },
        { name: 'a 64-character name', text: oneWorkload({ name: 'a'.repeat(64) }), line: 2, expect: '"name" must be a DNS-1123 label' },
        { name: 'a unicode namespace', text: oneWorkload({ namespace: 'défault' }), line: 3, expect: '"namespace" must be a DNS-1123 label' },
        // netns
        { name: 'a relative netns', text: oneWorkload({ netns: 'web-1' }), line: 5, expect: '"netns" must be an absolute path like /var/run/netns/web-1 or /proc/1234/ns/net, got "web-1"' },
        { name: 'a netns with a NUL byte', text: oneWorkload({ netns: '"/var/run/netns/a\\0b"' }), line: 5, expect: '"netns" must be an absolute path' },
        // ip
        { name: 'an IP with leading zeros', text: oneWorkload({ ip: '10.0.1.011' }), line: 6, expect: 'got "10.0.1.011" (write each part without leading zeros)' },
        { name: 'an IP with an octet over 255', text: oneWorkload({ ip: '10.0.1.256' }), line: 6, expect: '(each part 0-255), got "10.0.1.256"' },
        { name: 'an IPv6 address', text: oneWorkload({ ip: 'fd00::11' }), line: 6, expect: '"ip" must be an IPv4 address: IPv6 is not supported yet, got "fd00::11"' },
        { name: 'an IPv4-mapped IPv6 address', text: oneWorkload({ ip: '"::ffff:10.0.1.11"' }), line: 6, expect: 'IPv6 is not supported yet' },
        { name: 'a CIDR', text: oneWorkload({ ip: '10.0.1.11/32' }), line: 6, expect: '(a single address, not a CIDR range)' },
        { name: 'an address with a port', text: oneWorkload({ ip: '"10.0.1.11:80"' }), line: 6, expect: '(an address without a port)' },
        { name: 'an IP YAML reads as a number', text: oneWorkload({ ip: '10.0' }), line: 6, expect: '"ip" must be an IPv4 address like 10.0.1.11, got "10.0"' },
        { name: 'a hostname', text: oneWorkload({ ip: 'web-1.local' }), line: 6, expect: 'got "web-1.local"' },
        { name: 'an IP with spaces', text: oneWorkload({ ip: '" 10.0.1.11"' }), line: 6, expect: 'got " 10.0.1.11"' },
        { name: 'the unspecified address', text: oneWorkload({ ip: '0.0.0.0' }), line: 6, expect: 'not the unspecified address 0.0.0.0' },
        { name: 'a loopback address', text: oneWorkload({ ip: '127.0.0.2' }), line: 6, expect: 'not a loopback address' },
        { name: 'a multicast address', text: oneWorkload({ ip: '224.0.0.1' }), line: 6, expect: 'must be a unicast address' },
        { name: 'the broadcast address', text: oneWorkload({ ip: '255.255.255.255' }), line: 6, expect: 'must be a unicast address' },
        // strict
        { name: 'strict as a string', text: oneWorkload({ strict: '"true"' }), line: 7, expect: '"strict" must be true or false, got "true"' },
        { name: 'strict as yes (a string in YAML 1.2)', text: oneWorkload({ strict: 'yes' }), line: 7, expect: 'got "yes"' },
        { name: 'strict with no value', text: oneWorkload({ strict: '' }), line: 7, expect: 'got nothing' },
        { name: 'strict as a number', text: oneWorkload({ strict: '1' }), line: 7, expect: 'got 1' },
        // labels
        { name: 'labels as a list', text: oneWorkload({ labels: '[app]' }), line: 7, expect: '"labels" must be a mapping of label names to strings, like {app: web}, got a list' },
        { name: 'labels with no value', text: oneWorkload({ labels: '' }), line: 7, expect: '"labels" must be a mapping' },
        { name: 'a numeric label value', text: oneWorkload({ labels: '{version: 2}' }), line: 7, expect: 'label "version" must have a string value, got 2 (quote it: "2")' },
        { name: 'a boolean label value', text: oneWorkload({ labels: '{canary: true}' }), line: 7, expect: 'label "canary" must have a string value, got true' },
        { name: 'a nested label value', text: oneWorkload({ labels: '{app: {name: web}}' }), line: 7, expect: 'got a mapping' },
        { name: 'a label key with a space', text: oneWorkload({ labels: '{"my app": web}' }), line: 7, expect: 'label key "my app" is invalid' },
        { name: 'a label key with an uppercase prefix', text: oneWorkload({ labels: '{Example.com/app: web}' }), line: 7, expect: 'label key "Example.com/app" is invalid' },
        { name: 'a label key with two slashes', text: oneWorkload({ labels: '{a/b/c: web}' }), line: 7, expect: 'label key "a/b/c" is invalid' },
        { name: 'a label key with an empty name', text: oneWorkload({ labels: '{example.com/: web}' }), line: 7, expect: 'label key "example.com/" is invalid' },
        { name: 'a __proto__ label key', text: oneWorkload({ labels: '{__proto__: web}' }), line: 7, expect: 'label key "__proto__" is invalid' },
        { name: 'a 64-character label value', text: oneWorkload({ labels: `{app: ${'a'.repeat(64)}}` }), line: 7, expect: 'label "app" value' },
        { name: 'a label value ending in a dot', text: oneWorkload({ labels: '{app: web.}' }), line: 7, expect: 'label "app" value "web." is invalid' },
        { name: 'a duplicate label key', text: oneWorkload({ labels: '{app: a, app: b}' }), line: 7, expect: 'duplicate key "app"' },
        {
          name: 'palisade.dev/workload set to another name',
          text: oneWorkload({ labels: '{palisade.dev/workload: web-2}' }),
          line: 7,
          expect: 'workload "web-1": label "palisade.dev/workload" must be the workload\'s name "web-1", got "web-2" (remove it: every workload carries it with its name)',
        },
      ];
      for (const c of cases) {
        it(c.name, () => {
          const [first] = problemsOf(c.text);
          const prefix = `workloads.yaml:${c.line}: `;
          assert.ok(first?.startsWith(prefix), `expected ${JSON.stringify(first)} to start with ${JSON.stringify(prefix)}`);
          const rest = first.slice(prefix.length);
          if (typeof c.expect === 'string') {
            assert.ok(rest.includes(c.expect), `expected ${JSON.stringify(rest)} to contain ${JSON.stringify(c.expect)}`);
          } else {
            assert.match(rest, c.expect);
          }
        });
      }
    });

    describe('duplicates across workloads, naming both lines', () => {
      /** A second workload (lines 7-11: name, namespace, serviceAccount, netns, ip) after `oneWorkload()`. */
      const second = (fields: Record<string, string>): string => oneWorkload(fields).replace(/^workloads:\n/, '');
      const cases: { name: string; fields: Record<string, string>; problems: string[] }[] = [
        {
          name: 'the same namespace and name',
          fields: { ip: '10.0.1.12', netns: '/var/run/netns/web-1b' },
          problems: ['workloads.yaml:7: workload "web-1": duplicate workload default/web-1, already defined at line 2'],
        },
        {
          name: 'the same IP',
          fields: { name: 'web-2', netns: '/var/run/netns/web-2' },
          problems: ['workloads.yaml:11: workload "web-2": "ip" 10.0.1.11 is already used by workload "web-1" at line 6'],
        },
        {
          name: 'the same netns path, spelt differently',
          fields: { name: 'web-2', ip: '10.0.1.12', netns: '/var/run//netns/./web-1/' },
          problems: [
            'workloads.yaml:10: workload "web-2": "netns" "/var/run//netns/./web-1/" is already used by workload "web-1" at line 5',
          ],
        },
        {
          name: 'everything at once, in line order',
          fields: {},
          problems: [
            'workloads.yaml:7: workload "web-1": duplicate workload default/web-1, already defined at line 2',
            'workloads.yaml:10: workload "web-1": "netns" "/var/run/netns/web-1" is already used by workload "web-1" at line 5',
            'workloads.yaml:11: workload "web-1": "ip" 10.0.1.11 is already used by workload "web-1" at line 6',
          ],
        },
      ];
      for (const c of cases) {
        it(c.name, () => assert.deepEqual(problemsOf(oneWorkload() + second(c.fields)), c.problems));
      }

      it('allows the same name in different namespaces', () => {
        const text = oneWorkload() + second({ namespace: 'other', ip: '10.0.1.12', netns: '/var/run/netns/web-1b' });
        assert.deepEqual(
          parseWorkloads(text, 'w.yaml').workloads.map((w) => w.identity),
          ['spiffe://cluster.local/ns/default/sa/web', 'spiffe://cluster.local/ns/other/sa/web'],
        );
      });
    });

    describe('collecting problems', () => {
      it('throws one error: the first problem, "(and N more problems)", and the full list', () => {
        const text = loadFixtureText('bad.yaml');
        let caught: unknown;
        try {
          parseWorkloads(text, 'bad.yaml');
        } catch (err) {
          caught = err;
        }
        assert.ok(caught instanceof WorkloadsInvalidError);
        assert.equal(caught.message, 'bad.yaml:2: workload "web-1": missing required field "ip" (and 3 more problems)');
        assert.equal(caught.exitCode, 2);
        assert.deepEqual(caught.problems, [
          'bad.yaml:2: workload "web-1": missing required field "ip"',
          'bad.yaml:6: workload "web-2": missing required field "serviceAccount"',
          'bad.yaml:8: workload "web-2": unknown field "serviceacount" (did you mean "serviceAccount"?)',
          'bad.yaml:10: workload "web-2": "ip" must be an IPv4 address like 10.0.1.11, got "10.0.1"',
        ]);
      });

      it('says "1 more problem" for two problems', () => {
        assert.throws(
          () => parseWorkloads(oneWorkload({ ip: null, netns: 'x' }), 'w.yaml'),
          (err: Error) => err.message.endsWith(' (and 1 more problem)') && err.message.startsWith('w.yaml:2: '),
        );
      });

      it('reports problems in every workload and the top level together', () => {
        const text = 'trustDomain: BAD\n' + oneWorkload({ ip: 'x' }) + 'extra: 1\n';
        assert.deepEqual(problemsOf(text).map((p) => p.split(':').slice(0, 2).join(':')), [
          'workloads.yaml:1',
          'workloads.yaml:7',
          'workloads.yaml:8',
        ]);
      });

      it('keeps a hostile value on one line and short', () => {
        const [problem] = problemsOf(oneWorkload({ ip: JSON.stringify(`1.2.3.4\n${'x'.repeat(500)}`) }));
        assert.ok(problem !== undefined && problem.length < 200, problem);
      });

      it('escapes terminal control and Unicode line-break characters in values', () => {
        const [problem] = problemsOf(oneWorkload({ netns: JSON.stringify('a\u001b[2J\u0085b\u2028c') }));
        assert.equal(problem, 'workloads.yaml:5: workload "web-1": "netns" must be an absolute path like ' +
          '/var/run/netns/web-1 or /proc/1234/ns/net, got "a\\u001b[2J\\u0085b\\u2028c"');
      });

      it('reports an aliased duplicate workload at the alias', () => {
        const text = 'workloads:\n  - &web {name: a, namespace: b, serviceAccount: c, netns: /x, ip: 10.0.1.1}\n  - *web\n';
        assert.deepEqual(problemsOf(text), [
          'workloads.yaml:2: workload "a": "ip" 10.0.1.1 is already used by workload "a" at line 2',
          'workloads.yaml:2: workload "a": "netns" "/x" is already used by workload "a" at line 2',
          'workloads.yaml:3: workload "a": duplicate workload b/a, already defined at line 2',
        ]);
      });
    });
  });

  describe('loadWorkloadsFile', () => {
    it('names the path and errno code of a missing file', () => {
      const missing = path.join(FIXTURES, 'does-not-exist.yaml');
      assert.throws(
        () => loadWorkloadsFile(missing),
        (err: unknown) => {
          assert.ok(err instanceof PalisadeError);
          assert.equal(err.code, 'PALISADE_ERR_WORKLOADS_INVALID');
          assert.equal(err.errnoCode, 'ENOENT');
          assert.equal(err.message, `cannot read workloads file ${missing}: ENOENT (no such file or directory)`);
          return true;
        },
      );
    });

    it('names EISDIR for a directory', () => {
      assert.throws(() => loadWorkloadsFile(FIXTURES), /^PalisadeError: cannot read workloads file .*: EISDIR/);
    });

    it('prefixes problems with the path it was given', () => {
      const file = path.join(FIXTURES, 'bad.yaml');
      assert.throws(() => loadWorkloadsFile(file), (err: Error) => err.message.startsWith(`${file}:2: `));
    });

    it('reads an empty workloads list', () => {
      assert.deepEqual(loadWorkloadsFile(path.join(FIXTURES, 'empty.yaml')).workloads, []);
    });
  });
});

function loadFixtureText(name: string): string {
  return readFileSync(path.join(FIXTURES, name), 'utf8');
}
