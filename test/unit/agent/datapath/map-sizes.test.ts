import { strict as assert } from 'node:assert';
import { PalisadeError } from '../../../../common/errors';
import { kernelConnections, mapLimitSettings, mapSizes, withPinnedSizes } from '../../../../agent/datapath/map-sizes';
import { podAdmission } from '../../../../agent/datapath/pod-admission';

describe('map sizes', function () {
  it('sizes the pod maps by pods, the drop counters 16 a pod, the connection maps by connections', function () {
    assert.deepEqual(mapSizes({ pods: 2, connections: 8 }), {
      palisade_pods: 2,
      palisade_ifaces: 2,
      palisade_drops: 32,
      palisade_drops_seen: 32,
      palisade_drops_v6: 4,
      palisade_orig_sk: 8,
      palisade_conns: 8,
      palisade_tcp_in: 8,
    });
  });

  const connections: Array<[string, { outbound: number; inbound: number }, number | undefined, number]> = [
    ['the proxy\'s caps both ways', { outbound: 5000, inbound: 2500 }, undefined, 7500],
    ['at least 1,024 (the tests\' 1,200 descriptors give 379 + 189)', { outbound: 379, inbound: 189 }, undefined, 1024],
    ['at most 131,072 (1,048,576 descriptors give 373,507 + 186,753)', { outbound: 373_507, inbound: 186_753 }, undefined, 131_072],
    ['exactly --kernel-connections, however small', { outbound: 373_507, inbound: 186_753 }, 4, 4],
  ];
  for (const [what, caps, explicit, want] of connections) it(`connection maps: ${what}`, () => assert.equal(kernelConnections(caps, explicit), want));

  const bad: Array<[number | undefined, number | undefined, RegExp]> = [
    [0, undefined, /--max-pods must be a whole number from 1 to 4096, got 0/],
    [4097, undefined, /--max-pods/],
    [2.5, undefined, /--max-pods/],
    [undefined, 0, /--kernel-connections must be a whole number from 1 to 4194304, got 0/],
  ];
  for (const [pods, conns, re] of bad) {
    it(`refuses --max-pods ${pods} / --kernel-connections ${conns} in one line`, function () {
      assert.throws(() => mapLimitSettings(pods, conns, { outbound: 1, inbound: 1 }), (err: PalisadeError) => err.code === 'PALISADE_ERR_INVALID_ARGUMENT' && re.test(err.message));
    });
  }

  it('defaults to 256 pods', function () {
    assert.deepEqual(mapLimitSettings(undefined, undefined, { outbound: 379, inbound: 189 }), { pods: 256, connections: 1024 });
  });

  it('keeps the size of a pinned map (and says which differ), sizes the rest as asked', function () {
    const { sizes, kept } = withPinnedSizes(mapSizes({ pods: 2, connections: 8 }), new Map([['palisade_pods', 4096], ['palisade_conns', 8], ['palisade_stats', 6], ['palisade_dns_sk', 0]]));
    assert.equal(sizes.palisade_pods, 4096);
    assert.equal(sizes.palisade_ifaces, 2);
    assert.equal(sizes.palisade_stats, 6, 'a pinned map the limits do not size keeps its size too');
    assert.equal(sizes.palisade_dns_sk, undefined, 'socket storage has no size to keep');
    assert.deepEqual(kept, [{ map: 'palisade_pods', pinned: 4096, wanted: 2 }]);
  });
});

describe('podAdmission', function () {
  const cases: Array<[string, { enrolled: boolean; inUse: number; capacity: number }, string | undefined]> = [
    ['room left', { enrolled: false, inUse: 1, capacity: 2 }, undefined],
    ['full', { enrolled: false, inUse: 2, capacity: 2 }, 'the node is full: 2 of 2 pods enrolled (--max-pods 2)'],
    ['full, but the pod is enrolled already (an update)', { enrolled: true, inUse: 2, capacity: 2 }, undefined],
    ['over (pins of a larger size counted)', { enrolled: false, inUse: 3, capacity: 2 }, 'the node is full: 3 of 2 pods enrolled (--max-pods 2)'],
  ];
  for (const [what, input, want] of cases) it(what, () => assert.equal(podAdmission(input), want));
});
