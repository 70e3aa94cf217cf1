import { strict as assert } from 'node:assert';
import { RingBuffer } from '../../../../agent/flows/ring-buffer';

describe('RingBuffer', function () {
  describe('push / shift', function () {
    it('is first in, first out across the wrap-around', function () {
      const b = new RingBuffer<number>(3);
      const out: Array<number | undefined> = [];
      for (let i = 0; i < 10; i++) {
        assert.equal(b.push(i), undefined);
        if (b.length === 3) out.push(b.shift());
      }
      while (b.length) out.push(b.shift());
      assert.deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.equal(b.shift(), undefined);
    });

    it('returns the oldest item when a push finds it full', function () {
      const b = new RingBuffer<string>(2);
      assert.equal(b.push('a'), undefined);
      assert.equal(b.push('b'), undefined);
      assert.equal(b.push('c'), 'a');
      assert.equal(b.length, 2);
      assert.equal(b.peek(), 'b');
    });
  });

  describe('constructor', function () {
    for (const bad of [0, -1, 1.5, NaN]) {
      it(`refuses capacity ${bad}`, function () {
        assert.throws(() => new RingBuffer(bad), RangeError);
      });
    }
  });
});
