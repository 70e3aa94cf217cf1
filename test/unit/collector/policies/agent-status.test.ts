import { strict as assert } from 'node:assert';
import { AgentPolicyStatus } from '../../../../collector/policies/agent-status';
import { silentLogger } from '../../../../common/log';
import type { RegistrySnapshot } from '../../../../common/mesh-protocol';

const SNAP: RegistrySnapshot = {
  version: 1,
  epoch: 'e1',
  workloads: [],
  nodes: [
    { node: 'node-a', nodeAddress: '192.168.1.10', online: true, lastSeen: '2026-01-01T00:00:00.000Z' },
    { node: 'node-b', nodeAddress: '192.168.1.11', online: true, lastSeen: '2026-01-01T00:00:00.000Z' },
  ],
};

describe('AgentPolicyStatus', () => {
  it('shows a node whose UDP/ICMP rules are stale, and stops once the agent says they are current', () => {
    const s = new AgentPolicyStatus(silentLogger());
    s.report('node-a', { type: 'policy-status', version: 4, ok: true, problems: [], wireRules: '40 entries do not fit (at most 8); failing closed' });
    s.report('node-b', { type: 'policy-status', version: 4, ok: true, problems: [] });
    const nodes = s.status(SNAP, 4, { flowsStored: 0, auditRecords: 0 }).nodes;
    assert.deepEqual(
      nodes.map((n) => [n.node, n.policyVersion, n.wireRulesStale]),
      [
        ['node-a', 4, '40 entries do not fit (at most 8); failing closed'],
        ['node-b', 4, undefined],
      ],
    );
    assert.ok(!('wireRulesStale' in nodes[1]!), 'absent, not undefined, on the wire');
    s.report('node-a', { type: 'policy-status', version: 4, ok: true, problems: [] });
    assert.equal(s.status(SNAP, 4, { flowsStored: 0, auditRecords: 0 }).nodes[0]!.wireRulesStale, undefined);
  });
});
