/**
 * The peak-EWMA balancer against simulated endpoints: a simulated clock, endpoints with
 * latencies drawn per call, and a client that keeps `lanes` calls in flight (a gRPC channel with
 * that many concurrent calls, the way test/privileged/agent/grpc-traffic's client sends). Equal
 * endpoints must share the calls evenly — also when a few answers are outliers, which used to set
 * the split (issue #18: 1,000 calls over 3 endpoints, none above 40 %) — and a slow or failing
 * endpoint must get less (it is still tried now and then), soon after it turns slow, and again its
 * share once it recovers.
 */
import { strict as assert } from 'node:assert';
import { DEFAULT_RTT_MS, MAX_LIFT, MIN_WEIGHT, PeakEwma } from '../../../../agent/traffic/peak-ewma';
import { prng } from '../../../fixtures/prng';

const KEYS = ['b', 'c', 'd'];
const CALLS = 1000;

/** One call's latency to endpoint `key`; `done`: the share of the run's calls already sent (0–1). */
type Latency = (key: string, done: number, random: () => number) => number | 'failed';

interface Run {
  /** each endpoint's share of all calls */
  shares: number[];
  /** each endpoint's share of the calls of the run's second half */
  late: number[];
}

/** `CALLS` calls, `lanes` at a time, each lane sending its next call when its last one ends. */
function simulate(seed: number, lanes: number, latency: Latency): Run {
  const random = prng(seed);
  let now = 0;
  const b = new PeakEwma(random, () => now);
  const all = KEYS.map(() => 0);
  const late = KEYS.map(() => 0);
  const inFlight: { at: number; key: string; ms: number; failed: boolean }[] = [];
  let sent = 0;
  const send = (): void => {
    if (sent >= CALLS) return;
    const i = b.pickIndex(KEYS)!;
    const key = KEYS[i]!;
    b.start(key);
    all[i]!++;
    if (sent >= CALLS / 2) late[i]!++;
    const l = latency(key, sent / CALLS, random);
    sent++;
    const ms = l === 'failed' ? 1 : l;
    inFlight.push({ at: now + ms, key, ms: l === 'failed' ? 1000 : ms, failed: l === 'failed' });
  };
  for (let i = 0; i < lanes; i++) send();
  while (inFlight.length > 0) {
    let first = 0;
    for (let i = 1; i < inFlight.length; i++) if (inFlight[i]!.at < inFlight[first]!.at) first = i;
    const c = inFlight.splice(first, 1)[0]!;
    now = c.at;
    if (c.failed) b.fail(c.key, c.ms);
    else b.end(c.key, c.ms);
    send();
  }
  return { shares: all.map((n) => n / CALLS), late: late.map((n) => n / (CALLS / 2)) };
}

/** log-normal around `median` (spread σ): latencies on a loaded machine */
function lognormal(random: () => number, median: number, sigma = 0.3): number {
  const u = Math.max(random(), 1e-12);
  return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random()));
}

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;

describe('PeakEwma against simulated endpoints (power of two choices over peak-EWMA)', () => {
  interface SpreadCase {
    name: string;
    lanes: number;
    latency: Latency;
  }
  // equal endpoints: every run's busiest at most 40 %, each endpoint's mean share within 2 points of a third
  const EQUAL: SpreadCase[] = [
    { name: 'equal latencies (40 ms, log-normal), 16 calls in flight', lanes: 16, latency: (_k, _d, r) => lognormal(r, 40) },
    { name: 'equal latencies, 4 in flight', lanes: 4, latency: (_k, _d, r) => lognormal(r, 40) },
    // one answer in a hundred 3–6× slower (a GC pause, a descheduled pod): the peak used to set the split for 10 s
    { name: 'equal, with 1 % outliers 3–6× slower, 16 in flight', lanes: 16, latency: (_k, _d, r) => lognormal(r, 40) * (r() < 0.01 ? 3 + 3 * r() : 1) },
    { name: 'equal, with 1 % outliers, 4 in flight', lanes: 4, latency: (_k, _d, r) => lognormal(r, 40) * (r() < 0.01 ? 3 + 3 * r() : 1) },
    { name: 'equal sub-millisecond latencies (1 ms, far below the 30 ms default), 16 in flight', lanes: 16, latency: (_k, _d, r) => lognormal(r, 1) * (r() < 0.01 ? 5 : 1) },
  ];
  for (const c of EQUAL) {
    it(`${c.name}: ${CALLS} calls over 3 endpoints, none above 40 % in ${SEEDS.length} runs, each about a third`, () => {
      const runs = SEEDS.map((s) => simulate(s, c.lanes, c.latency));
      const busiest = runs.map((r) => Math.max(...r.shares));
      const worst = Math.max(...busiest);
      assert.ok(worst <= 0.4, `busiest ${pct(worst)} (seed ${SEEDS[busiest.indexOf(worst)]})`);
      KEYS.forEach((k, i) => {
        const m = mean(runs.map((r) => r.shares[i]!));
        assert.ok(Math.abs(m - 1 / 3) <= 0.02, `${k}: mean share ${pct(m)}`);
      });
    });
  }

  interface SlowCase extends SpreadCase {
    /** the bound on endpoint d's mean share (of all calls, or of the second half with `late`) */
    below?: number;
    above?: number;
    late?: boolean;
  }
  // endpoint d is slower (or failing): it gets less; the others share the rest
  const SLOW: SlowCase[] = [
    { name: 'd 5× slower, 16 in flight', lanes: 16, latency: (k, _d, r) => lognormal(r, k === 'd' ? 200 : 40), below: 0.08 },
    { name: 'd 5× slower, one call at a time', lanes: 1, latency: (k, _d, r) => lognormal(r, k === 'd' ? 200 : 40), below: 0.05 },
    { name: 'd 2× slower, 16 in flight', lanes: 16, latency: (k, _d, r) => lognormal(r, k === 'd' ? 80 : 40), below: 0.2 },
    { name: 'd 5× slower at sub-millisecond latencies (1 ms against 5 ms), 16 in flight', lanes: 16, latency: (k, _d, r) => lognormal(r, k === 'd' ? 5 : 1), below: 0.08 },
    { name: 'd 3× slower on one answer in ten, 16 in flight', lanes: 16, latency: (k, _d, r) => lognormal(r, 40) * (k === 'd' && r() < 0.1 ? 3 : 1), below: 0.3 },
    { name: 'd failing (no answer), 16 in flight', lanes: 16, latency: (k, _d, r) => (k === 'd' ? 'failed' : lognormal(r, 40)), below: 0.06 },
    { name: 'd turns 5× slower after 30 % of the calls: the second half', lanes: 16, latency: (k, done, r) => lognormal(r, k === 'd' && done > 0.3 ? 200 : 40), below: 0.08, late: true },
    { name: 'd 5× slower for the first 30 % of the calls, then as fast: the second half', lanes: 16, latency: (k, done, r) => lognormal(r, k === 'd' && done < 0.3 ? 200 : 40), above: 0.28, late: true },
  ];
  for (const c of SLOW) {
    const bound = c.below !== undefined ? `below ${pct(c.below)}` : `above ${pct(c.above!)}`;
    it(`${c.name}: d's share ${bound}`, () => {
      const d = mean(SEEDS.map((s) => simulate(s, c.lanes, c.latency)[c.late === true ? 'late' : 'shares'][2]!));
      if (c.below !== undefined) assert.ok(d < c.below, `d's mean share ${pct(d)}`);
      if (c.above !== undefined) assert.ok(d > c.above, `d's mean share ${pct(d)}`);
    });
  }

  describe('the estimate', () => {
    it('one slower answer at most doubles it (the first answer: the default); later ones reach the latency at once', () => {
      let now = 0;
      const b = new PeakEwma(Math.random, () => now);
      const steps: [number, number][] = [
        [500, MAX_LIFT * DEFAULT_RTT_MS],
        [500, 4 * DEFAULT_RTT_MS],
        [500, 8 * DEFAULT_RTT_MS],
        [500, 16 * DEFAULT_RTT_MS],
        [500, 500],
      ];
      for (const [ms, want] of steps) {
        b.end('a', ms);
        assert.ok(Math.abs(b.cost('a') - want) < 1e-9, `after ${ms}: ${b.cost('a')} (want ${want})`);
      }
    });
    it('an attempt without an answer is taken whole at once', () => {
      const b = new PeakEwma(Math.random, () => 0);
      b.end('a', 10);
      b.fail('a', 1000);
      assert.equal(b.cost('a'), 1000);
    });
    it('a faster answer never raises the cost, however long since the last one (it used to: the stale level was blended in)', () => {
      let now = 0;
      const b = new PeakEwma(Math.random, () => now);
      b.end('a', 60);
      b.end('a', 100);
      for (const gap of [10, 1000, 3000, 10_000, 60_000]) {
        now += gap;
        const before = b.cost('a');
        b.end('a', before * 0.9);
        assert.ok(b.cost('a') <= before, `after ${gap} ms: ${before} → ${b.cost('a')}`);
      }
    });
    it('an endpoint passed over loses 5 % of its estimate per pick: one slow first answer does not keep it out (one call at a time, 2 endpoints)', () => {
      let now = 0;
      const b = new PeakEwma(prng(7), () => now);
      b.end('a', 50); // a cold start; a answers in 2 ms after it, b in 8 ms
      let late = 0;
      for (let i = 0; i < 300; i++) {
        const k = b.pick(['a', 'b'])!;
        b.start(k);
        const ms = k === 'a' ? 2 : 8;
        now += ms;
        b.end(k, ms);
        if (i >= 200 && k === 'a') late++;
      }
      assert.ok(late > 80, `a got ${late} of the last 100 calls`);
    });
    it(`each faster answer weighs at least ${MIN_WEIGHT} however frequent: 1 ms answers bring a 30 ms estimate under 2 ms within 50 answers in 50 ms`, () => {
      let now = 0;
      const b = new PeakEwma(Math.random, () => now);
      b.end('a', 30);
      for (let i = 0; i < 50; i++) {
        now += 1;
        b.end('a', 1);
      }
      assert.ok(b.cost('a') < 2, String(b.cost('a')));
    });
  });
});
