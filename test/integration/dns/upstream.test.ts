/**
 * The DNS proxy's forwarder over real loopback sockets against a resolver that misbehaves on
 * request (test/harness/dns-upstream.ts): silence, TC, garbage, wrong IDs and questions, a second
 * server behind a silent first one.
 */
import { strict as assert } from 'node:assert';
import * as dgram from 'node:dgram';
import { parseQuery } from '../../../agent/dns/message';
import { Upstream, type UpstreamResult } from '../../../agent/dns/upstream';
import { silentLogger } from '../../../common/log';
import { startDnsUpstream, type DnsUpstream } from '../../harness/dns-upstream';
import { query, T } from '../../fixtures/dns-messages';

describe('Upstream (loopback resolvers)', function () {
  this.timeout(20_000);
  let server: DnsUpstream;
  let upstream: Upstream;

  before(async () => {
    server = await startDnsUpstream('127.0.0.1', 0, { 'ok.example.test': ['192.0.2.10'] });
  });
  after(async () => server.close());
  beforeEach(() => (upstream = new Upstream({ servers: [{ ip: '127.0.0.1', port: server.port }], timeoutMs: 300, log: silentLogger() })));
  afterEach(() => upstream.close());

  const ask = (name: string, u = upstream): Promise<UpstreamResult> => {
    const m = query(name, { type: T.A });
    return u.resolve(m, parseQuery(m));
  };
  const addresses = (r: UpstreamResult): string[] => (r.kind === 'answer' ? r.response.answers.map((a) => a.data) : []);

  it('answers from the server, over UDP, with a fresh ID that is not the client\'s', async () => {
    const r = await ask('ok.example.test');
    assert.equal(r.kind, 'answer');
    assert.deepEqual(addresses(r), ['192.0.2.10']);
    assert.equal(r.kind === 'answer' && r.transport, 'udp');
    const ids = [];
    for (let i = 0; i < 20; i++) {
      await ask('ok.example.test');
      ids.push(server.queries.at(-1)!.id);
    }
    assert.ok(new Set(ids).size >= 18 && !ids.includes(0x1234), `random IDs, never the client's: ${ids.join(',')}`);
  });

  it('asks again over TCP when the UDP answer is truncated', async () => {
    const r = await ask('tc.example.test');
    assert.deepEqual([r.kind === 'answer' && r.transport, addresses(r)], ['tcp', ['192.0.2.50']]);
    assert.equal(upstream.stats().tcpRetries, 1);
  });

  it('times out on a silent server and says so (the caller answers SERVFAIL)', async () => {
    const t0 = Date.now();
    assert.deepEqual(await ask('silent.example.test'), { kind: 'failed', reason: 'upstream-timeout' });
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(upstream.stats().timeouts, 1);
  });

  it('ignores an answer that does not parse, one with another ID, and one to another question; counted', async () => {
    assert.deepEqual(await ask('garbage.example.test'), { kind: 'failed', reason: 'upstream-timeout' });
    assert.deepEqual(addresses(await ask('wrongid.example.test')), ['192.0.2.60'], 'the answer with the right ID, not the one before it');
    assert.deepEqual(await ask('wrongq.example.test'), { kind: 'failed', reason: 'upstream-timeout' });
    assert.equal(upstream.stats().badAnswers, 3);
  });

  it('takes an answer bigger than its EDNS size (the datagram is whole)', async () => {
    assert.equal(addresses(await ask('huge.example.test')).length, 150);
  });

  it('tries the next server when one is silent, and asks the one that answered first next time', async () => {
    const dead = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => dead.bind(0, '127.0.0.1', () => resolve()));
    const two = new Upstream({ servers: [{ ip: '127.0.0.1', port: dead.address().port }, { ip: '127.0.0.1', port: server.port }], timeoutMs: 300, log: silentLogger() });
    try {
      const t0 = Date.now();
      assert.deepEqual(addresses(await ask('ok.example.test', two)), ['192.0.2.10']);
      assert.ok(Date.now() - t0 >= 290, 'after the first server timed out');
      const t1 = Date.now();
      assert.deepEqual(addresses(await ask('ok.example.test', two)), ['192.0.2.10']);
      assert.ok(Date.now() - t1 < 250, 'straight to the one that answered');
    } finally {
      two.close();
      dead.close();
    }
  });

  it('refuses past its bound of queries under way, and with no server at all', async () => {
    const small = new Upstream({ servers: [{ ip: '127.0.0.1', port: server.port }], timeoutMs: 300, maxInflight: 2, log: silentLogger() });
    try {
      const three = await Promise.all(['silent.a.test', 'silent.b.test', 'ok.example.test'].map((n) => ask(n, small)));
      assert.deepEqual(three.map((r) => r.kind === 'failed' && r.reason), ['upstream-timeout', 'upstream-timeout', 'upstream-overloaded']);
    } finally {
      small.close();
    }
    const none = new Upstream({ servers: [], log: silentLogger() });
    assert.deepEqual(await ask('ok.example.test', none), { kind: 'failed', reason: 'no-upstream' });
  });

  it('uses a new socket (a new source port) every 100 queries', async () => {
    const before = server.queries.length;
    for (let i = 0; i < 150; i++) await ask('ok.example.test');
    const seen = server.queries.slice(before);
    assert.equal(seen.length, 150);
    assert.equal(new Set(seen.slice(0, 100).map((q) => q.port)).size, 1, 'one socket for the first 100');
    assert.equal(new Set(seen.map((q) => q.port)).size, 2, 'a second one after');
  });
});
