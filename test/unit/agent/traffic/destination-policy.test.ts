import { strict as assert } from 'node:assert';
import type { Duplex } from 'node:stream';
import { cookieValue, fnv1a, hashValue, pickOf, rendezvous, type Balancing } from '../../../../agent/traffic/balance';
import { Bulkhead } from '../../../../agent/traffic/bulkhead';
import { DestinationPolicies, limitsOf, type RequestPolicy } from '../../../../agent/traffic/destination-policy';
import { RequestDispatch } from '../../../../agent/traffic/dispatcher';
import { Ejections, ejectionsHonoured, MAX_OUTLIER_EJECTION_MS } from '../../../../agent/traffic/ejections';
import { PeakEwma } from '../../../../agent/traffic/peak-ewma';
import { RetryBudget } from '../../../../agent/traffic/retry-budget';
import { compilePolicyFiles } from '../../../../common/policy';
import { DEFAULT_CONNECTION_POOL, DEFAULT_OUTLIER_DETECTION, type LoadBalancer, type OutlierDetection, type RouteRule, type SessionPersistence } from '../../../../common/routes';
import { endpointTag, readSession, sessionEndpoint, sessionHeader, sessionPick, sessionTags, type SessionState } from '../../../../agent/traffic/session';

const KEYS = Array.from({ length: 10 }, (_, i) => `10.0.0.${i + 1}:80`);
const ALL = KEYS.map((_, i) => i);
const balancing = (over: Partial<Balancing> = {}): Balancing => {
  let t = 0;
  return { turn: () => t++, outstanding: () => 0, random: Math.random, ...over };
};
const HEADER: LoadBalancer = { kind: 'HASH', by: 'header', name: 'x-user' };
const input = (headers: Record<string, string[]> = {}, query = '', sourceIp = '10.1.0.5') => ({ headers, query, sourceIp });

describe('DestinationRule decisions (agent/traffic)', () => {
  describe('hash values', () => {
    const CASES: [string, LoadBalancer & { kind: 'HASH' }, ReturnType<typeof input>, string | undefined][] = [
      ['a header', { kind: 'HASH', by: 'header', name: 'x-user' }, input({ 'x-user': ['alice'] }), 'alice'],
      ['a header left out', { kind: 'HASH', by: 'header', name: 'x-user' }, input(), undefined],
      ['a cookie among others', { kind: 'HASH', by: 'cookie', name: 'sid' }, input({ cookie: ['a=1; sid=xyz; b=2'] }), 'xyz'],
      ['a cookie left out', { kind: 'HASH', by: 'cookie', name: 'sid' }, input({ cookie: ['sidx=1'] }), undefined],
      ['the client pod\'s address', { kind: 'HASH', by: 'source-ip', name: '' }, input(), '10.1.0.5'],
      ['a query parameter', { kind: 'HASH', by: 'query', name: 'user' }, input({}, '?a=1&user=bob'), 'bob'],
      ['a query parameter left out', { kind: 'HASH', by: 'query', name: 'user' }, input({}, '?a=1'), undefined],
    ];
    for (const [what, lb, req, want] of CASES) it(what, () => assert.equal(hashValue(lb, req), want));
    it('reads a cookie out of several Cookie headers', () => assert.equal(cookieValue(['a=1', 'b=2; c=3'], 'c'), '3'));
  });

  describe('consistent hash (rendezvous)', () => {
    it('the same value always lands on the same endpoint; values spread over every endpoint', () => {
      const seen = new Map<number, number>();
      for (let u = 0; u < 2000; u++) {
        const h = fnv1a(`user-${u}`);
        const i = rendezvous(h, KEYS, ALL)!;
        assert.equal(rendezvous(h, KEYS, ALL), i);
        seen.set(i, (seen.get(i) ?? 0) + 1);
      }
      assert.equal(seen.size, KEYS.length);
      for (const n of seen.values()) assert.ok(n > 100 && n < 320, `each endpoint near 200 of 2,000: ${[...seen.values()].join(',')}`);
    });
    it('an endpoint leaving moves only its own users', () => {
      const without = ALL.filter((i) => i !== 3);
      let moved = 0;
      for (let u = 0; u < 1000; u++) {
        const h = fnv1a(`user-${u}`);
        const before = rendezvous(h, KEYS, ALL)!;
        const after = rendezvous(h, KEYS, without)!;
        if (before !== 3) assert.equal(after, before);
        else moved++;
      }
      assert.ok(moved > 0);
    });
    it('pickOf: a request without the value is left to the default balancer', () => {
      assert.equal(pickOf(HEADER, 's', undefined, balancing()), undefined);
      assert.equal(pickOf(undefined, 's', 'x', balancing()), undefined);
    });
  });

  describe('simple balancers', () => {
    it('ROUND_ROBIN goes round the candidates', () => {
      const pick = pickOf({ kind: 'ROUND_ROBIN' }, 's', undefined, balancing())!;
      assert.deepEqual([0, 1, 2, 3].map(() => pick(KEYS, [2, 5, 7])), [2, 5, 7, 2]);
    });
    it('RANDOM lands by the random source', () => {
      const pick = pickOf({ kind: 'RANDOM' }, 's', undefined, balancing({ random: () => 0.5 }))!;
      assert.equal(pick(KEYS, [1, 2, 3, 4]), 3);
    });
    it('LEAST_REQUEST takes the one of two with fewer requests in progress', () => {
      const busy: Record<string, number> = { [KEYS[0]!]: 5, [KEYS[1]!]: 1 };
      const rnd = [0, 0];
      let k = 0;
      const pick = pickOf({ kind: 'LEAST_REQUEST' }, 's', undefined, balancing({ outstanding: (key) => busy[key] ?? 0, random: () => rnd[k++ % 2]! }))!;
      assert.equal(pick(KEYS, [0, 1]), 1);
    });
  });

  describe('bulkhead (connectionPool)', () => {
    const LIMITS = { maxActive: 2, maxPending: 1, maxRetries: 1 };
    it('admits up to the limit, queues up to the pending limit, then refuses; a release lets the first waiter in', async () => {
      const b = new Bulkhead(1000);
      const a1 = b.admit(LIMITS);
      const a2 = b.admit(LIMITS);
      const a3 = b.admit(LIMITS);
      const a4 = b.admit(LIMITS);
      assert.deepEqual([a1.kind, a2.kind, a3.kind, a4.kind], ['now', 'now', 'queued', 'overflow']);
      assert.equal(b.overflowed, 1);
      if (a1.kind !== 'now' || a3.kind !== 'queued') throw new Error('unreachable');
      a1.release();
      a1.release();
      const r3 = await a3.ready;
      assert.ok(r3 !== undefined);
      assert.equal(b.inProgress, 2, 'a second release of the same place gives nothing back');
    });
    it('a waiter not let in within the wait is refused', async () => {
      const b = new Bulkhead(20);
      b.admit({ ...LIMITS, maxActive: 1 });
      const q = b.admit({ ...LIMITS, maxActive: 1 });
      assert.equal(q.kind, 'queued');
      assert.equal(await (q as { ready: Promise<unknown> }).ready, undefined);
      assert.equal(b.overflowed, 1);
      assert.equal(b.pending, 0);
    });
    it('pending 0: refused at once past the limit', () => assert.equal((() => { const b = new Bulkhead(10); b.admit({ ...LIMITS, maxActive: 1, maxPending: 0 }); return b.admit({ ...LIMITS, maxActive: 1, maxPending: 0 }).kind; })(), 'overflow'));
    it('retries in progress are bounded by maxRetries', () => {
      const b = new Bulkhead(10);
      const r = b.tryRetry(LIMITS)!;
      assert.equal(b.tryRetry(LIMITS), undefined);
      r();
      assert.ok(b.tryRetry(LIMITS) !== undefined);
    });
    const POOLS: [string, Partial<typeof DEFAULT_CONNECTION_POOL>, 'h1' | 'h2', number][] = [
      ['HTTP/1.1: one request per connection, the lower of the two', { maxConnections: 3, maxRequests: 10 }, 'h1', 3],
      ['HTTP/2: requests only', { maxConnections: 3, maxRequests: 10 }, 'h2', 10],
    ];
    for (const [what, pool, proto, want] of POOLS) it(what, () => assert.equal(limitsOf({ ...DEFAULT_CONNECTION_POOL, ...pool }, proto).maxActive, want));
    it('DestinationPolicies: one bulkhead per Service port and protocol, counted when full', () => {
      const dp = { rule: 'shop/web', policy: { loadBalancer: undefined, outlierDetection: undefined, connectionPool: { ...DEFAULT_CONNECTION_POOL, maxRequests: 1, maxPendingRequests: 0 } } };
      const p = new DestinationPolicies(() => 0);
      assert.equal(p.forRequest(dp, 'shop/web:80', 'h1', input()).place.kind, 'now');
      assert.equal(p.forRequest(dp, 'shop/web:80', 'h1', input()).place.kind, 'overflow');
      assert.equal(p.forRequest(dp, 'shop/api:80', 'h1', input()).place.kind, 'now');
      assert.equal(p.overflowed, 1);
    });
  });

  describe('connectionPool.http reuse and the hash cookie (httpCookie.ttl)', () => {
    const policy = (over: Partial<typeof DEFAULT_CONNECTION_POOL>, loadBalancer?: LoadBalancer) => ({ rule: 'shop/web', policy: { loadBalancer, outlierDetection: undefined, connectionPool: { ...DEFAULT_CONNECTION_POOL, ...over } } });
    it('maxRequestsPerConnection and idleTimeout reach the upstream target; neither set: the engine\'s own', () => {
      const p = new DestinationPolicies(() => 0);
      assert.deepEqual(p.forRequest(policy({ maxRequestsPerConnection: 1 }), 's:80', 'h1', input()).policy.reuse, { maxRequests: 1, idleMs: undefined });
      assert.deepEqual(p.forRequest(policy({ idleTimeoutMs: 1000 }), 's:80', 'h2', input()).policy.reuse, { maxRequests: 0, idleMs: 1000 });
      assert.equal(p.forRequest(policy({}), 's:80', 'h1', input()).policy.reuse, undefined);
    });
    const COOKIE: LoadBalancer = { kind: 'HASH', by: 'cookie', name: 'sid', cookieTtlMs: 60_000 };
    it('a request without the cookie gets one (opaque, per connection, Max-Age = ttl) and the endpoint its value hashes to; sending it back lands there again', () => {
      const p = new DestinationPolicies(() => 0);
      const first = p.forRequest(policy({}, COOKIE), 'shop/web:80', 'h1', input(), '10.1.0.5:40000').policy;
      const [name, value] = first.responseHeader!;
      assert.equal(name, 'set-cookie');
      const m = /^sid=([0-9a-f]{16}); Path=\/; Max-Age=60; HttpOnly$/.exec(value);
      assert.ok(m, value);
      assert.ok(!value.includes('10.'), 'no address in the cookie');
      const home = first.pick!(KEYS, ALL);
      for (let i = 0; i < 20; i++) {
        const again: RequestPolicy = p.forRequest(policy({}, COOKIE), 'shop/web:80', 'h1', input({ cookie: [`sid=${m[1]}`] }), `10.1.0.5:${41000 + i}`).policy;
        assert.equal(again.responseHeader, undefined, 'a request carrying the cookie gets no new one');
        assert.equal(again.pick!(KEYS, ALL), home);
      }
      const same = p.forRequest(policy({}, COOKIE), 'shop/web:80', 'h1', input(), '10.1.0.5:40000').policy.responseHeader;
      assert.deepEqual(same, first.responseHeader, 'requests racing on one connection get the same cookie');
      const homes = new Set(Array.from({ length: 40 }, (_, i) => p.forRequest(policy({}, COOKIE), 'shop/web:80', 'h1', input(), `10.1.0.5:${50000 + i}`).policy.pick!(KEYS, ALL)));
      assert.ok(homes.size >= 4, `new clients spread: ${[...homes].join(',')}`);
    });
    it('ttl 0: a session cookie (no Max-Age), at the rule\'s path; no ttl: no cookie, balanced as by default', () => {
      const p = new DestinationPolicies(() => 0);
      assert.match(p.forRequest(policy({}, { ...COOKIE, cookieTtlMs: 0, cookiePath: '/app' }), 's:80', 'h1', input()).policy.responseHeader![1], /^sid=[0-9a-f]{16}; Path=\/app; HttpOnly$/);
      const none = p.forRequest(policy({}, { kind: 'HASH', by: 'cookie', name: 'sid' }), 's:80', 'h1', input()).policy;
      assert.equal(none.responseHeader, undefined);
      assert.equal(none.pick, undefined);
    });
  });

  describe('outlier detection (configurable per destination)', () => {
    const OD: OutlierDetection = { ...DEFAULT_OUTLIER_DETECTION, consecutive5xx: 3, baseEjectionMs: 1000, intervalMs: 500, maxEjectionPercent: 100 };
    it('ejects after the configured 5xx in a row, for baseEjectionTime; readmits after it', () => {
      let now = 0;
      const e = new Ejections(() => now);
      assert.equal(e.answered('a', 503, OD, ['a', 'b']), 0);
      assert.equal(e.answered('a', 500, OD, ['a', 'b']), 0);
      assert.equal(e.answered('a', 502, OD, ['a', 'b']), 1000);
      assert.equal(e.ejected('a'), true);
      now = 999;
      assert.equal(e.ejected('a'), true);
      now = 1000;
      assert.equal(e.ejected('a'), false);
    });
    it('a good answer between 5xx starts the count again; without outlierDetection 5xx never eject', () => {
      const e = new Ejections(() => 0);
      for (const s of [503, 503, 200, 503, 503]) assert.equal(e.answered('a', s, OD, ['a']), 0);
      for (let i = 0; i < 20; i++) assert.equal(e.answered('b', 503), 0);
      assert.equal(e.ejected('b'), false);
    });
    it('consecutiveGatewayErrors counts 502/503/504 only', () => {
      const od = { ...OD, consecutive5xx: 0, consecutiveGateway: 2 };
      const e = new Ejections(() => 0);
      assert.equal(e.answered('a', 500, od, ['a']), 0);
      assert.equal(e.answered('a', 504, od, ['a']), 0);
      assert.ok(e.answered('a', 503, od, ['a']) > 0);
    });
    it('each ejection lasts baseEjectionTime times the ejections so far, at most 300 s; the multiplier decays per interval admitted', () => {
      let now = 0;
      const e = new Ejections(() => now);
      const trip = (): number => {
        e.answered('a', 503, OD, ['a']);
        e.answered('a', 503, OD, ['a']);
        return e.answered('a', 503, OD, ['a']);
      };
      assert.equal(trip(), 1000);
      now = 1000;
      assert.equal(trip(), 2000);
      now = 3000 + 2 * OD.intervalMs;
      assert.equal(trip(), 1000, 'two intervals admitted: the multiplier back to 0, then 1');
      const big = { ...OD, baseEjectionMs: 200_000, consecutive5xx: 1 };
      now = 10_000;
      e.answered('c', 503, big, ['c']);
      now = 210_000;
      assert.equal(e.answered('c', 503, big, ['c']), MAX_OUTLIER_EJECTION_MS);
    });
    it('maxEjectionPercent caps the ejected share of a Service (one always may be)', () => {
      const peers = ['a', 'b', 'c', 'd'];
      const e = new Ejections(() => 0);
      const od = { ...OD, consecutive5xx: 1, maxEjectionPercent: 10 };
      assert.ok(e.answered('a', 503, od, peers) > 0, 'the first one always');
      assert.equal(e.answered('b', 503, od, peers), 0, '2 of 4 is above 10 %');
      const od50 = { ...od, maxEjectionPercent: 50 };
      assert.ok(e.answered('b', 503, od50, peers) > 0, '2 of 4 is 50 %');
      assert.equal(e.answered('c', 503, od50, peers), 0);
    });
    const HEALTH: [number, number, number, boolean][] = [[1, 4, 0, true], [1, 4, 25, true], [1, 4, 50, false], [0, 0, 50, true]];
    for (const [healthy, total, min, want] of HEALTH) it(`minHealthPercent ${min}: ${healthy}/${total} healthy → ejections ${want ? 'honoured' : 'set aside'}`, () => assert.equal(ejectionsHonoured(healthy, total, min), want));
  });

  describe('the dispatch under a DestinationRule', () => {
    const EPS = KEYS.slice(0, 4).map((k) => ({ ip: k.slice(0, -3), port: 80 }));
    const RULE: RouteRule = { index: 0, name: undefined, matches: [], backends: [], requestTimeoutMs: 0, backendTimeoutMs: 0, retry: { codes: new Set([503]), attempts: 3, backoffMs: 1 }, fault: undefined };
    const make = (over: Partial<ConstructorParameters<typeof RequestDispatch>[0]>, now = () => 0): RequestDispatch =>
      new RequestDispatch({ rule: RULE, method: 'GET', endpoints: EPS, balancer: new PeakEwma(Math.random, now), budget: new RetryBudget(() => 1_000_000), ejections: new Ejections(now), target: (e) => ({ pool: e.ip, connect: () => Promise.reject(new Error('unused')) as Promise<Duplex> }), ...over });
    it('a hash pick sends every request of one user to one endpoint; a retry to its next-best', () => {
      const pick = pickOf(HEADER, 's', 'alice', balancing())!;
      const first = new Set<string>();
      for (let i = 0; i < 20; i++) first.add(make({ pick }).next()!.pool);
      assert.equal(first.size, 1);
      const d = make({ pick });
      const a = d.next()!.pool;
      d.settle({ status: 503, error: undefined, connected: true, reused: false, ms: 1 }, true);
      assert.notEqual(d.next()!.pool, a);
    });
    it('an ejected endpoint is passed over by the hash (the user moves), and taken back once readmitted', () => {
      let now = 0;
      const ejections = new Ejections(() => now);
      const pick = pickOf(HEADER, 's', 'alice', balancing())!;
      const home = make({ pick, ejections }, () => now).next()!.pool;
      ejections.unreachable(`${home}:80`);
      assert.notEqual(make({ pick, ejections }, () => now).next()!.pool, home);
      now = 1000;
      assert.equal(make({ pick, ejections }, () => now).next()!.pool, home);
    });
    it('5xx answers eject per the outlierDetection given; a retry place is taken per retry and given back at the end, with the request\'s place', () => {
      const ejections = new Ejections(() => 0);
      let places = 0;
      let finished = 0;
      const d = make({ ejections, outlier: { ...DEFAULT_OUTLIER_DETECTION, consecutive5xx: 1, maxEjectionPercent: 100 }, retrySlot: () => (places < 1 ? (places++, () => places--) : undefined), onFinish: () => finished++ });
      const first = d.next()!.pool;
      assert.ok(d.settle({ status: 503, error: undefined, connected: true, reused: false, ms: 1 }, true) !== undefined, 'one retry place');
      assert.equal(ejections.ejected(`${first}:80`), true);
      d.next();
      assert.equal(d.settle({ status: 503, error: undefined, connected: true, reused: false, ms: 1 }, true), undefined, 'maxRetries 1: no second retry in progress');
      d.finish();
      d.finish();
      assert.equal(places, 0);
      assert.equal(finished, 1);
    });
  });
});

describe('sticky sessions (sessionPersistence, agent/traffic/session.ts)', () => {
  const COOKIE: SessionPersistence = { type: 'Cookie', name: 'sid', absoluteMs: 3_600_000, idleMs: undefined, permanent: false };
  const cookieOf = (setCookie: string): string => setCookie.split(';')[0]!;
  /** the route rule the sessions below are read and made for */
  const R = 'HTTPRoute/shop/r#0';
  const at = (key: string, created = 0): SessionState => ({ scope: R, tag: endpointTag(R, key), created });
  it('the first answer names its endpoint in a cookie; the request carrying it reads back the endpoint', () => {
    const [name, value] = sessionHeader(COOKIE, endpointTag(R, '10.0.0.2:8080'), undefined, 1_000_000)!;
    assert.equal(name, 'set-cookie');
    assert.match(value, /^sid=[A-Za-z0-9_-]+; Path=\/; HttpOnly$/);
    const carried = readSession(COOKIE, R, { cookie: [`a=1; ${cookieOf(value)}`] }, 1_000_000);
    assert.deepEqual(carried, at('10.0.0.2:8080', 1000));
    assert.equal(sessionEndpoint(carried, sessionTags(R, ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080'])), 1, 'it names that endpoint among the backend\'s');
    assert.equal(sessionHeader(COOKIE, endpointTag(R, '10.0.0.2:8080'), carried, 1_000_500), undefined, 'the same session, nothing to refresh: no cookie again');
    assert.ok(sessionHeader(COOKIE, endpointTag(R, '10.0.0.3:8080'), carried, 1_000_500), 'another endpoint: a new cookie');
  });
  it('the value is opaque: no endpoint address in it, in clear or decoded; it names an endpoint only by a keyed tag checked against the backend\'s current endpoints', () => {
    const value = cookieOf(sessionHeader(COOKIE, endpointTag(R, '10.0.0.2:8080'), undefined, 1_000_000)![1]).slice('sid='.length);
    for (const text of [value, Buffer.from(value, 'base64url').toString('latin1'), Buffer.from(value, 'base64url').toString('hex')]) {
      assert.ok(!text.includes('10.0.0.2') && !text.includes('8080') && !text.includes('0a000002'), `no address in ${JSON.stringify(text)}`);
    }
    const carried = readSession(COOKIE, R, { cookie: [`sid=${value}`] }, 1_000_000);
    assert.notEqual(endpointTag(R, '10.0.0.2:8080'), endpointTag(R, '10.0.0.2:8081'), 'one tag per endpoint');
    assert.equal(sessionEndpoint(carried, sessionTags(R, ['10.0.0.5:8080', '10.0.0.6:8080'])), -1, 'an endpoint the backend no longer has: no session');
    const forged = Buffer.alloc(20); // a tag made without this node's key: names nothing
    forged.write('10.0.0.2:8080', 'latin1');
    assert.equal(sessionEndpoint(readSession(COOKIE, R, { cookie: [`sid=${forged.toString('base64url')}`] }, 0), sessionTags(R, ['10.0.0.2:8080'])), -1);
  });
  it('rules do not share sessions (GEP-1619: MUST NOT), even to the same endpoints: a value made for one names nothing for another', () => {
    const value = cookieOf(sessionHeader(COOKIE, endpointTag(R, '10.0.0.2:8080'), undefined, 0)![1]);
    const other = 'HTTPRoute/shop/r#1';
    const there = readSession(COOKIE, other, { cookie: [value] }, 0);
    assert.equal(sessionEndpoint(there, sessionTags(other, ['10.0.0.2:8080'])), -1, 'under another rule: no endpoint');
    assert.ok(sessionHeader(COOKIE, endpointTag(other, '10.0.0.2:8080'), there, 0), 'that rule\'s answer sets its own session');
    assert.equal(sessionEndpoint(readSession(COOKIE, R, { cookie: [value] }, 0), sessionTags(R, ['10.0.0.2:8080'])), 0, 'its own rule: the endpoint');
  });
  const TIMES: [string, SessionPersistence, number, boolean][] = [
    ['within absoluteTimeout', COOKIE, 3_599_000, true],
    ['past absoluteTimeout', COOKIE, 3_600_000, false],
    ['within idleTimeout', { ...COOKIE, absoluteMs: undefined, idleMs: 60_000 }, 59_000, true],
    ['past idleTimeout', { ...COOKIE, absoluteMs: undefined, idleMs: 60_000 }, 60_000, false],
  ];
  for (const [what, spec, after, kept] of TIMES) {
    it(`a session ${what} is ${kept ? 'kept' : 'begun again'}`, () => {
      const value = cookieOf(sessionHeader(spec, endpointTag(R, '10.0.0.2:8080'), undefined, 0)![1]);
      assert.equal(readSession(spec, R, { cookie: [value] }, after) !== undefined, kept);
    });
  }
  const BAD = ['', 'not base64!', Buffer.from('evil.example.com:80|0|0').toString('base64url'), Buffer.from('10.0.0.1:80|x|0').toString('base64url'), Buffer.from('10.0.0.1:80|0|0').toString('base64url'), 'A'.repeat(300)];
  for (const raw of BAD) it(`a malformed value is no session: ${JSON.stringify(raw.slice(0, 30))}`, () => assert.equal(readSession({ ...COOKIE, absoluteMs: undefined }, R, { cookie: [`sid=${raw}`] }, 0), undefined));
  it('type Header: the response header, read back from the request header of that name; Permanent cookies carry Max-Age', () => {
    const h: SessionPersistence = { type: 'Header', name: 'X-Session', absoluteMs: undefined, idleMs: undefined, permanent: false };
    const [name, value] = sessionHeader(h, endpointTag(R, '10.0.0.2:80'), undefined, 0)!;
    assert.equal(name, 'X-Session');
    assert.deepEqual(readSession(h, R, { 'x-session': [value] }, 0), at('10.0.0.2:80'));
    assert.match(sessionHeader({ ...COOKIE, permanent: true }, endpointTag(R, '10.0.0.2:80'), undefined, 0)![1], /; Max-Age=3600$/);
  });
  it('a session stays on its endpoint while it is a candidate; ejected, tried or gone, the request picks anew', () => {
    const then = (): number => 0;
    const pick = sessionPick(at(KEYS[2]!), sessionTags(R, KEYS), then)!;
    assert.equal(pick(KEYS, [0, 1, 2, 3]), 2);
    assert.equal(pick(KEYS, [0, 1, 3]), 0, 'not among the candidates (ejected or tried): the fallback');
    assert.equal(sessionPick(at('10.9.9.9:80'), sessionTags(R, KEYS), then), then, 'an endpoint the backend no longer has: the fallback');
    assert.equal(sessionPick(undefined, sessionTags(R, KEYS), undefined), undefined);
    const ejections = new Ejections(() => 0);
    ejections.unreachable(KEYS[2]!);
    const EPS4 = KEYS.slice(0, 4).map((k) => ({ ip: k.slice(0, -3), port: 80 }));
    const d = new RequestDispatch({ rule: { index: 0, name: undefined, matches: [], backends: [], requestTimeoutMs: 0, backendTimeoutMs: 0, retry: undefined, fault: undefined }, method: 'GET', endpoints: EPS4, balancer: new PeakEwma(Math.random, () => 0), budget: new RetryBudget(() => 0), ejections, pick: sessionPick(at(KEYS[2]!), sessionTags(R, KEYS.slice(0, 4)), undefined), target: (e) => ({ pool: `${e.ip}:${e.port}`, connect: () => Promise.reject(new Error('unused')) as Promise<Duplex> }) });
    assert.notEqual(d.next()!.pool, KEYS[2], 'the session\'s endpoint is ejected: another one');
  });

  it('parses sessionPersistence with the spec\'s defaults', () => {
    const text = 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  parentRefs: [{kind: Service, name: web}]\n  rules:\n  - backendRefs: [{name: web, port: 80}]\n    sessionPersistence: {absoluteTimeout: 1h, idleTimeout: 10m}\n';
    const r = compilePolicyFiles([{ source: 'r.yaml', text }]).routes![0]!;
    assert.deepEqual(r.rules[0]!.session, { type: 'Cookie', name: 'palisade-session', absoluteMs: 3_600_000, idleMs: 600_000, permanent: false });
  });
});
