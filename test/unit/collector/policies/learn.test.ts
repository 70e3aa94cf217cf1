import { strict as assert } from 'node:assert';
import { parse } from 'yaml';
import type { StoredFlow } from '../../../../common/flows-api';
import type { FlowProtocol, FlowRecord, FlowVerdict } from '../../../../common/flow';
import { authorizeEgress, compilePolicyFiles, PolicyIndex, type EgressVerdict } from '../../../../common/policy';
import { learnEgress } from '../../../../collector/policies/learn';

const T0 = Date.parse('2025-03-01T10:00:00.000Z');
const WEB = { namespace: 'shop', name: 'web' };
/** The labels the registry gives web: its own and the implicit one. */
const WEB_LABELS = { app: 'web', 'palisade.dev/workload': 'web' };

let nextId = 1;

/** An egress record of shop/web (the proxy's shape). */
function egress(ip: string, port: number | undefined, opts: { host?: string; protocol?: FlowProtocol; verdict?: FlowVerdict; reason?: string; at?: number; source?: string } = {}): StoredFlow {
  const verdict = opts.verdict ?? 'allowed';
  return {
    id: nextId++,
    time: new Date(T0 + (opts.at ?? 0) * 1000).toISOString(),
    node: 'node-1',
    direction: 'egress',
    source: { ip: '10.0.1.11', port: 40000, workload: opts.source ?? 'web', namespace: 'shop', identity: 'spiffe://cluster.local/ns/shop/sa/web' },
    destination: { ip, ...(port !== undefined ? { port } : {}), ...(opts.host !== undefined ? { host: opts.host } : {}) },
    protocol: opts.protocol ?? (opts.host ? 'tls' : 'tcp'),
    verdict,
    reason: opts.reason ?? (verdict === 'allowed' ? 'no-egress-policy' : 'host-not-allowed'),
    mtls: false,
    bytesSent: 1,
    bytesReceived: 1,
    durationMs: 1,
  };
}

/** Flows that were allowed (learned by default). */
const ALLOWED: StoredFlow[] = [
  egress('140.82.112.5', 443, { host: 'api.github.com', at: 1 }),
  egress('140.82.112.5', 443, { host: 'api.github.com', at: 2 }),
  egress('140.82.112.6', 80, { host: 'API.GitHub.com.', protocol: 'http', at: 3 }),
  egress('140.82.112.9', 443, { host: 'uploads.github.com', at: 4 }),
  egress('185.199.108.133', 443, { host: 'objects.githubusercontent.com', at: 5 }),
  egress('10.0.0.5', 5432, { at: 6 }),
  egress('10.0.0.6', 5432, { at: 7 }),
  egress('::ffff:10.0.0.7', 5432, { at: 8 }),
  egress('2001:db8::1', 443, { at: 9, protocol: 'tls' }),
  egress('169.254.169.254', 80, { host: 'metadata.google.internal', protocol: 'http', at: 10 }),
  egress('192.0.2.10', 8080, { host: '192.0.2.10', protocol: 'http', at: 11 }),
  egress('198.51.100.4', 25, { host: 'bad_host!', protocol: 'http', at: 12 }),
  egress('198.51.100.5', undefined, { at: 13 }),
];
/** Flows that are left out by default. */
const LEFT_OUT: StoredFlow[] = [
  egress('203.0.113.9', 443, { host: 'evil.test', verdict: 'denied', reason: 'host-not-allowed', at: 20 }),
  egress('203.0.113.10', 9000, { verdict: 'denied', reason: 'no-rule-matched', at: 21 }),
  egress('169.254.169.254', 443, { verdict: 'denied', reason: 'metadata-address', at: 22 }),
  egress('198.51.100.66', 443, { host: 'api.github.com', verdict: 'denied', reason: 'host-address-mismatch', at: 23 }),
  egress('203.0.113.11', 443, { host: 'blocked.test', verdict: 'denied', reason: 'denied-by-host', at: 24 }),
  egress('140.82.112.5', 443, { host: 'api.github.com', verdict: 'error', reason: 'upstream-failed', at: 25 }),
];
/** Flows that are not web's egress at all. */
const OTHERS: StoredFlow[] = [
  egress('1.1.1.1', 53, { source: 'api', at: 30 }),
  { ...egress('10.0.2.10', 8080, { at: 31 }), direction: 'outbound' },
  { ...egress('10.0.2.10', 8080, { at: 32 }), source: { ip: '10.0.1.11', workload: 'web', namespace: 'other' } },
];

/** The verdict the proposal, applied alone, gives a recorded flow (the name resolving to the recorded address). */
function verdictOf(yaml: string, f: FlowRecord, labels: Record<string, string> = WEB_LABELS): EgressVerdict {
  const index = new PolicyIndex(compilePolicyFiles([{ source: 'learned.yaml', text: yaml }]));
  const host = f.destination.host;
  return authorizeEgress(
    { source: { namespace: f.source.namespace!, labels }, destination: { ip: f.destination.ip, port: f.destination.port ?? 0 }, ...(host ? { host, resolved: [f.destination.ip] } : {}) },
    index,
  );
}

describe('learnEgress', () => {
  const all = [...ALLOWED, ...LEFT_OUT, ...OTHERS];

  it('proposes minimal allow entries: names, else addresses, one entry per port set', () => {
    const r = learnEgress(all, WEB);
    assert.equal(r.flows, ALLOWED.length + LEFT_OUT.length);
    assert.deepEqual(r.skipped, { 'host-not-allowed': 1, 'no-rule-matched': 1, 'metadata-address': 1, 'host-address-mismatch': 1, 'denied-by-host': 1, 'upstream-failed': 1 });
    assert.deepEqual(r.manifest, {
      apiVersion: 'palisade.dev/v1',
      kind: 'EgressPolicy',
      metadata: { name: 'web-egress-learned', namespace: 'shop' },
      spec: {
        selector: { matchLabels: { 'palisade.dev/workload': 'web' } },
        allow: [
          { hosts: ['api.github.com'], ports: [80, 443] },
          { hosts: ['uploads.github.com', 'objects.githubusercontent.com'], ports: [443] },
          { cidrs: ['198.51.100.5/32'] },
          { cidrs: ['198.51.100.4/32'], ports: [25] },
          { cidrs: ['169.254.169.254/32'], ports: [80] },
          { cidrs: ['2001:db8::1/128'], ports: [443] },
          { cidrs: ['10.0.0.5/32', '10.0.0.6/32', '10.0.0.7/32'], ports: [5432] },
          { cidrs: ['192.0.2.10/32'], ports: [8080] },
        ],
      },
    });
    assert.deepEqual(r.destinations.slice(0, 4), [
      { host: 'api.github.com', ports: [80, 443], flows: 3 },
      { host: 'uploads.github.com', ports: [443], flows: 1 },
      { host: 'objects.githubusercontent.com', ports: [443], flows: 1 },
      { cidr: '10.0.0.5/32', ports: [5432], flows: 1 },
    ]);
    assert.deepEqual(r.destinations.find((d) => d.cidr === '198.51.100.5/32'), { cidr: '198.51.100.5/32', ports: [], flows: 1 });
    assert.deepEqual(parse(r.yaml), r.manifest);
  });

  it('YAML that compiles, allows every learned flow, and denies anything new', () => {
    const r = learnEgress(all, WEB);
    for (const f of ALLOWED) assert.equal(verdictOf(r.yaml, f).allowed, true, `${f.destination.host ?? f.destination.ip}:${f.destination.port}`);
    const denied: [string, number, string | undefined][] = [
      ['140.82.112.5', 443, 'gist.github.com'],
      ['140.82.112.9', 80, 'uploads.github.com'],
      ['10.0.0.8', 5432, undefined],
      ['10.0.0.5', 5433, undefined],
      ['169.254.169.254', 443, undefined],
      ['203.0.113.9', 443, 'evil.test'],
    ];
    for (const [ip, port, host] of denied) {
      assert.equal(verdictOf(r.yaml, egress(ip, port, host ? { host } : {})).allowed, false, `${host ?? ip}:${port}`);
    }
    // It selects web only.
    assert.equal(verdictOf(r.yaml, egress('203.0.113.9', 443), { app: 'web', 'palisade.dev/workload': 'api' }).reason, 'no-egress-policy');
  });

  it('says where it came from in a comment', () => {
    const r = learnEgress(all, WEB);
    const header = r.yaml.split('\n').filter((l) => l.startsWith('#'));
    assert.deepEqual(header, [
      '# Learned by palisade egress learn for shop/web from 19 egress flows, 2025-03-01T10:00:01.000Z to 2025-03-01T10:00:25.000Z.',
      '# Left out: 1 denied-by-host, 1 host-address-mismatch, 1 host-not-allowed, 1 metadata-address, 1 no-rule-matched, 1 upstream-failed.',
      '# Applied, it allows these destinations and denies all other egress of the workload: review it first.',
    ]);
  });

  it('is deterministic: the same flows in another order give the same YAML', () => {
    const a = learnEgress(all, WEB, { groupSuffixes: true });
    const b = learnEgress([...all].reverse(), WEB, { groupSuffixes: true });
    assert.equal(b.yaml, a.yaml);
    assert.deepEqual(b.destinations, a.destinations);
  });

  it('includeDenied learns what policy denied, never explicit denials, spoofed names or metadata', () => {
    const r = learnEgress(all, WEB, { includeDenied: true });
    assert.deepEqual(r.skipped, { 'metadata-address': 1, 'host-address-mismatch': 1, 'denied-by-host': 1, 'upstream-failed': 1 });
    assert.ok(r.destinations.some((d) => d.host === 'evil.test'));
    assert.ok(r.destinations.some((d) => d.cidr === '203.0.113.10/32'));
    assert.ok(!r.destinations.some((d) => d.host === 'blocked.test'));
    for (const f of [...ALLOWED, LEFT_OUT[0]!, LEFT_OUT[1]!]) assert.equal(verdictOf(r.yaml, f).allowed, true);
  });

  describe('groupSuffixes', () => {
    const names = (hosts: [string, number][]): StoredFlow[] => hosts.map(([host, port], i) => egress(`192.0.2.${i + 1}`, port, { host }));

    it('replaces two or more names under one parent with *.parent, ports joined', () => {
      const r = learnEgress(all, WEB, { groupSuffixes: true });
      const spec = r.manifest.spec as { allow: unknown[] };
      assert.deepEqual(spec.allow.slice(0, 2), [{ hosts: ['*.github.com'], ports: [80, 443] }, { hosts: ['objects.githubusercontent.com'], ports: [443] }]);
      assert.deepEqual(r.destinations.slice(0, 2), [
        { host: '*.github.com', ports: [80, 443], flows: 4 },
        { host: 'objects.githubusercontent.com', ports: [443], flows: 1 },
      ]);
      for (const f of ALLOWED) assert.equal(verdictOf(r.yaml, f).allowed, true);
      assert.equal(verdictOf(r.yaml, egress('140.82.112.5', 443, { host: 'gist.github.com' })).allowed, true);
      assert.equal(verdictOf(r.yaml, egress('140.82.112.5', 443, { host: 'github.com' })).allowed, false);
    });

    it('never groups under a bare TLD or a country-code public suffix', () => {
      const r = learnEgress(names([['a.com', 443], ['b.com', 443], ['x.co.uk', 443], ['y.co.uk', 443], ['p.com.au', 443], ['q.com.au', 443]]), WEB, { groupSuffixes: true });
      assert.deepEqual(r.destinations.map((d) => d.host), ['p.com.au', 'q.com.au', 'a.com', 'b.com', 'x.co.uk', 'y.co.uk']);
    });

    it('groups under a two-label parent that is not a public suffix, and under deeper parents', () => {
      const r = learnEgress(names([['a.shop.co.uk', 443], ['b.shop.co.uk', 443], ['api.fly.io', 443], ['cdn.fly.io', 443]]), WEB, { groupSuffixes: true });
      assert.deepEqual(r.destinations.map((d) => d.host), ['*.fly.io', '*.shop.co.uk']);
    });

    it('folds names a suffix covers (ports included) into it, and keeps the others', () => {
      const r = learnEgress(
        names([['a.example.com', 443], ['b.example.com', 443], ['x.y.example.com', 443], ['z.y.example.com', 443], ['deep.q.example.com', 8443], ['example.com', 443]]),
        WEB,
        { groupSuffixes: true },
      );
      assert.deepEqual(r.destinations, [
        { host: 'example.com', ports: [443], flows: 1 },
        { host: '*.example.com', ports: [443], flows: 4 },
        { host: 'deep.q.example.com', ports: [8443], flows: 1 },
      ]);
    });
  });

  it('proposes UDP and ICMP flows with their protocol, as addresses (bug: it proposed TCP host/port rules from them)', () => {
    const dgram = [
      egress('1.1.1.1', 53, { protocol: 'udp', host: 'one.one.one.one', at: 40 }), // a name on a UDP record is never a host entry
      egress('1.1.1.1', 53, { protocol: 'udp', at: 41 }),
      egress('8.8.8.8', 53, { protocol: 'udp', at: 42 }),
      egress('192.0.2.50', 123, { protocol: 'udp', at: 43 }),
      egress('192.0.2.50', 443, { at: 44 }), // the same address over TCP: an entry of its own
      egress('192.0.2.60', undefined, { protocol: 'icmp', at: 45 }),
      egress('192.0.2.61', 7, { protocol: 'icmp', at: 46 }), // an ICMP record never has ports in the proposal
      egress('192.0.2.70', undefined, { protocol: 'other', at: 47 }),
      egress('192.0.2.71', undefined, { protocol: 'arp', at: 48 }),
    ];
    const r = learnEgress(dgram, WEB);
    assert.deepEqual((r.manifest.spec as Record<string, unknown>).allow, [
      { cidrs: ['192.0.2.50/32'], ports: [443] },
      { cidrs: ['1.1.1.1/32', '8.8.8.8/32'], ports: [53], protocol: 'UDP' },
      { cidrs: ['192.0.2.50/32'], ports: [123], protocol: 'UDP' },
      { cidrs: ['192.0.2.60/32', '192.0.2.61/32'], protocol: 'ICMP' },
    ]);
    assert.deepEqual(r.skipped, { 'unlearnable-protocol': 2 });
    assert.deepEqual(r.destinations, [
      { cidr: '192.0.2.50/32', ports: [443], flows: 1 },
      { cidr: '1.1.1.1/32', ports: [53], protocol: 'UDP', flows: 2 },
      { cidr: '8.8.8.8/32', ports: [53], protocol: 'UDP', flows: 1 },
      { cidr: '192.0.2.50/32', ports: [123], protocol: 'UDP', flows: 1 },
      { cidr: '192.0.2.60/32', ports: [], protocol: 'ICMP', flows: 1 },
      { cidr: '192.0.2.61/32', ports: [], protocol: 'ICMP', flows: 1 },
    ]);
    assert.deepEqual(parse(r.yaml), r.manifest);
    // Applied, it allows each learned flow in its own protocol, and not in another.
    const decide = (ip: string, port: number, protocol: 'TCP' | 'UDP' | 'ICMP'): boolean => {
      const index = new PolicyIndex(compilePolicyFiles([{ source: 'learned.yaml', text: r.yaml }]));
      return authorizeEgress({ source: { namespace: 'shop', labels: WEB_LABELS }, destination: { ip, port }, protocol }, index).allowed;
    };
    assert.deepEqual(
      [decide('1.1.1.1', 53, 'UDP'), decide('192.0.2.50', 123, 'UDP'), decide('192.0.2.50', 443, 'TCP'), decide('192.0.2.60', 0, 'ICMP'), decide('192.0.2.61', 0, 'ICMP')],
      [true, true, true, true, true],
    );
    assert.deepEqual(
      [decide('1.1.1.1', 53, 'TCP'), decide('192.0.2.50', 443, 'UDP'), decide('192.0.2.50', 123, 'TCP'), decide('192.0.2.60', 0, 'UDP'), decide('8.8.8.8', 0, 'ICMP')],
      [false, false, false, false, false],
    );
  });

  it('an empty window proposes a policy that denies all egress, and policyName names it', () => {
    const r = learnEgress(OTHERS, WEB, { policyName: 'web-out' });
    assert.equal(r.flows, 0);
    assert.deepEqual(r.destinations, []);
    assert.deepEqual((r.manifest.metadata as Record<string, unknown>).name, 'web-out');
    assert.deepEqual((r.manifest.spec as Record<string, unknown>).allow, []);
    assert.match(r.yaml, /^# Learned by palisade egress learn for shop\/web from 0 egress flows\.\n# Nothing to allow was seen/);
    assert.equal(verdictOf(r.yaml, egress('1.1.1.1', 53)).reason, 'no-rule-matched');
  });
});
