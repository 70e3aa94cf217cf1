import { strict as assert } from 'node:assert';
import { MeshRegistry } from '../../../../agent/mesh/mesh-registry';
import type { RegistryChange, RegistrySnapshot, RegistryWorkload } from '../../../../common/mesh-protocol';

const w = (node: string, ip: string): RegistryWorkload => ({
  node,
  nodeAddress: `172.31.0.${node.slice(-1)}`,
  name: `w-${ip}`,
  namespace: 'default',
  serviceAccount: 'sa',
  identity: 'spiffe://cluster.local/ns/default/sa/sa',
  ip,
  labels: {},
});
const n = (node: string) => ({ node, nodeAddress: `172.31.0.${node.slice(-1)}`, online: true, lastSeen: '2026-12-07T08:00:00.000Z' });
const snap = (epoch: string, version: number, workloads: RegistryWorkload[]): RegistrySnapshot => ({
  epoch,
  version,
  workloads,
  nodes: [...new Set(workloads.map((x) => x.node))].map(n),
  services: [],
});
const state = (r: MeshRegistry): string => [...r.all()].map((x) => `${x.node}:${x.ip}`).sort().join(' ');
const delta = (epoch: string, from: number, changes: RegistryChange[]) => ({ type: 'registry-delta' as const, epoch, fromVersion: from, toVersion: from + 1, changes });

describe('MeshRegistry across a collector failover (replaceCarrying)', () => {
  /** Before: node-1 (ours) and node-2 at replica A; B's first snapshot knows only node-1. */
  function failedOver(): MeshRegistry {
    const r = new MeshRegistry();
    r.replace(snap('A', 7, [w('node-1', '10.0.1.2'), w('node-2', '10.0.2.2'), w('node-2', '10.0.2.3')]));
    assert.equal(r.replaceCarrying(snap('B', 1, [w('node-1', '10.0.1.2')])), 2);
    return r;
  }

  it('keeps the nodes the new replica does not know yet, at its position', () => {
    const r = failedOver();
    assert.equal(state(r), 'node-1:10.0.1.2 node-2:10.0.2.2 node-2:10.0.2.3');
    assert.deepEqual(r.position(), { epoch: 'B', version: 1 });
    assert.deepEqual([...r.nodeAddresses()].sort(), ['172.31.0.1', '172.31.0.2']);
    assert.equal(r.byIp('10.0.2.3')?.node, 'node-2');
  });

  it('what the new replica then says about a carried node wins; what it never says goes at dropCarried', () => {
    const r = failedOver();
    assert.ok(r.apply(delta('B', 1, [{ op: 'set-node', node: n('node-2') }, { op: 'set-workload', workload: w('node-2', '10.0.2.2') }])));
    assert.equal(r.dropCarried(), 1, '10.0.2.3 was never registered at B');
    assert.equal(state(r), 'node-1:10.0.1.2 node-2:10.0.2.2');
    assert.deepEqual([...r.allNodes()].map((x) => x.node).sort(), ['node-1', 'node-2']);
  });

  it('a node the new replica never hears of goes whole at dropCarried', () => {
    const r = failedOver();
    assert.equal(r.dropCarried(), 2);
    assert.equal(state(r), 'node-1:10.0.1.2');
    assert.deepEqual([...r.allNodes()].map((x) => x.node), ['node-1']);
    assert.deepEqual([...r.nodeAddresses()], ['172.31.0.1']);
  });

  it('a removal by the new replica ends the carry of that workload', () => {
    const r = failedOver();
    assert.ok(r.apply(delta('B', 1, [{ op: 'remove-workload', ip: '10.0.2.3' }])));
    assert.equal(state(r), 'node-1:10.0.1.2 node-2:10.0.2.2');
    assert.equal(r.dropCarried(), 1);
  });

  it('a plain snapshot ends every carry (a later dropCarried removes nothing)', () => {
    const r = failedOver();
    r.replace(snap('B', 5, [w('node-1', '10.0.1.2'), w('node-2', '10.0.2.2')]));
    assert.equal(r.dropCarried(), 0);
    assert.equal(state(r), 'node-1:10.0.1.2 node-2:10.0.2.2');
  });

  it('the new replica\'s own view of an IP replaces the carried one', () => {
    const r = new MeshRegistry();
    r.replace(snap('A', 3, [w('node-1', '10.0.1.2'), w('node-2', '10.0.9.9')]));
    r.replaceCarrying(snap('B', 1, [w('node-1', '10.0.1.2'), w('node-3', '10.0.9.9')]));
    assert.equal(r.byIp('10.0.9.9')?.node, 'node-3');
    assert.equal(r.dropCarried(), 0);
    assert.equal(state(r), 'node-1:10.0.1.2 node-3:10.0.9.9');
  });
});
