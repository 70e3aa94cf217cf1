import { strict as assert } from 'node:assert';
import { Answerer, HOSTS_TTL_S, MESH_TTL_S } from '../../../../agent/dns/answerer';
import { DnsCache } from '../../../../agent/dns/cache';
import type { HostsFile } from '../../../../agent/dns/hosts-file';
import { parseQuery, parseResponse, type Query } from '../../../../agent/dns/message';
import { MeshNames } from '../../../../agent/dns/mesh-names';
import { PodNames } from '../../../../agent/dns/pod-names';
import type { UpstreamResult } from '../../../../agent/dns/upstream';
import { FLAG } from '../../../../agent/dns/wire';
import { indexOf } from '../../common/policy/helpers';
import { CLIENT_POD, query, response, soa, T, type ResponseOptions } from '../../../fixtures/dns-messages';

const CLIENT = CLIENT_POD;

const ENFORCE = `apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata: {name: client-out, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  dns: Enforce
  allow:
  - hosts: [api.example.com, big.example.com, silent.example.com, www.example.com, nx.example.com, short.example.com]
`;

/** An upstream that answers from a table (by name), counts what it was asked, and can be held. */
class FakeUpstream {
  asked: string[] = [];
  answers = new Map<string, ResponseOptions | 'timeout'>();
  hold: Promise<void> | undefined;

  async resolve(_msg: Buffer, q: Query): Promise<UpstreamResult> {
    this.asked.push(q.question.name);
    await this.hold;
    const a = this.answers.get(q.question.name);
    if (a === undefined || a === 'timeout') return { kind: 'failed', reason: 'upstream-timeout' };
    const msg = response(q.question.name, { type: q.question.type, ...a });
    return { kind: 'answer', msg, response: parseResponse(msg), server: { ip: '10.255.0.53', port: 53 }, transport: 'udp' };
  }
}

describe('Answerer', () => {
  let now: number;
  let upstream: FakeUpstream;
  let names: PodNames;
  let answerer: Answerer;
  const hosts = { lookup: (n: string) => (n === 'allowed.example.test' ? ['172.31.0.100'] : undefined) } as unknown as HostsFile;

  beforeEach(() => {
    now = 1_000_000;
    upstream = new FakeUpstream();
    names = new PodNames({ now: () => now });
    const mesh = new MeshNames('cluster.local', { version: () => '1', entries: () => [{ name: 'web', namespace: 'default', ip: '10.0.1.11' }] });
    answerer = new Answerer({ mesh, hosts, cache: new DnsCache({ now: () => now }), upstream, names, policies: { index: indexOf(ENFORCE) }, now: () => now });
  });

  const ask = (name: string, opts: Parameters<typeof query>[1] = {}, transport: 'udp' | 'tcp' = 'udp') => answerer.answer(query(name, opts), CLIENT, transport);

  it('answers mesh names itself, with a short TTL, and never asks upstream', async () => {
    const { response: r, outcome } = await ask('web.default.svc.cluster.local');
    const p = parseResponse(r!);
    assert.deepEqual(p.answers.map((a) => [a.data, a.ttl]), [['10.0.1.11', MESH_TTL_S]]);
    assert.deepEqual([outcome.verdict, outcome.reason, outcome.rcode, outcome.answers], ['allowed', 'mesh-name', 'NOERROR', ['10.0.1.11']]);
    assert.deepEqual(upstream.asked, []);
    assert.deepEqual(names.addressesFor('default/client', 'web.default.svc.cluster.local'), [], 'mesh traffic is not egress: not remembered');
  });

  it('refuses a name no allow rule covers with NXDOMAIN, the policy in the outcome, nothing asked or remembered', async () => {
    const { response: r, outcome } = await ask('evil.example');
    const p = parseResponse(r!);
    assert.equal(p.header.rcode, 3);
    assert.deepEqual([outcome.verdict, outcome.reason, outcome.policy, outcome.rcode], ['denied', 'host-not-allowed', 'default/client-out', 'NXDOMAIN']);
    assert.deepEqual(upstream.asked, []);
  });

  it('answers the hosts file\'s names itself and remembers them for the pod', async () => {
    const open = new Answerer({
      mesh: new MeshNames('cluster.local', { version: () => '1', entries: () => [] }),
      hosts,
      cache: new DnsCache(),
      upstream,
      names,
      policies: { index: indexOf('') },
      now: () => now,
    });
    const { response: r, outcome } = await open.answer(query('Allowed.Example.TEST'), CLIENT, 'udp');
    assert.deepEqual(parseResponse(r!).answers.map((a) => [a.data, a.ttl]), [['172.31.0.100', HOSTS_TTL_S]]);
    assert.equal(outcome.reason, 'hosts-file');
    assert.deepEqual(names.addressesFor('default/client', 'allowed.example.test'), ['172.31.0.100']);
  });

  it('forwards, remembers the chain\'s addresses for the pod before answering, and caches for the TTL', async () => {
    upstream.answers.set('www.example.com', {
      answers: [
        { name: 'www.example.com', type: T.CNAME, ttl: 300, data: 'edge.example.net' },
        { name: 'edge.example.net', type: T.A, ttl: 20, data: '192.0.2.7' },
        { name: 'unrelated.example', type: T.A, ttl: 20, data: '203.0.113.9' },
      ],
    });
    const first = await ask('www.example.com', { id: 1 });
    assert.deepEqual([first.outcome.reason, first.outcome.answers], ['forwarded', ['edge.example.net.', '192.0.2.7', '203.0.113.9']]);
    assert.deepEqual(names.addressesFor('default/client', 'www.example.com'), ['192.0.2.7']);
    assert.deepEqual(names.addressesFor('default/client', 'unrelated.example'), [], 'not vouched for by the question');
    now += 19_000;
    const second = await ask('WWW.example.com', { id: 2 });
    assert.equal(second.outcome.reason, 'cached');
    const p = parseResponse(second.response!);
    assert.equal(p.header.id, 2);
    assert.deepEqual(p.answers.map((a) => a.ttl), [281, 1, 1], 'TTLs lowered by the 19 s spent in the cache');
    now += 1_000;
    assert.equal((await ask('www.example.com')).outcome.reason, 'forwarded', 'the TTL has run out');
    assert.deepEqual(upstream.asked, ['www.example.com', 'www.example.com']);
  });

  it('caches NXDOMAIN for the SOA\'s negative TTL (RFC 2308), not without an SOA', async () => {
    upstream.answers.set('nx.example.com', { rcode: 3, authority: [{ name: 'example.com', type: T.SOA, ttl: 600, data: soa(10) }] });
    upstream.answers.set('short.example.com', { rcode: 3 });
    await ask('nx.example.com');
    await ask('short.example.com');
    now += 9_000;
    assert.equal((await ask('nx.example.com')).outcome.reason, 'cached');
    assert.equal((await ask('short.example.com')).outcome.reason, 'forwarded');
    now += 1_000;
    assert.equal((await ask('nx.example.com')).outcome.reason, 'forwarded');
  });

  it('asks upstream once for identical queries under way', async () => {
    upstream.answers.set('api.example.com', { answers: [{ name: 'api.example.com', type: T.A, data: '192.0.2.1' }] });
    let release!: () => void;
    upstream.hold = new Promise((r) => (release = r));
    const pending = [ask('api.example.com', { id: 1 }), ask('api.example.com', { id: 2 }), ask('api.example.com', { id: 3 })];
    release();
    const done = await Promise.all(pending);
    assert.deepEqual(done.map((d) => parseResponse(d.response!).header.id), [1, 2, 3]);
    assert.deepEqual(upstream.asked, ['api.example.com']);
  });

  it('answers SERVFAIL when upstream is silent, remembering nothing', async () => {
    upstream.answers.set('silent.example.com', 'timeout');
    const { response: r, outcome } = await ask('silent.example.com');
    assert.equal(parseResponse(r!).header.rcode, 2);
    assert.deepEqual([outcome.verdict, outcome.reason, outcome.rcode], ['error', 'upstream-timeout', 'SERVFAIL']);
    assert.equal(names.size, 0);
  });

  it('truncates a UDP answer bigger than the client takes (TC, no records); over TCP it goes whole', async () => {
    const many = Array.from({ length: 30 }, (_, i) => ({ name: 'big.example.com', type: T.A, data: `192.0.2.${i + 1}` }));
    upstream.answers.set('big.example.com', { answers: many });
    const udp = await ask('big.example.com');
    const p = parseResponse(udp.response!);
    assert.ok(p.header.flags & FLAG.TC);
    assert.deepEqual([p.header.ancount, udp.outcome.truncated, udp.response!.length <= 512], [0, true, true]);
    assert.deepEqual(names.addressesFor('default/client', 'big.example.com'), [], 'the truncated answer told the pod nothing');
    const tcp = await ask('big.example.com', {}, 'tcp');
    assert.equal(parseResponse(tcp.response!).header.ancount, 30);
    const edns = await ask('big.example.com', { edns: 1232 });
    assert.equal(parseResponse(edns.response!).header.ancount, 30, 'EDNS 1232 holds them');
    assert.equal(names.addressesFor('default/client', 'big.example.com').length, 30);
  });

  const refusals: Array<[string, Buffer, string, string, boolean]> = [
    ['garbage', Buffer.from('not dns at all, really'), 'malformed-query', 'FORMERR', true],
    ['a response sent as a query', response('a.example'), 'malformed-query', '-', false],
    ['a header alone', Buffer.alloc(5), 'malformed-query', '-', false],
    ['an UPDATE (opcode 5)', query('a.example', { flags: 5 << 11 }), 'unsupported-opcode', 'NOTIMP', true],
    ['class CHAOS', query('version.bind', { type: T.TXT, qclass: 3 }), 'unsupported-class', 'REFUSED', true],
    ['a zone transfer', query('example.com', { type: T.AXFR }), 'zone-transfer', 'REFUSED', true],
  ];
  for (const [what, msg, reason, rcode, answered] of refusals) {
    it(`refuses ${what} (${rcode}), asking nobody`, async () => {
      const { response: r, outcome } = await answerer.answer(msg, CLIENT, 'udp');
      assert.deepEqual([outcome.verdict, outcome.reason, outcome.rcode, r !== undefined], ['denied', reason, rcode, answered]);
      assert.deepEqual(upstream.asked, []);
    });
  }

  it('parses the query it answers strictly: an ID it can echo, and the question as asked', async () => {
    const m = query('web', { id: 0xfeed });
    const q = parseQuery(m);
    const { response: r } = await answerer.answer(m, CLIENT, 'udp');
    assert.equal(parseResponse(r!).header.id, q.header.id);
  });
});
