import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isDemoSuite, mochaOptions, WAITING_LANE, waitingLaneFiles } from '../../harness/lanes';

describe('make test lanes', () => {
  const testDir = path.resolve(__dirname, '../..');

  it('the waiting lane lists test files that exist, once each', () => {
    assert.ok(WAITING_LANE.length > 0);
    assert.equal(new Set(WAITING_LANE).size, WAITING_LANE.length);
    for (const f of waitingLaneFiles(testDir)) assert.ok(fs.existsSync(f), `${f} does not exist`);
  });

  it('never holds a demo suite (the demo names are fixed: two at once collide)', () => {
    for (const f of WAITING_LANE) assert.equal(isDemoSuite(f), false, f);
  });

  const demo: [string, boolean][] = [
    ['privileged/cli/demo', true],
    ['privileged/cli/demo-prometheus', true],
    ['dist/test/privileged/cli/demo-pods.test.js', true],
    ['unit/cli/demo-prometheus', false],
    ['privileged/agent/mesh', false],
    ['privileged/cli/demo/x', false],
  ];
  for (const [file, expected] of demo) it(`isDemoSuite(${file}) is ${expected}`, () => assert.equal(isDemoSuite(file), expected));

  it("passes on mocha's options from its config, without the spec", () => {
    assert.deepEqual(mochaOptions({ spec: ['dist/test/**/*.test.js'], timeout: 30000, 'enable-source-maps': true, exit: true, color: false }), [
      '--timeout',
      '30000',
      '--enable-source-maps',
      '--exit',
      '--no-color',
    ]);
  });

  it('refuses an option it cannot pass on, in one line', () => {
    assert.throws(() => mochaOptions({ require: ['a', 'b'] }), /option require has a value the lane runner does not pass on/);
  });

  it('the repository config has only options it passes on', () => {
    const config = JSON.parse(fs.readFileSync(path.resolve(testDir, '../../.mocharc.json'), 'utf8')) as Record<string, unknown>;
    assert.ok(mochaOptions(config).includes('--timeout'));
  });
});
