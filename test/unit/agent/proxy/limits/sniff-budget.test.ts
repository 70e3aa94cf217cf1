import { strict as assert } from 'node:assert';
import { SniffBudget, sniffFits } from '../../../../../agent/proxy/limits/sniff-budget';

describe('SniffBudget', () => {
  describe('sniffFits', () => {
    const caps = { total: 100, perPod: 25 };
    const table: Array<[string, { total: number; bySource: number }, number, string | undefined]> = [
      ['room', { total: 0, bySource: 0 }, 25, undefined],
      ['the pod share exactly', { total: 50, bySource: 20 }, 5, undefined],
      ['past the pod share', { total: 50, bySource: 20 }, 6, 'pod-sniff-budget'],
      ['past the budget', { total: 90, bySource: 0 }, 11, 'node-sniff-budget'],
    ];
    for (const [what, held, n, want] of table) it(`${what} → ${want ?? 'fits'}`, () => assert.equal(sniffFits(held, n, caps), want));
  });

  it('accounts bytes per connection and per pod, refuses the newest bytes past either, and frees them on release', () => {
    const budget = new SniffBudget(100);
    assert.equal(budget.perPod, 25);
    const pods = ['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.4'];
    const holds = pods.map((p) => budget.hold(p));
    for (const h of holds) assert.ok(h.take(20));
    const second = budget.hold('10.0.1.1');
    assert.equal(second.take(10), false, 'the pod would hold 30 of its 25');
    assert.equal(second.refused, 'pod-sniff-budget');
    const fifth = budget.hold('10.0.1.5');
    assert.ok(fifth.take(20));
    assert.equal(budget.hold('10.0.1.6').take(1), false);
    assert.deepEqual(budget.usage(), { held: 100, highWater: 100 });
    holds[0]!.release();
    holds[0]!.release();
    assert.deepEqual(budget.usage(), { held: 80, highWater: 100 }, 'released once');
    assert.ok(second.take(10), 'its pod has room again');
  });
});
