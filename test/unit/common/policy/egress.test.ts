import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { authorizeEgress, type EgressRequest, type EgressVerdict, type PolicyWorkload } from '../../../../common/policy';
import { indexOf } from './helpers';

const egress = (name: string, namespace: string, body: string): string =>
  `apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n${body}`;

const POLICIES = [
  egress(
    'web-egress',
    'shop',
    `  selector: {matchLabels: {app: web}}
  allow:
  - hosts: [api.stripe.com, "*.googleapis.com"]
    ports: [443]
  - cidrs: [10.20.0.0/16, "2001:db8::/32"]
    ports: [5432]
  - cidrs: [169.254.169.254]
    ports: [80]
  - hosts: [example.org]
`,
  ),
  egress('wide', 'shop', '  selector: {matchLabels: {app: wide}}\n  allow:\n  - cidrs: [0.0.0.0/0, "::/0"]\n'),
  egress('db-only', 'shop', '  selector: {matchLabels: {app: db}}\n  allow:\n  - cidrs: [10.30.0.0/16]\n'),
  egress('db-extra', 'shop', '  selector: {matchLabels: {tier: data}}\n  allow:\n  - cidrs: [10.31.0.0/16]\n    ports: ["5432"]\n'),
  egress('deny-all', 'locked', '  {}\n'),
  egress('mesh-dns', 'istio-system', '  selector: {matchLabels: {dns: cluster}}\n  allow:\n  - cidrs: [10.96.0.10]\n    ports: [53]\n'),
].join('---\n');

const WEB: PolicyWorkload = { namespace: 'shop', labels: { app: 'web' } };
const WIDE: PolicyWorkload = { namespace: 'shop', labels: { app: 'wide' } };
const DB: PolicyWorkload = { namespace: 'shop', labels: { app: 'db', tier: 'data' } };

type Row = [string, PolicyWorkload, string, number, { host?: string; resolved?: string[] }, EgressVerdict];

const web = (rule: number): Pick<EgressVerdict, 'policy' | 'rule'> => ({ policy: 'shop/web-egress', rule });

describe('authorizeEgress', () => {
  const index = indexOf(POLICIES);
  const rows: Row[] = [
    ['a workload no EgressPolicy selects', { namespace: 'shop', labels: { app: 'other' } }, '1.2.3.4', 443, {}, { allowed: true, reason: 'no-egress-policy' }],
    ['a workload of another namespace', { namespace: 'other', labels: { app: 'web' } }, '1.2.3.4', 443, {}, { allowed: true, reason: 'no-egress-policy' }],
    ['a workload selected by a policy with no rules', { namespace: 'locked', labels: {} }, '1.2.3.4', 443, {}, { allowed: false, reason: 'no-rule-matched' }],
    // CIDR rules
    ['an address in a CIDR rule, on its port', WEB, '10.20.3.4', 5432, {}, { allowed: true, reason: 'allowed-by-cidr', ...web(1) }],
    ['an address in a CIDR rule, another port (a host rule allows any port: needsHost)', WEB, '10.20.3.4', 5433, {}, { allowed: false, reason: 'no-rule-matched', needsHost: true }],
    ['an IPv6 address in an IPv6 CIDR rule', WEB, '2001:db8:7::1', 5432, {}, { allowed: true, reason: 'allowed-by-cidr', ...web(1) }],
    ['an IPv4-mapped IPv6 address in an IPv4 CIDR rule', WEB, '::ffff:10.20.3.4', 5432, {}, { allowed: true, reason: 'allowed-by-cidr', ...web(1) }],
    ['0.0.0.0/0 and ::/0', WIDE, '198.51.100.7', 22, {}, { allowed: true, reason: 'allowed-by-cidr', policy: 'shop/wide', rule: 0 }],
    ['::/0 for IPv6', WIDE, '2606:4700::1111', 443, {}, { allowed: true, reason: 'allowed-by-cidr', policy: 'shop/wide', rule: 0 }],
    ['an address outside every CIDR, no host rules (no needsHost)', DB, '10.99.0.1', 5432, {}, { allowed: false, reason: 'no-rule-matched' }],
    ['the union of two policies selecting one workload', DB, '10.31.0.9', 5432, {}, { allowed: true, reason: 'allowed-by-cidr', policy: 'shop/db-extra', rule: 0 }],
    ['a destination that does not parse', WEB, 'not-an-ip', 443, {}, { allowed: false, reason: 'no-rule-matched' }],
    // host rules
    ['an exact host resolving to the destination', WEB, '203.0.113.5', 443, { host: 'api.stripe.com', resolved: ['203.0.113.9', '203.0.113.5'] }, { allowed: true, reason: 'allowed-by-host', ...web(0) }],
    ['an exact host not resolving to the destination (SNI spoofing)', WEB, '198.51.100.66', 443, { host: 'api.stripe.com', resolved: ['203.0.113.5'] }, { allowed: false, reason: 'host-address-mismatch', ...web(0) }],
    ['an allowed host without resolver answers', WEB, '203.0.113.5', 443, { host: 'api.stripe.com' }, { allowed: false, reason: 'host-address-mismatch', ...web(0) }],
    ['an allowed host on another port', WEB, '203.0.113.5', 80, { host: 'api.stripe.com', resolved: ['203.0.113.5'] }, { allowed: false, reason: 'host-not-allowed' }],
    ['a host rule without ports, any port', WEB, '192.0.2.8', 8443, { host: 'example.org', resolved: ['192.0.2.8'] }, { allowed: true, reason: 'allowed-by-host', ...web(3) }],
    ['a host that is not allowed', WEB, '192.0.2.8', 443, { host: 'evil.example', resolved: ['192.0.2.8'] }, { allowed: false, reason: 'host-not-allowed' }],
    ['a subdomain of an exact host', WEB, '192.0.2.8', 443, { host: 'x.api.stripe.com', resolved: ['192.0.2.8'] }, { allowed: false, reason: 'host-not-allowed' }],
    ['*.googleapis.com: one label deep', WEB, '192.0.2.9', 443, { host: 'storage.googleapis.com', resolved: ['192.0.2.9'] }, { allowed: true, reason: 'allowed-by-host', ...web(0) }],
    ['*.googleapis.com: two labels deep', WEB, '192.0.2.9', 443, { host: 'a.b.googleapis.com', resolved: ['192.0.2.9'] }, { allowed: true, reason: 'allowed-by-host', ...web(0) }],
    ['*.googleapis.com: not the bare domain', WEB, '192.0.2.9', 443, { host: 'googleapis.com', resolved: ['192.0.2.9'] }, { allowed: false, reason: 'host-not-allowed' }],
    ['*.googleapis.com: not a lookalike', WEB, '192.0.2.9', 443, { host: 'evilgoogleapis.com', resolved: ['192.0.2.9'] }, { allowed: false, reason: 'host-not-allowed' }],
    ['a host in upper case with a trailing dot', WEB, '203.0.113.5', 443, { host: 'API.Stripe.com.', resolved: ['203.0.113.5'] }, { allowed: true, reason: 'allowed-by-host', ...web(0) }],
    ['a resolver answer in another IPv6 spelling', WEB, '2001:db8:1::5', 443, { host: 'api.stripe.com', resolved: ['2001:DB8:1:0:0:0:0:5'] }, { allowed: true, reason: 'allowed-by-host', ...web(0) }],
    ['a mapped destination matching an IPv4 answer', WEB, '::ffff:203.0.113.5', 443, { host: 'api.stripe.com', resolved: ['203.0.113.5'] }, { allowed: true, reason: 'allowed-by-host', ...web(0) }],
    ['no host, on a port a host rule allows (needsHost)', WEB, '203.0.113.5', 443, {}, { allowed: false, reason: 'no-rule-matched', needsHost: true }],
    ['an empty host is no host', WEB, '203.0.113.5', 443, { host: '' }, { allowed: false, reason: 'no-rule-matched', needsHost: true }],
    // cloud metadata
    ['the metadata address named exactly, on its port', WEB, '169.254.169.254', 80, {}, { allowed: true, reason: 'allowed-by-cidr', ...web(2) }],
    ['the metadata address named exactly, another port', WEB, '169.254.169.254', 8080, {}, { allowed: false, reason: 'metadata-address' }],
    ['the metadata address under 0.0.0.0/0', WIDE, '169.254.169.254', 80, {}, { allowed: false, reason: 'metadata-address' }],
    ['the mapped metadata address under 0.0.0.0/0', WIDE, '::ffff:169.254.169.254', 80, {}, { allowed: false, reason: 'metadata-address' }],
    ['the ECS metadata address', WIDE, '169.254.170.2', 80, {}, { allowed: false, reason: 'metadata-address' }],
    ['the Alibaba metadata address', WIDE, '100.100.100.200', 80, {}, { allowed: false, reason: 'metadata-address' }],
    ['the AWS IPv6 metadata address under ::/0', WIDE, 'fd00:ec2::254', 80, {}, { allowed: false, reason: 'metadata-address' }],
    ['the metadata address behind an allowed host', WEB, '169.254.169.254', 443, { host: 'api.stripe.com', resolved: ['169.254.169.254'] }, { allowed: false, reason: 'metadata-address' }],
    ['a neighbour of the metadata address under 0.0.0.0/0', WIDE, '169.254.169.253', 80, {}, { allowed: true, reason: 'allowed-by-cidr', policy: 'shop/wide', rule: 0 }],
    // root namespace
    ['a root-namespace policy applies in every namespace', { namespace: 'any', labels: { dns: 'cluster' } }, '10.96.0.10', 53, {}, { allowed: true, reason: 'allowed-by-cidr', policy: 'istio-system/mesh-dns', rule: 0 }],
  ];
  for (const [what, source, ip, port, named, expected] of rows) {
    it(`${expected.allowed ? 'allows' : 'denies'} ${what}`, () => {
      const req: EgressRequest = { source, destination: { ip, port }, ...named };
      assert.deepEqual(authorizeEgress(req, index), expected);
    });
  }

  it('allows what the fixture file documents (test/fixtures/policies/egress.yaml)', () => {
    const yaml = readFileSync(path.resolve(__dirname, '../../../../../test/fixtures/policies/egress.yaml'), 'utf8');
    const fixture = indexOf(yaml);
    const source = { namespace: 'shop', labels: { app: 'web' } };
    assert.equal(authorizeEgress({ source, destination: { ip: '10.20.0.1', port: 5432 } }, fixture).allowed, true);
    assert.equal(authorizeEgress({ source, destination: { ip: '169.254.169.254', port: 80 } }, fixture).allowed, true);
    assert.equal(authorizeEgress({ source, destination: { ip: '169.254.169.254', port: 443 } }, fixture).reason, 'metadata-address');
  });
});

describe('authorizeEgress with deny entries', () => {
  const index = indexOf(
    [
      // An allowlist with a deny list on top.
      egress(
        'api-egress',
        'shop',
        `  selector: {matchLabels: {app: api}}
  allow:
  - hosts: ["*.example.com"]
    ports: [443]
  - cidrs: [10.0.0.0/8, 169.254.169.254]
  deny:
  - hosts: [secret.example.com]
  - cidrs: [10.66.0.0/16]
    ports: [5432]
`,
      ),
      // Deny-only policies: a blocklist, not an allowlist.
      egress(
        'block',
        'shop',
        `  selector: {matchLabels: {tier: back}}
  deny:
  - hosts: ["*.pastebin.com", evil.test]
    ports: [443, 80]
  - cidrs: [203.0.113.0/24]
    ports: [22]
  - cidrs: [169.254.0.0/16]
`,
      ),
      egress('block-v6', 'shop', '  selector: {matchLabels: {tier: back}}\n  deny:\n  - cidrs: ["2001:db8:bad::/48"]\n'),
    ].join('---\n'),
  );
  const API: PolicyWorkload = { namespace: 'shop', labels: { app: 'api' } };
  const BACK: PolicyWorkload = { namespace: 'shop', labels: { tier: 'back' } };
  const BOTH: PolicyWorkload = { namespace: 'shop', labels: { app: 'api', tier: 'back' } };
  const api = (rule: number): Pick<EgressVerdict, 'policy' | 'rule'> => ({ policy: 'shop/api-egress', rule });
  const block = (rule: number): Pick<EgressVerdict, 'policy' | 'rule'> => ({ policy: 'shop/block', rule });
  const rows: Row[] = [
    // deny beats allow
    ['a denied host that an allowed suffix covers', API, '192.0.2.1', 443, { host: 'secret.example.com', resolved: ['192.0.2.1'] }, { allowed: false, reason: 'denied-by-host', ...api(0) }],
    ['a denied host even when it does not resolve to the destination', API, '198.51.100.1', 443, { host: 'Secret.Example.com.', resolved: [] }, { allowed: false, reason: 'denied-by-host', ...api(0) }],
    ['a sibling of the denied host', API, '192.0.2.1', 443, { host: 'www.example.com', resolved: ['192.0.2.1'] }, { allowed: true, reason: 'allowed-by-host', ...api(0) }],
    ['a denied block inside an allowed block, on its port', API, '10.66.1.2', 5432, {}, { allowed: false, reason: 'denied-by-cidr', ...api(1) }],
    ['a denied block inside an allowed block, on another port (a deny host entry could still match: needsHost)', API, '10.66.1.2', 5433, {}, { allowed: true, reason: 'allowed-by-cidr', ...api(1), needsHost: true }],
    ['an allowed block named by host, on the denied name', API, '10.1.1.1', 8080, { host: 'secret.example.com', resolved: ['10.1.1.1'] }, { allowed: false, reason: 'denied-by-host', ...api(0) }],
    ['the metadata address an allow entry names exactly', API, '169.254.169.254', 80, {}, { allowed: true, reason: 'allowed-by-cidr', ...api(1), needsHost: true }],
    // deny-only policies
    ['a destination no deny entry names, for a workload only deny-only policies select', BACK, '198.51.100.9', 8443, {}, { allowed: true, reason: 'not-denied' }],
    ['a port a deny host entry covers, without a name (needsHost)', BACK, '198.51.100.9', 443, {}, { allowed: true, reason: 'not-denied', needsHost: true }],
    ['a name no deny entry names', BACK, '198.51.100.9', 443, { host: 'api.github.com', resolved: ['198.51.100.9'] }, { allowed: true, reason: 'not-denied' }],
    ['a denied suffix', BACK, '198.51.100.9', 443, { host: 'a.b.pastebin.com' }, { allowed: false, reason: 'denied-by-host', ...block(0) }],
    ['the bare domain of a denied suffix', BACK, '198.51.100.9', 443, { host: 'pastebin.com' }, { allowed: true, reason: 'not-denied' }],
    ['a denied host on a port its entry does not list', BACK, '198.51.100.9', 8443, { host: 'evil.test' }, { allowed: true, reason: 'not-denied' }],
    ['a denied block on its port', BACK, '203.0.113.7', 22, {}, { allowed: false, reason: 'denied-by-cidr', ...block(1) }],
    ['a denied block on another port', BACK, '203.0.113.7', 2222, {}, { allowed: true, reason: 'not-denied' }],
    ['a mapped address in a denied IPv4 block', BACK, '::ffff:203.0.113.7', 22, {}, { allowed: false, reason: 'denied-by-cidr', ...block(1) }],
    ['a denied IPv6 block of a second deny-only policy', BACK, '2001:db8:bad::1', 443, { host: 'ok.test' }, { allowed: false, reason: 'denied-by-cidr', policy: 'shop/block-v6', rule: 0 }],
    ['the metadata address under a wide deny block', BACK, '169.254.169.254', 80, {}, { allowed: false, reason: 'denied-by-cidr', ...block(2) }],
    ['a metadata address no deny entry names (deny-only policies do not close metadata)', BACK, '100.100.100.200', 8080, {}, { allowed: true, reason: 'not-denied' }],
    ['a destination that does not parse', BACK, 'nope', 80, {}, { allowed: false, reason: 'no-rule-matched' }],
    // a deny-only policy does not deny others, and an allowlist next to it stays an allowlist
    ['a denied host, for a workload the deny-only policy does not select', API, '192.0.2.1', 443, { host: 'www.pastebin.com', resolved: ['192.0.2.1'] }, { allowed: false, reason: 'host-not-allowed' }],
    ['a denied block, for a workload the deny-only policy does not select', { namespace: 'shop', labels: { app: 'other' } }, '203.0.113.7', 22, {}, { allowed: true, reason: 'no-egress-policy' }],
    ['a destination neither denies, when an allowlist selects the workload too', BOTH, '198.51.100.9', 8443, {}, { allowed: false, reason: 'no-rule-matched' }],
    ['a host the allowlist allows and the deny-only policy denies', BOTH, '192.0.2.1', 443, { host: 'evil.test', resolved: ['192.0.2.1'] }, { allowed: false, reason: 'denied-by-host', ...block(0) }],
    ['a name the allowlist allows, for a workload both select', BOTH, '192.0.2.1', 443, { host: 'www.example.com', resolved: ['192.0.2.1'] }, { allowed: true, reason: 'allowed-by-host', ...api(0) }],
  ];
  for (const [what, source, ip, port, named, expected] of rows) {
    it(`${expected.allowed ? 'allows' : 'denies'} ${what}`, () => {
      const req: EgressRequest = { source, destination: { ip, port }, ...named };
      assert.deepEqual(authorizeEgress(req, index), expected);
    });
  }

  it('an allow field, even empty, keeps a policy with deny entries an allowlist', () => {
    const both = indexOf(egress('x', 'shop', '  allow: []\n  deny:\n  - cidrs: [10.0.0.0/8]\n'));
    const source = { namespace: 'shop', labels: {} };
    assert.deepEqual(authorizeEgress({ source, destination: { ip: '10.1.1.1', port: 80 } }, both), { allowed: false, reason: 'denied-by-cidr', policy: 'shop/x', rule: 0 });
    assert.deepEqual(authorizeEgress({ source, destination: { ip: '11.1.1.1', port: 80 } }, both), { allowed: false, reason: 'no-rule-matched' });
  });
});

describe('authorizeEgress by protocol', () => {
  const index = indexOf(
    [
      egress(
        'dns',
        'shop',
        `  selector: {matchLabels: {app: dns}}
  allow:
  - cidrs: [10.9.0.0/16]
    ports: [53]
    protocol: UDP
  - cidrs: [10.8.0.0/16]
    protocol: ICMP
  - cidrs: [0.0.0.0/0]
    protocol: UDP
  deny:
  - cidrs: [10.9.9.0/24]
    protocol: UDP
`,
      ),
      egress('block', 'shop', '  selector: {matchLabels: {tier: back}}\n  deny:\n  - cidrs: [203.0.113.0/24]\n'),
    ].join('---\n'),
  );
  const DNS: PolicyWorkload = { namespace: 'shop', labels: { app: 'dns' } };
  const BACK: PolicyWorkload = { namespace: 'shop', labels: { tier: 'back' } };
  const dns = (rule: number): Pick<EgressVerdict, 'policy' | 'rule'> => ({ policy: 'shop/dns', rule });
  const rows: Array<[string, PolicyWorkload, EgressRequest['protocol'], string, number, EgressVerdict]> = [
    ['UDP an allow entry of UDP names', DNS, 'UDP', '10.9.1.1', 53, { allowed: true, reason: 'allowed-by-cidr', ...dns(0) }],
    ['UDP a UDP deny entry names (deny wins)', DNS, 'UDP', '10.9.9.1', 53, { allowed: false, reason: 'denied-by-cidr', ...dns(0) }],
    ['ICMP an ICMP entry names', DNS, 'ICMP', '10.8.0.1', 0, { allowed: true, reason: 'allowed-by-cidr', ...dns(1) }],
    ['ICMP only UDP entries name', DNS, 'ICMP', '10.9.1.1', 0, { allowed: false, reason: 'no-rule-matched' }],
    ['TCP where only UDP and ICMP entries allow: the allowlist has no TCP entry', DNS, 'TCP', '10.9.1.1', 53, { allowed: false, reason: 'no-rule-matched' }],
    ['TCP to the UDP-denied block: a UDP deny entry is not a TCP one', DNS, undefined, '10.9.9.1', 53, { allowed: false, reason: 'no-rule-matched' }],
    ['the metadata address through a wide UDP block', DNS, 'UDP', '169.254.169.254', 53, { allowed: false, reason: 'metadata-address' }],
    ['UDP for a workload no policy selects (default deny)', { namespace: 'shop', labels: {} }, 'UDP', '10.9.1.1', 53, { allowed: false, reason: 'no-rule-matched' }],
    ['UDP for a workload only deny-only policies select (default deny)', BACK, 'UDP', '198.51.100.1', 53, { allowed: false, reason: 'no-rule-matched' }],
    ['TCP for that workload (deny-only: not denied)', BACK, 'TCP', '198.51.100.1', 53, { allowed: true, reason: 'not-denied' }],
    ['ICMP to a block a deny entry of TCP names, for a deny-only workload', BACK, 'ICMP', '203.0.113.1', 0, { allowed: false, reason: 'no-rule-matched' }],
  ];
  for (const [what, source, protocol, ip, port, expected] of rows) {
    it(`${expected.allowed ? 'allows' : 'denies'} ${what}`, () => {
      assert.deepEqual(authorizeEgress({ source, destination: { ip, port }, ...(protocol ? { protocol } : {}) }, index), expected);
    });
  }
});
