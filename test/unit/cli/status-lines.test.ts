import { strict as assert } from 'node:assert';
import { wireRulesLines } from '../../../cli/commands/status';

describe('palisade status lines', () => {
  it('names each node whose UDP/ICMP rules are stale, and nothing for the others', () => {
    const out = wireRulesLines([
      { node: 'node-a', connected: true, policyVersion: 3, workloads: 2, wireRulesStale: '40 UDP/ICMP rule entries do not fit (at most 8)' },
      { node: 'node-b', connected: true, policyVersion: 3, workloads: 1 },
    ]);
    assert.equal(out, 'node-a: UDP/ICMP rules stale (failing closed, retried): 40 UDP/ICMP rule entries do not fit (at most 8)\n');
    assert.equal(wireRulesLines([{ node: 'node-b', connected: true, workloads: 0 }]), '');
  });
});
