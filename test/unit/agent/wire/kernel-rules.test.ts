import { strict as assert } from 'node:assert';
import { compileKernelRules, type KernelRule, type RulePod, type RuleSource } from '../../../../agent/wire/kernel-rules';
import { IPPROTO_ICMP, IPPROTO_UDP } from '../../../../agent/datapath/pod-codec';
import { authorizeEgress, type EgressRequest } from '../../../../common/policy';
import { cidrContains, IpAddr, parseCidr, parseIpInto } from '../../../../common/policy/ip';
import { indexOf } from '../../common/policy/helpers';
import { prng } from '../../../fixtures/prng';

const egress = (name: string, body: string): string => `apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, namespace: shop}\nspec:\n${body}`;
const authz = (name: string, body: string): string =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}, namespace: shop}\nspec:\n${body}`;

const pod = (podId: number, labels: Record<string, string>, strict = false): RulePod => ({
  podId,
  workload: { namespace: 'shop', labels, ip: `10.0.1.${10 + podId}`, strict },
});

/** What the filter does: the exact port's space, then port 0; the longest prefix containing the address. */
function lookup(rules: readonly KernelRule[], r: Pick<KernelRule, 'direction' | 'protocol' | 'podId' | 'port'>, addr: string): KernelRule | undefined {
  const ip = new IpAddr();
  assert.ok(parseIpInto(addr, ip));
  const find = (port: number): KernelRule | undefined => {
    let best: KernelRule | undefined;
    let bits = -1;
    for (const k of rules) {
      if (k.direction !== r.direction || k.protocol !== r.protocol || k.podId !== r.podId || k.port !== port) continue;
      const c = parseCidr(k.cidr);
      assert.ok('cidr' in c);
      if (cidrContains(c.cidr, ip) && c.cidr.bits > bits) {
        best = k;
        bits = c.cidr.bits;
      }
    }
    return best;
  };
  return find(r.port) ?? (r.port !== 0 ? find(0) : undefined);
}

const rng = prng;

describe('compileKernelRules', () => {
  describe('from a pod (EgressPolicy UDP and ICMP entries)', () => {
    it('compiles nothing without an allow entry of the protocol: UDP and ICMP stay default-deny', () => {
      const index = indexOf(
        [
          egress('tcp-only', '  selector: {matchLabels: {app: a}}\n  allow:\n  - cidrs: [0.0.0.0/0]\n'),
          egress('deny-only', '  selector: {matchLabels: {app: b}}\n  deny:\n  - cidrs: [10.0.0.0/8]\n    protocol: UDP\n'),
        ].join('---\n'),
      );
      assert.deepEqual(compileKernelRules([pod(1, { app: 'a' }), pod(2, { app: 'b' }), pod(3, {})], index, []), []);
    });

    it('compiles an allow entry per port, with the policy and rule it stands for', () => {
      const index = indexOf(egress('dns', '  selector: {matchLabels: {app: a}}\n  allow:\n  - hosts: [a.com]\n  - cidrs: [10.9.0.0/16]\n    ports: [53]\n    protocol: UDP\n'));
      assert.deepEqual(compileKernelRules([pod(1, { app: 'a' })], index, []), [
        { direction: 'from-pod', protocol: IPPROTO_UDP, podId: 1, port: 53, cidr: '10.9.0.0/16', verdict: 'allow', ref: { policy: 'shop/dns', rule: 1, reason: 'allowed-by-cidr' } },
      ]);
    });

    it('turns an allow block inside a deny block into a deny, and guards metadata addresses an allow block covers', () => {
      const index = indexOf(
        egress(
          'mix',
          `  selector: {matchLabels: {app: a}}
  allow:
  - cidrs: [0.0.0.0/0]
    protocol: ICMP
  - cidrs: [10.1.2.0/24]
    protocol: ICMP
  deny:
  - cidrs: [10.1.0.0/16]
    protocol: ICMP
`,
        ),
      );
      const rules = compileKernelRules([pod(1, { app: 'a' })], index, []).map((r) => [r.port, r.cidr, r.verdict, r.ref.reason]);
      assert.deepEqual(rules.sort(), [
        [0, '0.0.0.0/0', 'allow', 'allowed-by-cidr'],
        [0, '10.1.0.0/16', 'deny', 'denied-by-cidr'],
        [0, '10.1.2.0/24', 'deny', 'denied-by-cidr'],
        [0, '100.100.100.200/32', 'deny', 'metadata-address'],
        [0, '169.254.169.254/32', 'deny', 'metadata-address'],
        [0, '169.254.170.2/32', 'deny', 'metadata-address'],
      ]);
    });

    it('gives exactly what authorizeEgress decides, for generated policies and destinations (2,000 cases)', () => {
      const next = rng(14);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
      const blocks = ['0.0.0.0/0', '10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3/32', '169.254.0.0/16', '169.254.169.254/32', '100.64.0.0/10', '172.16.0.0/12', '2001:db8::/32'];
      const addrs = ['10.1.2.3', '10.1.2.4', '10.1.9.9', '10.200.0.1', '169.254.169.254', '169.254.170.2', '169.254.1.1', '100.100.100.200', '172.16.5.5', '8.8.8.8'];
      const ports = [53, 123, 5353];
      let cases = 0;
      for (let round = 0; round < 100; round++) {
        const entry = (): string => {
          const proto = pick(['UDP', 'ICMP', 'TCP']);
          const withPorts = proto === 'UDP' && next() < 0.5 ? `\n    ports: [${pick(ports)}${next() < 0.3 ? `, ${pick(ports)}` : ''}]` : '';
          return `  - cidrs: [${pick(blocks)}${next() < 0.3 ? `, ${pick(blocks)}` : ''}]${withPorts}\n    protocol: ${proto}`;
        };
        const allow = Array.from({ length: 1 + Math.floor(next() * 3) }, entry);
        const deny = Array.from({ length: Math.floor(next() * 3) }, entry);
        const body = `  selector: {matchLabels: {app: a}}\n  allow:\n${allow.join('\n')}\n${deny.length ? `  deny:\n${deny.join('\n')}\n` : ''}`;
        const extra = next() < 0.3 ? `---\n${egress('second', `  allow:\n${entry()}\n`)}` : '';
        const index = indexOf(egress('gen', body) + extra);
        const p = pod(1, { app: 'a' });
        const rules = compileKernelRules([p], index, []);
        for (const protocol of ['UDP', 'ICMP'] as const) {
          for (const addr of addrs) {
            for (const port of protocol === 'ICMP' ? [0] : [...ports, 9]) {
              const req: EgressRequest = { source: p.workload, destination: { ip: addr, port }, protocol };
              const want = authorizeEgress(req, index);
              const got = lookup(rules, { direction: 'from-pod', protocol: protocol === 'UDP' ? IPPROTO_UDP : IPPROTO_ICMP, podId: 1, port }, addr);
              const what = `${body}${extra}\n${protocol} ${addr}:${port}: ${JSON.stringify(want)} vs ${JSON.stringify(got)}`;
              assert.equal(got?.verdict === 'allow', want.allowed, what);
              // Several allow entries may cover one destination: the longest prefix names one of them.
              if (want.allowed) assert.equal(got?.ref.reason, 'allowed-by-cidr', what);
              cases++;
            }
          }
        }
      }
      assert.ok(cases >= 2000, `${cases} cases`);
    });
  });

  describe('to a strict pod (AuthorizationPolicy ports)', () => {
    const sources: RuleSource[] = [
      { ip: '10.0.2.10', identity: 'spiffe://cluster.local/ns/shop/sa/client', namespace: 'shop' },
      { ip: '10.0.2.11', identity: 'spiffe://cluster.local/ns/shop/sa/other', namespace: 'shop' },
    ];

    it('allows UDP only on ports an ALLOW rule names, only from the sources it allows', () => {
      const index = indexOf(
        [
          authz('syslog', '  selector: {matchLabels: {app: log}}\n  action: ALLOW\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]\n    to: [{operation: {ports: ["514"]}}]\n'),
          authz('any', '  selector: {matchLabels: {app: log}}\n  action: ALLOW\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/shop/sa/other]}}]\n'),
        ].join('---\n'),
      );
      const rules = compileKernelRules([pod(4, { app: 'log' }, true)], index, sources);
      assert.deepEqual(rules, [
        { direction: 'to-pod', protocol: IPPROTO_UDP, podId: 4, port: 514, cidr: '10.0.2.10/32', verdict: 'allow', ref: { policy: 'shop/syslog', rule: 0, reason: 'allowed-by-policy' } },
        // "other" is allowed on every port by the second policy, so on 514 too; but no rule names another port.
        { direction: 'to-pod', protocol: IPPROTO_UDP, podId: 4, port: 514, cidr: '10.0.2.11/32', verdict: 'allow', ref: { policy: 'shop/any', rule: 0, reason: 'allowed-by-policy' } },
      ]);
    });

    it('gives nothing to a pod that is not strict, without a policy, or where a DENY matches', () => {
      const allow = authz('syslog', '  selector: {matchLabels: {app: log}}\n  action: ALLOW\n  rules:\n  - to: [{operation: {ports: ["514"]}}]\n');
      const deny = authz('no', '  selector: {matchLabels: {app: log}}\n  action: DENY\n  rules:\n  - from: [{source: {principals: ["*"]}}]\n');
      assert.deepEqual(compileKernelRules([pod(4, { app: 'log' }, false)], indexOf(allow), sources), []);
      assert.deepEqual(compileKernelRules([pod(4, { app: 'other' }, true)], indexOf(allow), sources), []);
      assert.deepEqual(compileKernelRules([pod(4, { app: 'log' }, true)], indexOf(`${allow}---\n${deny}`), sources), []);
    });
  });
});
