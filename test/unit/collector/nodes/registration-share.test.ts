/**
 * Registrations shared by collector replicas (collector/nodes/registration-share.ts and
 * WorkloadRegistry.applyShared): the newest session's share wins whatever order replicas hear
 * the shares in (property-tested over random orders and repeats, through real registries); a
 * share is checked at the boundary; a stale session's close changes nothing, and a live session
 * that registers takes its node back.
 */
import { strict as assert } from 'node:assert';
import { checkRegistration, mergeRegistrations, newer, nextStamp, type RegistrationShare, type Stamp } from '../../../../collector/nodes/registration-share';
import { WorkloadRegistry } from '../../../../collector/registry';
import type { WorkloadRegistration } from '../../../../common/mesh-protocol';
import { Rng } from '../../../harness/random';

const w = (name: string, ip: string): WorkloadRegistration => ({ name, namespace: 'default', serviceAccount: name, ip, labels: { app: name } });
const share = (stamp: Stamp, workloads: WorkloadRegistration[], online = true): RegistrationShare => ({
  stamp,
  nodeAddress: '192.168.1.1',
  online,
  lastSeen: '2026-12-07T12:00:00.000Z',
  workloads,
  services: [],
});
const allow = (): undefined => undefined;

describe('registrations shared by replicas', () => {
  it('stamps: later time, then replica, then the session\'s change count; a new session is after everything seen', () => {
    assert.ok(newer({ at: 2, replica: 'a', seq: 0 }, { at: 1, replica: 'b', seq: 9 }));
    assert.ok(newer({ at: 1, replica: 'b', seq: 0 }, { at: 1, replica: 'a', seq: 9 }));
    assert.ok(newer({ at: 1, replica: 'a', seq: 2 }, { at: 1, replica: 'a', seq: 1 }));
    assert.ok(!newer({ at: 1, replica: 'a', seq: 1 }, { at: 1, replica: 'a', seq: 1 }));
    assert.ok(newer({ at: 1, replica: 'a', seq: 0 }, undefined));
    assert.deepEqual(nextStamp(100, { at: 500, replica: 'b', seq: 3 }, 'a'), { at: 501, replica: 'a', seq: 0 }, 'a clock behind the other replica\'s still orders after it');
    assert.deepEqual(nextStamp(900, { at: 500, replica: 'b', seq: 3 }, 'a'), { at: 900, replica: 'a', seq: 0 });
  });

  it('any order, any repeats: every replica ends with the newest share (property, 200 runs)', () => {
    const rng = new Rng(20);
    for (let run = 0; run < 200; run++) {
      const shares = Array.from({ length: 2 + rng.int(6) }, (_, i) =>
        share({ at: 1 + rng.int(4), replica: 'ab'[rng.int(2)]!, seq: rng.int(3) }, [w(`p${i}`, `10.0.0.${i + 1}`)], rng.chance(0.7)),
      );
      const expected = shares.reduce<RegistrationShare | undefined>((m, s) => mergeRegistrations(m, s), undefined)!;
      for (let order = 0; order < 4; order++) {
        const heard = [...shares, ...shares.filter(() => rng.chance(0.3))].sort(() => rng.next() - 0.5);
        const registry = new WorkloadRegistry('cluster.local');
        for (const s of heard) registry.applyShared('node-1', s, allow);
        const got = registry.snapshot();
        assert.deepEqual(got.workloads.map((x) => x.ip), expected.workloads.map((x) => x.ip), `run ${run} order ${order}`);
        assert.equal(got.nodes[0]!.online, expected.online);
      }
    }
  });

  it('a stale session (another replica holds the newer one) changes nothing when it ends; a live one that registers takes its node back', () => {
    const pushed: number[] = [];
    const registry = new WorkloadRegistry('cluster.local', (d) => pushed.push(d.toVersion));
    const local: string[] = [];
    registry.onLocalChange((n) => local.push(n));
    registry.nodeOnline('node-1', '192.168.1.1');
    registry.register('node-1', [w('web', '10.0.0.1')]);
    const ours = registry.shared('node-1')!;
    assert.equal(ours.stamp.replica, registry.epoch);
    assert.deepEqual(local, ['node-1', 'node-1']);
    const later = share({ at: ours.stamp.at + 1, replica: 'other', seq: 0 }, [w('db', '10.0.0.2')]);
    const result = registry.applyShared('node-1', later, allow);
    assert.ok(result.applied && result.tookOver);
    assert.equal(registry.shared('node-1'), undefined, 'the node is the other replica\'s now');
    const version = registry.version;
    registry.nodeOffline('node-1');
    assert.equal(registry.version, version, 'our stale session\'s end: no change');
    assert.equal(registry.snapshot().nodes[0]!.online, true);
    registry.register('node-1', [w('web', '10.0.0.1')]);
    assert.ok(newer(registry.shared('node-1')!.stamp, later.stamp), 'a registration from our session: ours again, newer than theirs');
    assert.deepEqual(registry.snapshot().workloads.map((x) => x.ip), ['10.0.0.1']);
    assert.equal(registry.applyShared('node-1', later, allow).applied, false, 'their older share does not come back');
  });

  it('a shared workload is decided like a registration: the binding, the trust domain, an IP another node has', () => {
    const registry = new WorkloadRegistry('cluster.local');
    registry.nodeOnline('node-2', '192.168.1.2');
    registry.register('node-2', [w('db', '10.0.0.2')]);
    const result = registry.applyShared(
      'node-1',
      share({ at: 1, replica: 'b', seq: 0 }, [w('web', '10.0.0.1'), w('db', '10.0.0.2'), { ...w('x', '10.0.0.3'), namespace: 'kube-system' }, { ...w('y', '10.0.0.4'), identity: 'spiffe://evil/ns/default/sa/y' }]),
      (x) => (x.namespace === 'kube-system' ? 'outside the scope' : undefined),
    );
    assert.equal(result.accepted, 1);
    assert.equal(result.refused.length, 3, result.refused.join('; '));
    assert.deepEqual(registry.snapshot().workloads.map((x) => `${x.node} ${x.ip}`), ['node-1 10.0.0.1', 'node-2 10.0.0.2']);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', 'x', /spec: must be an object/],
    ['no stamp', { ...share({ at: 1, replica: 'a', seq: 0 }, []), stamp: undefined }, /spec.stamp/],
    ['a negative seq', share({ at: 1, replica: 'a', seq: -1 }, []), /spec.stamp/],
    ['a node address that is not IPv4', { ...share({ at: 1, replica: 'a', seq: 0 }, []), nodeAddress: 'node-1' }, /nodeAddress/],
    ['a workload without an IP', share({ at: 1, replica: 'a', seq: 0 }, [{ ...w('web', '10.0.0.1'), ip: 'nope' }]), /workloads\[0\]/],
    ['services not a list', { ...share({ at: 1, replica: 'a', seq: 0 }, []), services: {} }, /services/],
  ];
  for (const [name, spec, want] of bad) {
    it(`refuses a share: ${name}`, () => {
      const got = checkRegistration(spec);
      assert.equal(typeof got, 'string');
      assert.match(got as string, want);
    });
  }

  it('accepts what a replica writes', () => {
    const registry = new WorkloadRegistry('cluster.local');
    registry.nodeOnline('node-1', '192.168.1.1');
    registry.register('node-1', [w('web', '10.0.0.1')]);
    const written = JSON.parse(JSON.stringify(registry.shared('node-1'))) as unknown;
    assert.deepEqual(checkRegistration(written), written);
  });
});
