import { strict as assert } from 'node:assert';
import Mocha from 'mocha';
import { parseTimeScale } from '../../harness/time';
import { scaleTimeouts } from '../../kernel/time-scale';

describe('test-kernel time scale', () => {
  describe('parseTimeScale', () => {
    const cases: Array<[string | undefined, number | RegExp]> = [
      [undefined, 1],
      ['', 1],
      ['10', 10],
      ['2.5', 2.5],
      ['0.5', /from 1 to 100/],
      ['0', /from 1 to 100/],
      ['101', /from 1 to 100/],
      ['ten', /got "ten"/],
    ];
    for (const [raw, want] of cases) {
      it(`${JSON.stringify(raw)} -> ${want}`, () => {
        if (typeof want === 'number') assert.equal(parseTimeScale(raw), want);
        else assert.throws(() => parseTimeScale(raw), want);
      });
    }
  });

  describe('scaleTimeouts', () => {
    it("multiplies every suite's, hook's and test's own timeout once (not compounded down the tree, not overwritten by the parent's), and leaves 0 alone", () => {
      const root = new Mocha.Suite('', new Mocha.Context());
      root.timeout(30_000);
      const suite = Mocha.Suite.create(root, 'datapath');
      suite.timeout(60_000);
      suite.beforeAll('setup', () => undefined);
      const test = new Mocha.Test('redirects', () => undefined);
      suite.addTest(test);
      const quick = new Mocha.Test('quick', () => undefined);
      suite.addTest(quick);
      quick.timeout(5_000);
      const nested = Mocha.Suite.create(suite, 'nested');
      nested.timeout(0);
      const untimed = new Mocha.Test('untimed', () => undefined);
      nested.addTest(untimed);
      const hook = (suite as unknown as { _beforeAll: Mocha.Hook[] })._beforeAll[0]!;

      scaleTimeouts(root, 10);

      assert.deepEqual(
        [root.timeout(), suite.timeout(), hook.timeout(), test.timeout(), quick.timeout(), nested.timeout(), untimed.timeout()],
        [300_000, 600_000, 600_000, 600_000, 50_000, 0, 0],
      );
    });
  });
});
