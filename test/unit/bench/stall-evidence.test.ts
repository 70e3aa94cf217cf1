import { strict as assert } from 'node:assert';
import { warnLines } from '../../bench/data-plane/stall-evidence';

describe('data-plane bench: a stalled run keeps the agents warn/error lines', function () {
  const since = Date.parse('2026-12-07T18:00:00.000Z');
  const cases: Array<[string, unknown, boolean]> = [
    ['a warn line during the run', { level: 40, time: '2026-12-07T18:00:01.000Z', msg: 'http upstream failed' }, true],
    ['an error line during the run', { level: 50, time: '2026-12-07T18:00:02.000Z', msg: 'x' }, true],
    ['a warn line at the run start', { level: 40, time: '2026-12-07T18:00:00.000Z' }, true],
    ['a warn line before the run', { level: 40, time: '2026-12-07T17:59:59.999Z' }, false],
    ['an info line during the run', { level: 30, time: '2026-12-07T18:00:01.000Z' }, false],
    ['a line with a time in ms', { level: 60, time: since + 5 }, true],
    ['a line with no time', { level: 40 }, true],
    ['a line with no level', { time: '2026-12-07T18:00:01.000Z' }, false],
    ['not an object', 'warn', false],
    ['null', null, false],
  ];
  for (const [what, line, kept] of cases) it(`${what}: ${kept ? 'kept' : 'left out'}`, () => assert.equal(warnLines([line], since).length, kept ? 1 : 0));
});
