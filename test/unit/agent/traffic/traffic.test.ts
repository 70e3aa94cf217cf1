import { strict as assert } from 'node:assert';
import type { Duplex } from 'node:stream';
import { RequestDispatch, type Endpoint } from '../../../../agent/traffic/dispatcher';
import { Ejections, MAX_ENTRIES } from '../../../../agent/traffic/ejections';
import { DEFAULT_RTT_MS, MAX_ENDPOINTS, PeakEwma } from '../../../../agent/traffic/peak-ewma';
import { refusalOf } from '../../../../agent/traffic/refusal';
import { RetryBudget } from '../../../../agent/traffic/retry-budget';
import { pickWeighted } from '../../../../agent/traffic/weighted';
import type { RouteRule } from '../../../../common/routes';

const seq = (...values: number[]): (() => number) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe('traffic: per-request choices (agent/traffic)', () => {
  describe('pickWeighted', () => {
    const items = [{ name: 'v1', weight: 90 }, { name: 'v2', weight: 10 }, { name: 'off', weight: 0 }];
    const CASES: [number, string][] = [[0, 'v1'], [0.8999, 'v1'], [0.9, 'v2'], [0.9999999, 'v2']];
    for (const [r, want] of CASES) it(`random ${r} → ${want} (a weight 0 backend never)`, () => assert.equal(pickWeighted(items, () => r).name, want));
    it('lands within ±3 % of 90/10 over 2,000 picks', () => {
      let v2 = 0;
      for (let i = 0; i < 2000; i++) if (pickWeighted(items, Math.random).name === 'v2') v2++;
      assert.ok(Math.abs(v2 / 2000 - 0.1) <= 0.03, String(v2));
    });
  });

  describe('PeakEwma (power of two choices)', () => {
    it('an endpoint never measured costs the default RTT (30 ms)', () => assert.equal(new PeakEwma(Math.random, () => 0).cost('a'), DEFAULT_RTT_MS));
    it('a slower sample is taken at once (the peak), at most doubling the estimate per answer; outstanding requests multiply the cost', () => {
      let now = 0;
      const b = new PeakEwma(Math.random, () => now);
      b.start('a');
      b.end('a', 50);
      b.end('a', 100);
      b.end('a', 200);
      assert.equal(b.cost('a'), 200);
      b.start('a');
      assert.equal(b.cost('a'), 400);
    });
    it('faster samples pull the estimate down with the 10 s decay (each at least a tenth), and it decays towards 0 between samples', () => {
      let now = 0;
      const b = new PeakEwma(Math.random, () => now);
      b.end('a', 60);
      b.end('a', 100);
      now = 10_000;
      b.end('a', 10);
      const expected = 100 * Math.exp(-1) * Math.exp(-1) + 10 * (1 - Math.exp(-1));
      assert.ok(Math.abs(b.cost('a') - expected) < 1e-9);
      now = 10_001;
      b.end('a', 10);
      const busy = expected * Math.exp(-1 / 10_000) * 0.9 + 10 * 0.1;
      assert.ok(Math.abs(b.cost('a') - busy) < 1e-9);
      now = 20_001;
      assert.ok(Math.abs(b.cost('a') - busy * Math.exp(-1)) < 1e-9);
    });
    it('an endpoint never measured is not picked over a fast measured one at first, but is re-probed: its default estimate decays from when it was first seen', () => {
      let now = 0;
      const b = new PeakEwma(Math.random, () => now);
      /** one request at a time, every 100 ms, each answered in 1 ms, for `ms`; when `fresh` was first picked */
      const sequential = (candidates: string[], ms: number): number | undefined => {
        for (const end = now + ms; now < end; now += 99) {
          const k = b.pick(candidates)!;
          if (k === 'fresh') return now;
          b.start(k);
          now += 1;
          b.end(k, 1);
        }
        return undefined;
      };
      sequential(['fast'], 60_000);
      const added = now;
      const first = sequential(['fast', 'fresh'], 60_000);
      assert.ok(first !== undefined, 'the new endpoint was tried');
      // the measured one costs about 1 ms; 30 ms · exp(−t / 10 s) drops below that at t ≈ 34 s
      assert.ok(first - added >= 30_000 && first - added <= 36_000, `first tried ${first - added} ms after it appeared`);
    });
    it('remembers at most MAX_ENDPOINTS endpoints (the least recently seen idle one forgotten, counted), and forgets those idle for 5 min', () => {
      let now = 0;
      const b = new PeakEwma(Math.random, () => now);
      for (let i = 0; i < MAX_ENDPOINTS + 100; i++) {
        b.start(`e${i}`);
        b.end(`e${i}`, 5);
      }
      assert.equal(b.size, MAX_ENDPOINTS);
      assert.equal(b.evicted, 100);
      now = 6 * 60_000;
      for (let i = 0; i < 256; i++) b.end('live', 5);
      assert.equal(b.size, 1, 'only the endpoint seen in the last 5 min is left');
    });
    it('of the two drawn, the cheaper; never a third; one candidate is itself; none is undefined', () => {
      let now = 0;
      const b = new PeakEwma(seq(0, 0.25), () => now);
      b.end('a', 500);
      b.end('b', 5);
      assert.equal(b.pick(['a', 'b', 'c']), 'b'); // draws a (i = 0) and b (j = 0, moved past i), not c
      assert.equal(b.pick(['x']), 'x');
      assert.equal(b.pick([]), undefined);
    });
  });

  describe('RetryBudget: 20 % of requests over 10 s, at least 10 retries a second', () => {
    it('allows 100 retries on no traffic (the floor), then 20 % more per request', () => {
      let now = 1_000_000;
      const budget = new RetryBudget(() => now);
      let allowed = 0;
      while (budget.tryRetry()) allowed++;
      assert.equal(allowed, 100);
      for (let i = 0; i < 50; i++) budget.request();
      assert.equal(budget.tryRetry(), true); // 0.2 * 50 = 10 more
      for (let i = 0; i < 20; i++) budget.tryRetry();
      assert.equal(budget.refused, 1 + 20 - 9);
    });
    it('forgets what is older than the window', () => {
      let now = 1_000_000;
      const budget = new RetryBudget(() => now);
      while (budget.tryRetry());
      now += 11_000;
      assert.equal(budget.tryRetry(), true);
    });
  });

  describe('Ejections: an unreachable endpoint is passed over, 100 ms doubling to 60 s, until it answers', () => {
    it('ejects for 100, 200, 400 … ms after failures in a row, at most 60 s', () => {
      let now = 0;
      const e = new Ejections(() => now);
      assert.deepEqual([1, 2, 3, 4].map(() => e.unreachable('a')), [100, 200, 400, 800]);
      for (let i = 0; i < 20; i++) e.unreachable('a');
      assert.equal(e.unreachable('a'), 60_000);
    });
    it('says whether any endpoint may be ejected now (a request need not look each one up otherwise)', () => {
      let now = 0;
      const e = new Ejections(() => now);
      assert.equal(e.anyEjected(), false);
      e.unreachable('a');
      assert.equal(e.anyEjected(), true);
      now = 100;
      assert.equal(e.anyEjected(), false, 'its ejection is over');
    });
    it('full: forgets first the endpoints no longer ejected; only when all are ejected, every one is readmitted, counted', () => {
      let now = 0;
      const e = new Ejections(() => now);
      for (let i = 0; i < MAX_ENTRIES; i++) e.unreachable(`old${i}`);
      now = 1000;
      e.unreachable('a');
      assert.equal(e.readmittedByOverflow, 0, 'the ended ejections made room');
      for (let i = 1; i < MAX_ENTRIES; i++) e.unreachable(`new${i}`);
      e.unreachable('b');
      assert.equal(e.readmittedByOverflow, MAX_ENTRIES);
      assert.equal(e.ejected('b'), true);
      assert.equal(e.ejected('a'), false);
    });
    it('is ejected until the time passes; an answer readmits and forgets', () => {
      let now = 0;
      const e = new Ejections(() => now);
      e.unreachable('a');
      assert.equal(e.ejected('a'), true);
      now = 100;
      assert.equal(e.ejected('a'), false);
      assert.equal(e.unreachable('a'), 200, 'the next failure in a row: longer');
      e.answered('a');
      assert.equal(e.ejected('a'), false);
      assert.equal(e.unreachable('a'), 100, 'failures forgotten');
    });
  });

  describe('refusalOf: the destination\'s answer (final) or a failure to reach the endpoint (ejects, retried)', () => {
    const peer = (peerStatus: number, peerRefusal?: string): Error => Object.assign(new Error('refused'), { code: 'PALISADE_ERR_HBONE', peerStatus, ...(peerRefusal !== undefined && { peerRefusal }) });
    const CASES: [string, unknown, ReturnType<typeof refusalOf>][] = [
      ['this node\'s policy denied the client (a same-node endpoint)', Object.assign(new Error('denied-by-policy'), { code: 'denied-by-policy' }), { status: 403, verdict: 'denied', reason: 'denied-by-policy' }],
      ['the peer\'s 403 (its policy)', peer(403, 'denied-by-policy'), { status: 403, verdict: 'denied', reason: 'denied-by-destination' }],
      ['the peer\'s 403 without a reason (an older peer)', peer(403), { status: 403, verdict: 'denied', reason: 'denied-by-destination' }],
      ['the peer\'s 503 for its per-source cap', peer(503, 'pod-connection-limit'), { status: 503, verdict: 'error', reason: 'pod-connection-limit' }],
      ['the peer\'s 429', peer(429), { status: 503, verdict: 'error', reason: 'tunnel-refused-429' }],
      ['the peer\'s 401 (an identity it does not accept)', peer(401, 'peer-certificate-expired'), { status: 503, verdict: 'error', reason: 'peer-certificate-expired' }],
      ['a hostile reason is not taken', peer(401, 'x\nforged: yes'), { status: 503, verdict: 'error', reason: 'tunnel-refused-401' }],
      ['the peer\'s 503 without a reason: its pod could not be reached', peer(503), undefined],
      ['the peer\'s 503 with a reason that is not one', peer(503, 'A'.repeat(100)), undefined],
      ['the peer\'s 404: no such pod there (gone)', peer(404, 'not-a-local-workload'), undefined],
      ['connection refused', Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), undefined],
      ['a timeout', Object.assign(new Error('timed out'), { code: 'PALISADE_ERR_HBONE' }), undefined],
      ['not an error at all', 'boom', undefined],
    ];
    for (const [what, err, want] of CASES) it(what, () => assert.deepEqual(refusalOf(err), want));
  });

  describe('RequestDispatch: where each attempt goes, and which outcomes are retried', () => {
    const EPS: Endpoint[] = [{ ip: '10.0.0.1', port: 80 }, { ip: '10.0.0.2', port: 80 }];
    const rule = (retry?: RouteRule['retry']): RouteRule => ({ index: 0, name: undefined, matches: [], backends: [], requestTimeoutMs: 0, backendTimeoutMs: 0, retry, fault: undefined });
    const RETRY = { codes: new Set([503]), attempts: 2, backoffMs: 25 };
    const dispatch = (r: RouteRule, method = 'GET', endpoints = EPS): RequestDispatch =>
      new RequestDispatch({
        rule: r,
        method,
        endpoints,
        balancer: new PeakEwma(),
        budget: new RetryBudget(),
        target: (e) => ({ pool: `${e.ip}`, connect: () => Promise.reject(new Error('unused')) as Promise<Duplex> }),
        random: () => 0.5,
      });
    const outcome = (status: number, o: Partial<{ error: string; connected: boolean; reused: boolean }> = {}) => ({ status, error: o.error, connected: o.connected ?? true, reused: o.reused ?? false, ms: 5 });
    const CASES: [string, RouteRule, string, ReturnType<typeof outcome>, boolean, number | undefined][] = [
      ['a 503 with a retry policy for 503: after a jittered 25–50 ms backoff', rule(RETRY), 'GET', outcome(503), true, 38],
      ['a 503 without a retry policy: relayed', rule(), 'GET', outcome(503), true, undefined],
      ['a 500 not in the codes: relayed', rule(RETRY), 'GET', outcome(500), true, undefined],
      ['a 200: relayed', rule(RETRY), 'GET', outcome(200), true, undefined],
      ['a POST that never reached a pod (connect refused): retried at once, no policy needed', rule(), 'POST', outcome(0, { error: 'ECONNREFUSED', connected: false }), true, 0],
      ['a POST that reached a pod which then reset: not retried', rule(), 'POST', outcome(0, { error: 'ECONNRESET', connected: true }), true, undefined],
      ['a GET reset on a reused keep-alive connection: retried at once', rule(), 'GET', outcome(0, { error: 'ECONNRESET', reused: true }), true, 0],
      ['a backend timeout when 504 is retried', rule({ ...RETRY, codes: new Set([504]) }), 'GET', outcome(0, { error: 'backend-timeout' }), true, 38],
      ['a body that cannot be sent again: never retried', rule(RETRY), 'POST', outcome(503), false, undefined],
    ];
    for (const [what, r, method, o, replayable, wait] of CASES) {
      it(what, () => {
        const d = dispatch(r, method);
        assert.ok(d.next());
        assert.equal(d.settle(o, replayable), wait);
      });
    }
    it('never the same endpoint twice: with every endpoint tried, no retry and no next()', () => {
      const d = dispatch(rule({ ...RETRY, attempts: 5 }));
      const first = d.next()!.pool;
      assert.equal(d.settle(outcome(503), true), 38);
      const second = d.next()!.pool;
      assert.notEqual(first, second);
      assert.equal(d.settle(outcome(503), true), undefined, 'no endpoint left untried');
      assert.equal(d.next(), undefined);
      assert.equal(d.attempts, 2);
      assert.deepEqual(d.retried, ['503']);
    });
    it('the wait never passes 250 ms, whatever the rule\'s backoff (a 10 s one waited 10 s)', () => {
      for (const r of [0, 0.5, 0.999]) {
        const d = new RequestDispatch({ rule: rule({ ...RETRY, backoffMs: 10_000 }), method: 'GET', endpoints: EPS, balancer: new PeakEwma(), budget: new RetryBudget(), target: (e) => ({ pool: e.ip, connect: () => Promise.reject(new Error('unused')) as Promise<Duplex> }), random: () => r });
        d.next();
        assert.equal(d.settle(outcome(503), true), 250);
      }
      const d = dispatch(rule({ ...RETRY, backoffMs: 200 }));
      d.next();
      assert.ok(d.settle(outcome(503), true)! <= 250, 'from 200 ms up to twice it, capped');
    });
    it('explicit retries stop at the rule\'s attempts', () => {
      const d = dispatch(rule({ ...RETRY, attempts: 1 }), 'GET', [...EPS, { ip: '10.0.0.3', port: 80 }]);
      d.next();
      assert.ok(d.settle(outcome(503), true) !== undefined);
      d.next();
      assert.equal(d.settle(outcome(503), true), undefined);
    });
    it('a refusal is the answer: not retried, not ejected, no latency sample, no retry budget spent', () => {
      let now = 0;
      const ejections = new Ejections(() => now);
      const balancer = new PeakEwma(() => 0, () => now);
      const budget = new RetryBudget(() => 1_000_000);
      const d = new RequestDispatch({ rule: rule(RETRY), method: 'GET', endpoints: EPS, balancer, budget, ejections, target: (e) => ({ pool: e.ip, connect: () => Promise.reject(new Error('unused')) as Promise<Duplex> }) });
      const key = `${d.next()!.pool}:80`;
      const refusal = { status: 403, verdict: 'denied' as const, reason: 'denied-by-destination' };
      assert.equal(d.settle({ status: 0, error: refusal.reason, connected: false, reused: false, ms: 2, refusal }, true), undefined);
      assert.deepEqual(d.refusal, refusal);
      assert.deepEqual(d.retried, []);
      assert.equal(ejections.ejected(key), false, 'every other client keeps the endpoint');
      assert.equal(balancer.cost(key), DEFAULT_RTT_MS, 'its estimate untouched, nothing outstanding');
      let retries = 0;
      while (budget.tryRetry()) retries++;
      assert.equal(retries, 100, 'the whole budget is left (the floor; 20 % of one request adds none)');
    });
    it('an attempt without an answer costs its endpoint 1 s at once; a slow answer only doubles the estimate (one outlier)', () => {
      const balancer = new PeakEwma(() => 0, () => 0);
      const make = (): RequestDispatch => new RequestDispatch({ rule: rule(), method: 'GET', endpoints: EPS, balancer, budget: new RetryBudget(), target: (e) => ({ pool: e.ip, connect: () => Promise.reject(new Error('unused')) as Promise<Duplex> }) });
      const failed = make();
      const a = `${failed.next()!.pool}:80`;
      failed.settle(outcome(0, { error: 'ECONNRESET', connected: true }), false);
      assert.equal(balancer.cost(a), 1000);
      const slow = make();
      const b = `${slow.next()!.pool}:80`;
      assert.notEqual(b, a);
      slow.settle({ ...outcome(200), ms: 5000 }, false);
      assert.equal(balancer.cost(b), 2 * DEFAULT_RTT_MS);
    });
    it('a first attempt while nothing is ejected picks among the precomputed keys as given: no work per endpoint', () => {
      const endpoints = Array.from({ length: 1000 }, (_, i) => ({ ip: `10.1.${i >> 8}.${i & 255}`, port: 80 }));
      const keys = endpoints.map((e) => `${e.ip}:${e.port}`);
      const seen: (readonly string[])[] = [];
      class Spy extends PeakEwma {
        override pickIndex(c: readonly string[]): number | undefined {
          seen.push(c);
          return super.pickIndex(c);
        }
      }
      const d = new RequestDispatch({ rule: rule(RETRY), method: 'GET', endpoints, keys, balancer: new Spy(), budget: new RetryBudget(), ejections: new Ejections(), target: (e) => ({ pool: `${e.ip}:${e.port}`, connect: () => Promise.reject(new Error('unused')) as Promise<Duplex> }) });
      const first = d.next()!.pool;
      assert.equal(seen[0], keys, 'the very array');
      assert.ok(d.settle(outcome(503), true) !== undefined);
      const second = d.next()!.pool;
      assert.notEqual(second, first);
      assert.equal(seen[1]!.length, 999, 'a retry: among the untried');
      assert.ok(!seen[1]!.includes(first));
    });
    it('no endpoint at all: next() is undefined (the front answers 503)', () => assert.equal(dispatch(rule(), 'GET', []).next(), undefined));
    it('an endpoint that was unreachable is passed over while ejected, by every later request; with all ejected they are tried anyway', () => {
      const ejections = new Ejections();
      const make = (): RequestDispatch =>
        new RequestDispatch({ rule: rule(), method: 'POST', endpoints: EPS, balancer: new PeakEwma(() => 0), budget: new RetryBudget(), ejections, target: (e) => ({ pool: e.ip, connect: () => Promise.reject(new Error('unused')) as Promise<Duplex> }) });
      const d = make();
      const first = d.next()!.pool;
      assert.equal(d.settle(outcome(0, { error: 'ECONNREFUSED', connected: false }), true), 0, 'never reached: retried at once');
      assert.notEqual(d.next()!.pool, first);
      for (let i = 0; i < 20; i++) assert.notEqual(make().next()!.pool, first, 'later requests skip the ejected endpoint');
      ejections.unreachable('10.0.0.2:80');
      assert.ok(make().next(), 'all ejected: still tried');
    });
  });
});
