import { strict as assert } from 'node:assert';
import { KeyedQueue } from '../../../common/keyed-queue';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('KeyedQueue', () => {
  it('runs one key\'s work in order, one at a time, and different keys side by side', async () => {
    const q = new KeyedQueue();
    const log: string[] = [];
    const task = (name: string) => async (): Promise<string> => {
      log.push(`${name} start`);
      await tick();
      log.push(`${name} end`);
      return name;
    };
    const results = await Promise.all([q.run('a', task('a1')), q.run('a', task('a2')), q.run('b', task('b1'))]);
    assert.deepEqual(results, ['a1', 'a2', 'b1']);
    assert.ok(log.indexOf('a1 end') < log.indexOf('a2 start'), log.join(', '));
    assert.ok(log.indexOf('b1 start') < log.indexOf('a1 end'), `b does not wait for a: ${log.join(', ')}`);
  });

  it('a failed task fails its caller only: the next one under the key still runs', async () => {
    const q = new KeyedQueue();
    const failed = q.run('a', () => Promise.reject(new Error('boom')));
    const next = q.run('a', () => 'ran');
    await assert.rejects(failed, /boom/);
    assert.equal(await next, 'ran');
  });

  it('keeps nothing for a key once its work has settled, however many keys it saw', async () => {
    const q = new KeyedQueue();
    await Promise.all(Array.from({ length: 100 }, (_, i) => q.run(`filter ${i}`, async () => tick())));
    await tick();
    assert.equal(q.size, 0);
  });
});
