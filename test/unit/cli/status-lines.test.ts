import { strict as assert } from 'node:assert';
import { ageText, replicaLines, wireRulesLines } from '../../../cli/commands/status';
import type { ReplicaStatus } from '../../../common/control-api';

describe('palisade status lines', () => {
  it('names each node whose UDP/ICMP rules are stale, and nothing for the others', () => {
    const out = wireRulesLines([
      { node: 'node-a', connected: true, policyVersion: 3, workloads: 2, wireRulesStale: '40 UDP/ICMP rule entries do not fit (at most 8)' },
      { node: 'node-b', connected: true, policyVersion: 3, workloads: 1 },
    ]);
    assert.equal(out, 'node-a: UDP/ICMP rules stale (failing closed, retried): 40 UDP/ICMP rule entries do not fit (at most 8)\n');
    assert.equal(wireRulesLines([{ node: 'node-b', connected: true, workloads: 0 }]), '');
  });

  describe('the collector replicas (Kubernetes mode)', () => {
    const row = (over: Partial<ReplicaStatus>): ReplicaStatus => ({ replica: 'r', self: false, lease: 'held', renewedAgoMs: 1_000, durationMs: 15_000, judgement: 'alive', nodes: 0, offline: 0, ...over });
    const cases: Array<[string, ReplicaStatus, string]> = [
      ['the answering replica', row({ replica: 'aaaa', self: true, judgement: 'self', renewedAgoMs: 2_345, nodes: 3 }), 'aaaa (answering)  held, 15 s  2.3 s ago  self  3'],
      ['the answering replica cut off', row({ replica: 'aaaa', self: true, judgement: 'self', why: 'its renewals or its watch of the Leases are failing: it judges nobody', renewedAgoMs: 40_000 }), 'aaaa (answering)  held, 15 s  40 s ago  self: its renewals or its watch of the Leases are failing: it judges nobody  0'],
      ['alive, with nodes', row({ replica: 'bbbb', nodes: 5 }), 'bbbb  held, 15 s  1.0 s ago  alive  5'],
      ['dead by a stale Lease, its nodes offline here', row({ replica: 'cccc', judgement: 'dead', why: 'its Lease was not renewed within its duration', renewedAgoMs: 300_000, durationMs: 2_000, nodes: 2, offline: 2 }), 'cccc  held, 2 s  5 min ago  dead: its Lease was not renewed within its duration  2 (2 offline here)'],
      ['Lease deleted', row({ replica: 'dddd', lease: 'deleted', renewedAgoMs: undefined, durationMs: undefined, judgement: 'dead', why: 'its Lease was deleted' }), 'dddd  deleted  -  dead: its Lease was deleted  0'],
      ['not judged', row({ replica: 'eeee', lease: 'none', renewedAgoMs: undefined, durationMs: undefined, judgement: 'not judged', why: "this replica's own view of the API is not current", nodes: 1 }), "eeee  none  -  not judged: this replica's own view of the API is not current  1"],
    ];
    for (const [what, r, want] of cases) {
      it(what, () => {
        const [header, line] = replicaLines([r]).split('\n');
        assert.deepEqual(header!.split(/\s{2,}/), ['REPLICA', 'LEASE', 'RENEWED', 'JUDGED', 'NODES']);
        assert.equal(line!.replace(/\s{2,}/g, '  '), want);
      });
    }
    it('one aligned row per replica, in the order given', () => {
      const out = replicaLines([row({ replica: 'aaaa', self: true, judgement: 'self' }), row({ replica: 'bbbbbbbb' })]).split('\n');
      assert.equal(out.length, 4, 'header, two rows, the final newline');
      assert.equal(out[1]!.indexOf('held'), out[2]!.indexOf('held'), 'columns aligned');
    });
    const ages: Array<[number, string]> = [[0, '0.0 s ago'], [9_949, '9.9 s ago'], [10_000, '10 s ago'], [119_000, '119 s ago'], [120_000, '2 min ago'], [-1, '-'], [NaN, '-']];
    for (const [ms, want] of ages) it(`age ${ms} ms: ${want}`, () => assert.equal(ageText(ms), want));
  });
});
