import { strict as assert } from 'node:assert';
import { SessionGaps } from '../../../../collector/flows/session-gaps';

describe('SessionGaps', () => {
  // steps: [op, seq, mayTake before the op]; refuse: at the door, fail: after it was taken
  const table: Array<[string, Array<['take' | 'refuse' | 'fail', number, boolean]>]> = [
    ['no refusal: every batch is taken', [['take', 1, true], ['take', 2, true], ['take', 3, true]]],
    ['after a refusal at 3, later batches wait; 3 sent again closes the gap', [['take', 1, true], ['refuse', 3, true], ['take', 4, false], ['take', 3, true], ['take', 4, true]]],
    ['an earlier batch sent again is taken while the gap is open', [['refuse', 5, true], ['take', 4, true], ['take', 6, false], ['take', 5, true], ['take', 6, true]]],
    ['two refusals: the earliest holds the gap', [['refuse', 5, true], ['refuse', 3, true], ['take', 4, false], ['take', 3, true], ['take', 4, true]]],
    // the agent sends 2 again while 2 is still being stored: that copy refused must not hold 3 back for good
    ['a refused copy of a batch already taken opens no gap', [['take', 1, true], ['take', 2, true], ['refuse', 2, true], ['take', 3, true]]],
    ['a taken batch that fails opens the gap', [['take', 1, true], ['take', 2, true], ['fail', 2, true], ['take', 3, false], ['take', 2, true], ['take', 3, true]]],
  ];
  for (const [what, steps] of table) {
    it(what, () => {
      const g = new SessionGaps();
      for (const [op, seq, may] of steps) {
        assert.equal(g.mayTake('n\ns', seq), may, `${op} ${seq}`);
        if (op === 'refuse') g.refused('n\ns', seq);
        else if (op === 'fail') g.failed('n\ns', seq);
        else if (may) g.taken('n\ns', seq);
      }
      assert.equal(g.size, 0);
    });
  }

  it('keeps sessions apart', () => {
    const g = new SessionGaps();
    g.refused('a', 2);
    assert.equal(g.mayTake('a', 3), false);
    assert.equal(g.mayTake('b', 3), true);
  });
});
