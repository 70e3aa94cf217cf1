import { strict as assert } from 'node:assert';
import { FrameBudget, PacedFrames } from '../../../collector/frame-budget';

describe('FrameBudget', () => {
  describe('cost', () => {
    const table: Array<[Parameters<typeof FrameBudget.cost>, number]> = [
      [['policy-status'], 1],
      [['flows', 499], 1],
      [['flows', 1000], 3],
      [['csr'], 10],
      [['register'], 10],
      [['hello'], 5],
      [['registry-sync'], 50],
    ];
    for (const [args, want] of table) it(`${args.join(' ')} costs ${want}`, () => assert.equal(FrameBudget.cost(...args), want));
  });

  it('lets a burst of its capacity through, then says how long to pause until it has refilled', () => {
    let t = 0;
    const b = new FrameBudget({ capacity: 20, perSecond: 10, now: () => t });
    assert.equal(b.spend(10), 0);
    assert.equal(b.spend(10), 0);
    assert.equal(b.spend(5), 500, '5 tokens short at 10 per second');
    t += 500;
    assert.equal(b.spend(0), 0, 'back at zero after the pause');
    t += 10_000;
    assert.equal(b.spend(20), 0, 'refilled, never past capacity');
    assert.equal(b.spend(1), 100);
  });

  it('take: spends only what the bucket holds now, so refusals leave no debt', () => {
    let t = 0;
    const b = new FrameBudget({ capacity: 3, perSecond: 2, now: () => t });
    assert.deepEqual([1, 2, 3, 4, 5].map(() => b.take(1)), [true, true, true, false, false]);
    t += 500;
    assert.equal(b.take(1), true, 'one back after 500 ms at 2 per second, whatever was refused before');
    assert.equal(b.take(1), false);
    t += 60_000;
    assert.deepEqual([1, 2, 3, 4].map(() => b.take(1)), [true, true, true, false], 'never past capacity');
  });
});

describe('PacedFrames', () => {
  it('handles frames at once within the budget, then queues them in order with the socket paused until it has refilled', async () => {
    const events: string[] = [];
    const socket = { pause: () => events.push('pause'), resume: () => events.push('resume') };
    let paced: PacedFrames;
    const handle = (data: Buffer): void => {
      events.push(data.toString());
      paced.charge(10);
    };
    // the bucket's clock moves only when the test says (a busy machine's delays refill nothing); the pauses are real timers
    let clock = 0;
    paced = new PacedFrames(socket, handle, new FrameBudget({ capacity: 20, perSecond: 1000, now: () => clock }));
    for (const f of ['a', 'b', 'c', 'd']) paced.receive(Buffer.from(f), false);
    assert.deepEqual(events, ['a', 'b', 'c', 'pause'], 'c overdraws the bucket: the socket is paused, d waits');
    assert.equal(paced.waiting, 1);
    clock = 10; // refilled back to zero when the pause ends
    for (let waited = 0; !events.includes('resume') && waited < 5_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(events.slice(4), ['d', 'pause', 'resume'], 'd overdraws again: one more pause, then reading resumes');
    paced.stop();
    paced.receive(Buffer.from('e'), false);
    assert.equal(events.includes('e'), false, 'nothing after stop');
  });
});
