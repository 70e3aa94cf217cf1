import { strict as assert } from 'node:assert';
import { assignPodIds } from '../../../../agent/datapath/pod-ids';

describe('assignPodIds', () => {
  const cases: Array<[string, Array<[bigint, number]>, bigint[], Array<[bigint, number]>]> = [
    ['numbers a first enrollment from 1', [], [10n, 11n, 12n], [[10n, 1], [11n, 2], [12n, 3]]],
    ['keeps the ids of pods already enrolled', [[11n, 7], [10n, 1]], [10n, 11n, 12n], [[10n, 1], [11n, 7], [12n, 2]]],
    ['frees the ids of pods that left, for new ones', [[10n, 1], [11n, 2]], [11n, 13n], [[11n, 2], [13n, 1]]],
    ['gives a duplicated id once', [[10n, 3], [11n, 3]], [10n, 11n], [[10n, 3], [11n, 1]]],
    ['ignores an id of 0', [[10n, 0]], [10n], [[10n, 1]]],
  ];
  for (const [what, enrolled, wanted, expected] of cases) {
    it(what, () => assert.deepEqual([...assignPodIds(new Map(enrolled), wanted)].sort((a, b) => Number(a[0] - b[0])), expected));
  }
});
