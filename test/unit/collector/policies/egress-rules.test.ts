import { strict as assert } from 'node:assert';
import { classifyDestination, egressRuleManifest, egressRuleViews } from '../../../../collector/policies/egress-rules';
import { CompiledPolicies } from '../../../../collector/policies/compiled-set';
import { digestOf } from '../../../../collector/policies/set-digest';
import { desiredPolicy, policyKey, type StoredPolicy } from '../../../../collector/policies/repository';
import { PalisadeError } from '../../../../common/errors';
import type { RegistryWorkload } from '../../../../common/mesh-protocol';
import { compilePolicyFiles } from '../../../../common/policy';

const WEB = { namespace: 'shop', name: 'web' };

function workload(namespace: string, name: string, labels: Record<string, string>): RegistryWorkload {
  return { node: 'node-1', nodeAddress: '10.0.0.1', namespace, name, serviceAccount: name, identity: `spiffe://td/ns/${namespace}/sa/${name}`, ip: '10.0.1.1', labels };
}

describe('egress rules', () => {
  describe('classifyDestination', () => {
    const cases: [unknown, ReturnType<typeof classifyDestination> | RegExp][] = [
      ['api.example.com', { host: 'api.example.com' }],
      ['API.Example.COM.', { host: 'api.example.com' }],
      ['*.example.com', { host: '*.example.com' }],
      ['10.0.0.0/8', { cidr: '10.0.0.0/8' }],
      ['192.0.2.7', { cidr: '192.0.2.7/32' }],
      ['2001:db8::/32', { cidr: '2001:db8::/32' }],
      ['', /give a host/],
      [42, /give a host/],
      ['10.0.0.0/33', /./],
      ['bad host', /./],
    ];
    for (const [d, expected] of cases) {
      it(`${JSON.stringify(d)} → ${expected instanceof RegExp ? 'a problem' : JSON.stringify(expected)}`, () => {
        const got = classifyDestination(d);
        if (expected instanceof RegExp) {
          assert.ok('problem' in got, JSON.stringify(got));
          assert.match(got.problem, expected);
        } else assert.deepEqual(got, expected);
      });
    }
  });

  describe('egressRuleManifest', () => {
    it('is one EgressPolicy selecting exactly the workload, named after it, the action and the id, that compiles', () => {
      const manifest = egressRuleManifest(WEB, { workload: 'web', action: 'allow', destinations: ['a.example.com', '10.0.0.0/8', 'a.example.com'], ports: [443, 80, 443] }, 7);
      assert.deepEqual(manifest, {
        apiVersion: 'palisade.dev/v1',
        kind: 'EgressPolicy',
        metadata: { name: 'web-allow-7', namespace: 'shop', labels: { 'palisade.dev/managed-by': 'cli' } },
        spec: {
          selector: { matchLabels: { 'palisade.dev/workload': 'web' } },
          allow: [
            { hosts: ['a.example.com'], ports: [80, 443] },
            { cidrs: ['10.0.0.0/8'], ports: [80, 443] },
          ],
        },
      });
      const set = compilePolicyFiles([{ source: 'x', text: JSON.stringify(manifest) }]);
      assert.deepEqual(set.egress.map((p) => p.id), ['shop/web-allow-7']);
    });

    it('writes a UDP or ICMP protocol into the entry (TCP, the default, is left out)', () => {
      const udp = egressRuleManifest(WEB, { workload: 'web', action: 'allow', destinations: ['10.9.0.0/16'], ports: [53], protocol: 'UDP' }, 8);
      assert.deepEqual((udp.spec as { allow: unknown[] }).allow, [{ cidrs: ['10.9.0.0/16'], ports: [53], protocol: 'UDP' }]);
      const icmp = egressRuleManifest(WEB, { workload: 'web', action: 'deny', destinations: ['10.8.0.1'], protocol: 'ICMP' }, 9);
      assert.deepEqual((icmp.spec as { deny: unknown[] }).deny, [{ cidrs: ['10.8.0.1/32'], protocol: 'ICMP' }]);
      const set = compilePolicyFiles([{ source: 'x', text: JSON.stringify(udp) }]);
      assert.deepEqual(set.egress[0]?.rules.map((r) => r.protocol), ['UDP']);
    });

    const badProtocol: [string, Parameters<typeof egressRuleManifest>[1], RegExp][] = [
      ['a UDP host', { workload: 'web', action: 'allow', destinations: ['dns.example.com'], protocol: 'UDP' }, /^"dns\.example\.com" is a host: host rules are TCP only .*give UDP destinations as CIDRs$/],
      ['ICMP with a port', { workload: 'web', action: 'allow', destinations: ['10.0.0.0/8'], ports: [7], protocol: 'ICMP' }, /^ICMP has no ports \(leave out --port\)$/],
    ];
    for (const [what, req, message] of badProtocol) {
      it(`refuses ${what} in one line`, () => {
        assert.throws(
          () => egressRuleManifest(WEB, req, 1),
          (err: unknown) => err instanceof PalisadeError && err.code === 'PALISADE_ERR_INVALID_ARGUMENT' && message.test(err.message),
        );
      });
    }

    const refused: [string, string[], number[] | undefined, RegExp][] = [
      ['no destination', [], undefined, /^name at least one destination/],
      ['too many destinations', Array.from({ length: 101 }, (_, i) => `h${i}.example.com`), undefined, /^at most 100 destinations/],
      ['a bad destination', ['ok.example.com', 'bad host'], undefined, /^invalid destination "bad host": /],
      ['a bad port', ['ok.example.com'], [0], /^invalid port "0": use a number from 1 to 65535$/],
    ];
    for (const [what, destinations, ports, message] of refused) {
      it(`refuses ${what} in one line`, () => {
        assert.throws(
          () => egressRuleManifest(WEB, { workload: 'web', action: 'deny', destinations, ...(ports ? { ports } : {}) }, 1),
          (err: unknown) => err instanceof PalisadeError && err.code === 'PALISADE_ERR_INVALID_ARGUMENT' && message.test(err.message) && !err.message.includes('\n'),
        );
      });
    }
  });

  describe('egressRuleViews', () => {
    const yaml = [
      'apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: web-out, namespace: shop}\nspec:\n  selector: {matchLabels: {palisade.dev/workload: web}}\n  allow:\n  - hosts: [a.example.com, "*.b.example.com"]\n    ports: [443, 80]\n  deny:\n  - cidrs: [10.0.0.0/8]\n',
      'apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: all-out, namespace: shop}\nspec:\n  allow:\n  - hosts: [c.example.com]\n',
    ].join('---\n');
    const set = compilePolicyFiles([{ source: 'p.yaml', text: yaml }]);
    const stored: StoredPolicy[] = set.egress.map((p, i) => ({ ...desiredPolicy(p, 'api'), id: i + 1, version: 3 }));
    const compiled = CompiledPolicies.of(stored);
    const byKey = new Map(stored.map((p) => [policyKey(p), p]));
    const workloads = [workload('shop', 'web', { 'palisade.dev/workload': 'web' }), workload('shop', 'db', { 'palisade.dev/workload': 'db' })];

    it('lists every deny then allow entry per policy, with id, origin, version and the workloads selected', () => {
      const views = egressRuleViews(digestOf(compiled.set), byKey, workloads);
      assert.deepEqual(
        views.map((v) => [v.id, v.policy, v.action, v.hosts, v.cidrs, v.protocol, v.ports, v.workloads, v.origin, v.version]),
        [
          [2, 'all-out', 'allow', ['c.example.com'], [], 'TCP', [], ['shop/db', 'shop/web'], 'api', 3],
          [1, 'web-out', 'deny', [], ['10.0.0.0/8'], 'TCP', [], ['shop/web'], 'api', 3],
          [1, 'web-out', 'allow', ['a.example.com', '*.b.example.com'], [], 'TCP', [80, 443], ['shop/web'], 'api', 3],
        ],
      );
    });

    it('with a workload, only the policies selecting it', () => {
      assert.deepEqual(
        egressRuleViews(digestOf(compiled.set), byKey, workloads, { namespace: 'shop', name: 'db' }).map((v) => v.policy),
        ['all-out'],
      );
    });
  });
});
