import { strict as assert } from 'node:assert';
import { passTurn, Slice } from '../../../common/slice';

/** Busy for `ms` (the thread held, as a heavy step holds it). */
const busy = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

/** Whether what `start()` returns settles before the event loop's next check phase. */
async function settlesThisTurn(start: () => Promise<void>): Promise<boolean> {
  let turned = false;
  setImmediate(() => (turned = true));
  await start();
  return !turned;
}

describe('Slice', () => {
  it('pass() resolves at once while the slice lasts, and after a turn once it is spent', async () => {
    await new Promise((r) => setImmediate(r)); // a fresh turn
    const slice = new Slice(200);
    assert.equal(await settlesThisTurn(() => slice.pass()), true);
    busy(250);
    assert.equal(await settlesThisTurn(() => slice.pass()), false);
    assert.equal(await settlesThisTurn(() => slice.pass()), true, 'the next turn begins a new slice');
  });

  it('slices of one turn share its budget: work that follows another sliced step in the same turn yields at once', async () => {
    await new Promise((r) => setImmediate(r));
    const first = new Slice(100);
    await first.pass();
    busy(150); // the first step's slice is spent (and, say, it finishes here)
    // a second step begins in the same turn: it does not get a budget of its own
    assert.equal(await settlesThisTurn(() => new Slice(100).pass()), false);
    assert.equal(await settlesThisTurn(() => passTurn(100)), true, 'a new turn: a new budget');
  });

  it('a step that ran right after a yield counts in the new turn', async () => {
    const slice = new Slice(100);
    busy(150);
    await slice.pass(); // yields: the new turn's clock starts here
    busy(150); // a heavy step right after resuming
    assert.equal(await settlesThisTurn(() => slice.pass()), false);
  });
});
