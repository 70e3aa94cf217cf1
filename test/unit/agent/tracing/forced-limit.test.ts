import { strict as assert } from 'node:assert';
import { ForcedLimit } from '../../../../agent/tracing/forced-limit';

describe('ForcedLimit', () => {
  // [what, per source, node total, requests as [ms, source], expected answers]
  const cases: Array<[string, number, number, Array<[number, string]>, boolean[]]> = [
    ['a source gets its rate\'s worth at once, then nothing in the same instant', 3, 100, [[0, 'a'], [0, 'a'], [0, 'a'], [0, 'a']], [true, true, true, false]],
    ['another source has its own bucket', 2, 100, [[0, 'a'], [0, 'a'], [0, 'a'], [0, 'b']], [true, true, false, true]],
    ['the node\'s bucket bounds all sources together', 10, 3, [[0, 'a'], [0, 'b'], [0, 'c'], [0, 'd']], [true, true, true, false]],
    ['a bucket refills at its rate per second', 2, 100, [[0, 'a'], [0, 'a'], [0, 'a'], [499, 'a'], [500, 'a'], [500, 'a']], [true, true, false, false, true, false]],
    ['refill stops at a second\'s worth', 2, 100, [[0, 'a'], [10_000, 'a'], [10_000, 'a'], [10_000, 'a']], [true, true, true, false]],
  ];
  for (const [what, perSource, total, requests, expected] of cases) {
    it(what, () => {
      let now = 1_000_000;
      const start = now;
      const limit = new ForcedLimit({ perSource, total, now: () => now });
      const got = requests.map(([ms, source]) => {
        now = start + ms;
        return limit.take(source);
      });
      assert.deepEqual(got, expected);
    });
  }

  it('tracks a bounded number of sources', () => {
    const limit = new ForcedLimit({ perSource: 1, total: 1e9, maxSources: 4, now: () => 0 });
    for (let i = 0; i < 100; i++) assert.equal(limit.take(`s-${i}`), true);
    assert.equal((limit as unknown as { sources: Map<string, unknown> }).sources.size <= 4, true);
  });
});
