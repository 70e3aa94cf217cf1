import { strict as assert } from 'node:assert';
import { cacheKey, cacheTtlS, DnsCache, type CachedAnswer } from '../../../../agent/dns/cache';

function answer(bytes = 100): Omit<CachedAnswer, 'storedAt' | 'expiresAt'> {
  return { msg: Buffer.alloc(bytes), questionEnd: 20, ttlOffsets: [], flags: 0x8180, rcode: 0, addresses: [], names: [], shown: [] };
}

describe('DnsCache', () => {
  describe('cacheTtlS', () => {
    const cases: Array<[string, Parameters<typeof cacheTtlS>[0], number]> = [
      ['an answer: its smallest TTL', { rcode: 0, answerCount: 2, minAnswerTtl: 30, negativeTtl: undefined }, 30],
      ['an answer past the cap: the cap', { rcode: 0, answerCount: 1, minAnswerTtl: 86_400, negativeTtl: undefined }, 3600],
      ['an answer with TTL 0: not kept', { rcode: 0, answerCount: 1, minAnswerTtl: 0, negativeTtl: undefined }, 0],
      ['NXDOMAIN with an SOA: RFC 2308 min(TTL, MINIMUM)', { rcode: 3, answerCount: 0, minAnswerTtl: undefined, negativeTtl: 60 }, 60],
      ['NODATA with an SOA: the same', { rcode: 0, answerCount: 0, minAnswerTtl: undefined, negativeTtl: 15 }, 15],
      ['NXDOMAIN without an SOA: not kept (RFC 2308 §5)', { rcode: 3, answerCount: 0, minAnswerTtl: undefined, negativeTtl: undefined }, 0],
      ['SERVFAIL: never kept', { rcode: 2, answerCount: 0, minAnswerTtl: undefined, negativeTtl: 60 }, 0],
      ['REFUSED: never kept', { rcode: 5, answerCount: 0, minAnswerTtl: undefined, negativeTtl: 60 }, 0],
    ];
    for (const [what, a, ttl] of cases) it(what, () => assert.equal(cacheTtlS(a, 3600), ttl));
  });

  it('serves an entry until its TTL has passed, then forgets it', () => {
    let now = 1_000_000;
    const cache = new DnsCache({ now: () => now });
    const key = cacheKey('a.example', 1, 1, false);
    cache.set(key, answer(), 30);
    now += 29_999;
    assert.ok(cache.get(key));
    now += 1;
    assert.equal(cache.get(key), undefined);
    assert.deepEqual([cache.stats().hits, cache.stats().misses, cache.stats().entries, cache.stats().bytes], [1, 1, 0, 0]);
  });

  it('keys by name, type, class and the DNSSEC OK bit', () => {
    assert.equal(new Set([cacheKey('a', 1, 1, false), cacheKey('a', 28, 1, false), cacheKey('a', 1, 3, false), cacheKey('a', 1, 1, true), cacheKey('b', 1, 1, false)]).size, 5);
  });

  it('drops the least recently used past its entry or byte bound, counted', () => {
    const cache = new DnsCache({ maxEntries: 3, maxBytes: 10_000 });
    for (const k of ['a', 'b', 'c']) cache.set(k, answer(), 60);
    assert.ok(cache.get('a'));
    cache.set('d', answer(), 60);
    assert.equal(cache.get('b'), undefined, 'b was the least recently used');
    assert.ok(cache.get('a') && cache.get('c') && cache.get('d'));
    const small = new DnsCache({ maxEntries: 100, maxBytes: 3000 });
    for (let i = 0; i < 10; i++) small.set(`k${i}`, answer(290), 60);
    assert.ok(small.stats().bytes <= 3000);
    assert.equal(small.stats().evicted, 10 - small.stats().entries);
  });

  it('does not keep an answer larger than a tenth of its bytes, nor one with TTL 0', () => {
    const cache = new DnsCache({ maxBytes: 1000 });
    cache.set('big', answer(200), 60);
    cache.set('zero', answer(), 0);
    assert.equal(cache.stats().entries, 0);
  });
});
