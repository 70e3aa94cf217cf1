import { strict as assert } from 'node:assert';
import { PodNames, podKey } from '../../../../agent/dns/pod-names';

describe('PodNames', () => {
  let now = 0;
  const clock = { now: () => now };
  beforeEach(() => (now = 1_000_000));

  it('answers only what that pod resolved for that name', () => {
    const names = new PodNames(clock);
    names.remember('default/client', ['api.example.com'], [{ ip: '192.0.2.1', ttl: 300 }]);
    assert.deepEqual(names.addressesFor('default/client', 'api.example.com'), ['192.0.2.1']);
    assert.deepEqual(names.addressesFor('default/other', 'api.example.com'), [], 'another pod');
    assert.deepEqual(names.addressesFor('default/client', 'www.example.com'), [], 'another name');
    assert.deepEqual(names.addressesFor('default/client', 'API.Example.com.'), ['192.0.2.1'], 'an SNI in another case, with a trailing dot');
  });

  it('keeps an address for its TTL, at least the minimum and at most the maximum', () => {
    const names = new PodNames({ ...clock, minRetentionMs: 60_000, maxRetentionMs: 3_600_000 });
    names.remember('p', ['short'], [{ ip: '10.0.0.1', ttl: 0 }]);
    names.remember('p', ['mid'], [{ ip: '10.0.0.2', ttl: 600 }]);
    names.remember('p', ['long'], [{ ip: '10.0.0.3', ttl: 86_400 }]);
    now += 59_999;
    assert.deepEqual(['short', 'mid', 'long'].map((n) => names.addressesFor('p', n).length), [1, 1, 1]);
    now += 1;
    assert.deepEqual(names.addressesFor('p', 'short'), [], 'TTL 0: kept the minimum, then gone');
    now = 1_000_000 + 600_000;
    assert.deepEqual(names.addressesFor('p', 'mid'), [], 'gone at its TTL');
    now = 1_000_000 + 3_600_000;
    assert.deepEqual(names.addressesFor('p', 'long'), [], 'a day\'s TTL is cut to the maximum');
  });

  it('remembers the addresses under every name of the CNAME chain, and a new answer adds to the old', () => {
    const names = new PodNames(clock);
    names.remember('p', ['www.example.com', 'edge.example.net'], [{ ip: '192.0.2.7', ttl: 60 }]);
    names.remember('p', ['www.example.com'], [{ ip: '192.0.2.8', ttl: 60 }]);
    assert.deepEqual(names.addressesFor('p', 'www.example.com').sort(), ['192.0.2.7', '192.0.2.8']);
    assert.deepEqual(names.addressesFor('p', 'edge.example.net'), ['192.0.2.7']);
  });

  it('is bounded per pod: the least recently resolved names and the soonest expiring addresses go, counted', () => {
    const names = new PodNames({ ...clock, maxNames: 3, maxAddresses: 2 });
    for (const n of ['a', 'b', 'c']) names.remember('p', [n], [{ ip: '10.0.0.1', ttl: 60 }]);
    names.remember('p', ['a'], [{ ip: '10.0.0.1', ttl: 60 }]);
    names.remember('p', ['d'], [{ ip: '10.0.0.1', ttl: 60 }]);
    assert.deepEqual(['a', 'b', 'c', 'd'].map((n) => names.addressesFor('p', n).length), [1, 0, 1, 1]);
    names.remember('p', ['a'], [{ ip: '10.0.0.2', ttl: 3000 }, { ip: '10.0.0.3', ttl: 2000 }]);
    assert.deepEqual(names.addressesFor('p', 'a').sort(), ['10.0.0.2', '10.0.0.3']);
    assert.equal(names.evicted, 2);
    assert.equal(names.size, 3);
  });

  it('hands what is still valid to the next agent: snapshot, then restore (shape checked, bounded, nothing expired)', () => {
    const names = new PodNames({ ...clock, maxRetentionMs: 3_600_000 });
    names.remember('default/a', ['x.example', 'edge.example'], [{ ip: '10.0.0.1', ttl: 300 }]);
    names.remember('default/b', ['y.example'], [{ ip: '2001:db8::1', ttl: 0 }]);
    const snap = JSON.parse(JSON.stringify(names.snapshot())) as unknown;
    now += 120_000;
    const next = new PodNames({ ...clock, maxRetentionMs: 3_600_000 });
    const hostile = [['default/a', 'z.example', 'not-an-ip', now + 1000], ['default/a', 'w.example', '10.0.0.9', now + 10 * 3_600_000], 'junk', [1, 2, 3, 4]];
    assert.equal(next.restore([...(snap as unknown[]), ...hostile]), 3, 'x and edge (y had expired), and w');
    assert.deepEqual([next.addressesFor('default/a', 'x.example'), next.addressesFor('default/a', 'edge.example'), next.addressesFor('default/b', 'y.example')], [['10.0.0.1'], ['10.0.0.1'], []]);
    assert.deepEqual(next.addressesFor('default/a', 'z.example'), []);
    now += 3_600_000;
    assert.deepEqual(next.addressesFor('default/a', 'w.example'), [], 'a far future is cut to the maximum retention');
    assert.equal(next.restore({ not: 'a list' }), 0);
  });

  it('forgets pods that left', () => {
    const names = new PodNames(clock);
    names.remember('default/a', ['x'], [{ ip: '10.0.0.1', ttl: 60 }]);
    names.remember('default/b', ['x'], [{ ip: '10.0.0.1', ttl: 60 }]);
    names.retain(new Set(['default/b']));
    assert.deepEqual([names.addressesFor('default/a', 'x').length, names.addressesFor('default/b', 'x').length], [0, 1]);
    assert.equal(podKey({ namespace: 'shop', name: 'web' }), 'shop/web');
  });
});
