import { strict as assert } from 'node:assert';
import { Deadlines } from '../../../../../agent/proxy/http/deadlines';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Deadlines (a dispatched request\'s timers)', function () {
  it('an injected delay runs its continuation once it passes', async function () {
    const d = new Deadlines(() => assert.fail('no deadline'), () => assert.fail('no attempt deadline'));
    let ran = 0;
    d.startDelay(10, () => ran++);
    await sleep(60);
    assert.equal(ran, 1);
    d.clear();
  });

  it('clear() drops a pending delay with the deadlines: an abandoned delayed request is not kept for the rest of its delay', async function () {
    const fired: string[] = [];
    const d = new Deadlines(() => fired.push('request'), () => fired.push('attempt'));
    d.startRequest(20);
    d.startAttempt(20);
    d.startDelay(20, () => fired.push('delay'));
    d.clear();
    await sleep(80);
    assert.deepEqual(fired, []);
  });
});
