import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { collect } from '../../harness/proc';

describe('harness: collect (a child\'s output and exit)', function () {
  it('keeps output that arrived within the exit grace even when the event loop was busy as the grace ended', async function () {
    // The child exits at once; a grandchild still holding stdout writes 100 ms later, inside the
    // 250 ms grace. Then this process is blocked past the grace (a loaded machine): the grace's
    // timer and the waiting output are due in the same turn, and timers run before I/O.
    const child = spawn('sh', ['-c', '(sleep 0.1; printf late) & exit 0'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const result = collect(child, { timeoutMs: 10_000 });
    child.once('exit', () => {
      const until = Date.now() + 500;
      while (Date.now() < until); // busy, on purpose
    });
    const r = await result;
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'late');
  });
});
