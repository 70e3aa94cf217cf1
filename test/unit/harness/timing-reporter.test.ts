import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { fixturePath } from '../../harness/fixtures';
import { ranking, summary } from '../../harness/timing-reporter';

describe('timing reporter (where the suite\'s time goes)', function () {
  describe('ranking', function () {
    const cases: Array<[string, Array<{ title: string; ms: number }>, number, string[]]> = [
      ['slowest first', [{ title: 'a', ms: 100 }, { title: 'b', ms: 2500 }], 5, ['     2.5 s  b', '     0.1 s  a']],
      ['the same title summed (a file with two top-level suites)', [{ title: 'a', ms: 400 }, { title: 'b', ms: 500 }, { title: 'a', ms: 400 }], 5, ['     0.8 s  a', '     0.5 s  b']],
      ['only the top ones', [{ title: 'a', ms: 1 }, { title: 'b', ms: 2 }, { title: 'c', ms: 3 }], 2, ['     0.0 s  c', '     0.0 s  b']],
      ['ties by title', [{ title: 'b', ms: 1000 }, { title: 'a', ms: 1000 }], 5, ['     1.0 s  a', '     1.0 s  b']],
      ['nothing', [], 5, []],
    ];
    for (const [what, items, top, want] of cases) it(what, () => assert.deepEqual(ranking(items, top), want));
  });

  it('summary: the files\' wall time split into tests and hooks', function () {
    const lines = summary([{ title: 'x.test.js', ms: 9000 }], [{ title: 'x.test.js: "before all" hook', ms: 7000 }], 2000, 5);
    assert.ok(lines.includes('  Time: test files 9.0 s, of which tests 2.0 s and hooks 7.0 s'), lines.join('\n'));
  });

  it('through mocha: a file\'s wall time includes its before hook, and the hook is named', async function () {
    this.timeout(30_000);
    const reporter = path.resolve(__dirname, '../../harness/timing-reporter.js');
    const { stdout } = await promisify(execFile)(process.execPath, [require.resolve('mocha/bin/mocha.js'), '--no-config', '--no-color', '--reporter', reporter, fixturePath('slow-hook.js')]);
    assert.match(stdout, /✔ runs quickly/, 'the spec output is there');
    const after = stdout.slice(stdout.indexOf('Slowest test files'));
    const file = /^ +(\d+\.\d) s {2}test\/fixtures\/slow-hook\.js$/m.exec(after);
    assert.ok(file && Number(file[1]) >= 0.3, `the file's 300 ms hook counted in its time:\n${stdout}`);
    const hook = /^ +(\d+\.\d) s {2}test\/fixtures\/slow-hook\.js: "before all" hook \(a suite with a slow set-up\)$/m.exec(after);
    assert.ok(hook && Number(hook[1]) >= 0.3, `the hook named with its 300 ms:\n${stdout}`);
  });
});
