import { strict as assert } from 'node:assert';
import { formatDuration, parseDuration, parsePositiveDuration } from '../../../common/duration';
import { PalisadeError } from '../../../common/errors';

describe('duration', () => {
  describe('parseDuration', () => {
    const good: [string, number][] = [
      ['0s', 0],
      ['30s', 30_000],
      ['10m', 600_000],
      ['24h', 86_400_000],
      ['30d', 30 * 86_400_000],
      ['500ms', 500],
      ['1h30m', 5_400_000],
      ['1m1s1ms', 61_001],
      ['90s', 90_000],
    ];
    for (const [text, ms] of good) {
      it(`reads ${text} as ${ms} ms`, () => assert.equal(parseDuration(text), ms));
    }

    const bad = ['', 'bogus', '10', 's', '-1s', '+1s', '1.5h', '1 h', ' 1h', '1h ', '1H', '1w', '1y', '1hm', 'h1', '1s-', '99999999999999999999d', `${'1s'.repeat(40)}`];
    for (const text of bad) {
      it(`refuses ${JSON.stringify(text.length > 30 ? `${text.slice(0, 27)}...` : text)} with a one-line error`, () => {
        assert.throws(
          () => parseDuration(text, '--ttl'),
          (err: unknown) =>
            err instanceof PalisadeError &&
            err.code === 'PALISADE_ERR_INVALID_ARGUMENT' &&
            err.message.startsWith('invalid --ttl ') &&
            !err.message.includes('\n'),
        );
      });
    }

    it('refuses non-strings', () => {
      assert.throws(() => parseDuration(42 as unknown as string), PalisadeError);
    });
  });

  describe('parsePositiveDuration', () => {
    it('refuses zero', () => {
      assert.throws(() => parsePositiveDuration('0s', '--ttl'), /must be more than zero/);
    });
    it('accepts a positive duration', () => assert.equal(parsePositiveDuration('1s'), 1000));
  });

  describe('formatDuration', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [500, '500ms'],
      [90_000, '1m30s'],
      [86_400_000, '1d'],
      [90_061_001, '1d1h1m1s1ms'],
    ];
    for (const [ms, text] of cases) {
      it(`renders ${ms} as ${text} and reads it back`, () => {
        assert.equal(formatDuration(ms), text);
        assert.equal(parseDuration(text), ms);
      });
    }
    it('refuses negative and fractional values', () => {
      assert.throws(() => formatDuration(-1), RangeError);
      assert.throws(() => formatDuration(1.5), RangeError);
    });
  });
});
