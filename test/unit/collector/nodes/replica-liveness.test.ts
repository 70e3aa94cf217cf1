/**
 * Replica liveness (collector/nodes/replica-liveness.ts, WorkloadRegistry.markOffline): which
 * replicas the observer judges dead from their Leases on its own clock, which shared nodes go
 * offline, and that only a newer share brings one back — table-driven, and property-tested: a
 * replica renewing within its duration is never judged dead whatever the clocks say, and one that
 * stops is judged dead within its duration of its last renewal seen.
 */
import { strict as assert } from 'node:assert';
import { leasesToCollect, noteHolders, observeLease, offlineNodes, replicaDead, replicaRows, type HeldNode, type Judgement, type ReplicaSeen } from '../../../../collector/nodes/replica-liveness';
import { newer as newerThan, type RegistrationShare, type Stamp } from '../../../../collector/nodes/registration-share';
import { WorkloadRegistry } from '../../../../collector/registry';
import { Rng } from '../../../harness/random';

const lease = (changedAt: number, durationMs = 15_000, renewTime = `t${changedAt}`) => ({ renewTime, durationMs, changedAt });
const seen = (over: Partial<ReplicaSeen> = {}): ReplicaSeen => ({ lease: undefined, deleted: false, firstSeenAt: 0, ...over });
const judge = (now: number, currentSince: number | null = 0, graceMs = 15_000): Judgement => ({ now, currentSince: currentSince ?? undefined, graceMs });
const stamp = (replica: string, at = 1, seq = 0): Stamp => ({ at, replica, seq });

describe('replica liveness: judged from Leases on the observer\'s clock', () => {
  describe('observeLease', () => {
    it('a changed renewTime moves changedAt to now; the same one keeps it, whatever the renewTime says about time', () => {
      const first = observeLease(undefined, '2030-01-01T00:00:00.000000Z', 15_000, 100);
      assert.deepEqual(first, { renewTime: '2030-01-01T00:00:00.000000Z', durationMs: 15_000, changedAt: 100 }, 'a renewTime in the future is just a value');
      assert.equal(observeLease(first, '2030-01-01T00:00:00.000000Z', 15_000, 9_000), first);
      assert.equal(observeLease(first, '1999-01-01T00:00:00.000000Z', 15_000, 9_000).changedAt, 9_000, 'a renewTime going back is a change too');
      assert.deepEqual(observeLease(first, '2030-01-01T00:00:00.000000Z', 2_000, 9_000), { ...first, durationMs: 2_000 });
    });
  });

  describe('replicaDead', () => {
    const cases: Array<[string, ReplicaSeen | undefined, Judgement, boolean]> = [
      ['renewed 10 s ago, 15 s duration', seen({ lease: lease(90_000) }), judge(100_000), false],
      ['renewed exactly one duration ago', seen({ lease: lease(85_000) }), judge(100_000), false],
      ['not renewed for more than its duration', seen({ lease: lease(84_999) }), judge(100_000), true],
      ['its own short duration counts', seen({ lease: lease(97_000, 2_000) }), judge(100_000), true],
      ['observer not current: judges nobody', seen({ lease: lease(0) }), judge(100_000, null), false],
      ['observer current only since 90 s: the time before does not count', seen({ lease: lease(0) }), judge(100_000, 90_000), false],
      ['... but a full duration after it, still not renewed: dead', seen({ lease: lease(0) }), judge(105_001, 90_000), true],
      ['Lease deleted: dead at once', seen({ lease: lease(99_999), deleted: true }), judge(100_000), true],
      ['Lease deleted, observer not current: not judged', seen({ deleted: true }), judge(100_000, null), false],
      ['no Lease, seen 10 s ago: within the grace', seen({ firstSeenAt: 90_000 }), judge(100_000), false],
      ['no Lease, seen 20 s ago: dead', seen({ firstSeenAt: 80_000 }), judge(100_000), true],
      ['no Lease, the observer just started (current since 95 s)', seen({ firstSeenAt: 0 }), judge(100_000, 95_000), false],
      ['never seen at all', undefined, judge(100_000), false],
    ];
    for (const [what, s, j, dead] of cases) it(`${what}: ${dead ? 'dead' : 'alive'}`, () => assert.equal(replicaDead(s, j), dead));
  });

  describe('offlineNodes', () => {
    const held: HeldNode[] = [
      { node: 'n1', stamp: stamp('a'), online: true },
      { node: 'n2', stamp: stamp('a'), online: false },
      { node: 'n3', stamp: stamp('b'), online: true },
      { node: 'n4', stamp: stamp('self'), online: true },
      { node: 'n5', stamp: stamp('c'), online: true },
    ];
    const replicas = new Map<string, ReplicaSeen>([
      ['a', seen({ lease: lease(0) })],
      ['b', seen({ lease: lease(99_000) })],
      ['self', seen({ lease: lease(0) })],
      ['c', seen({ firstSeenAt: 0 })],
    ]);
    it('the online nodes of dead replicas other than the observer', () => {
      assert.deepEqual(offlineNodes(held, replicas, 'self', judge(100_000)).map((h) => h.node), ['n1', 'n5']);
    });
    it('none while the observer is not current', () => assert.deepEqual(offlineNodes(held, replicas, 'self', judge(100_000, null)), []));
    it('a holder first seen without a Lease gets the grace from then (noteHolders)', () => {
      const noted = noteHolders(new Map(), [{ node: 'n9', stamp: stamp('z'), online: true }], 50_000);
      assert.deepEqual(noted.get('z'), seen({ firstSeenAt: 50_000 }));
      assert.equal(noteHolders(noted, [{ node: 'n9', stamp: stamp('z'), online: true }], 90_000).get('z')!.firstSeenAt, 50_000, 'first seen stays');
      assert.deepEqual(offlineNodes([{ node: 'n9', stamp: stamp('z'), online: true }], noted, 'self', judge(60_000)), []);
      assert.equal(offlineNodes([{ node: 'n9', stamp: stamp('z'), online: true }], noted, 'self', judge(65_001)).length, 1);
    });
  });

  describe('replicaRows (palisade status)', () => {
    const held: HeldNode[] = [
      { node: 'n1', stamp: stamp('a'), online: true },
      { node: 'n2', stamp: stamp('a'), online: false },
      { node: 'n3', stamp: stamp('c'), online: false },
      { node: 'n4', stamp: stamp('e'), online: true },
    ];
    const replicas = new Map<string, ReplicaSeen>([
      ['self', seen({ lease: lease(99_000) })],
      ['b', seen({ lease: lease(99_000, 2_000) })],
      ['a', seen({ lease: lease(0) })],
      ['c', seen({ lease: lease(98_000), deleted: true })],
      ['d', seen({ deleted: true })],
    ]);
    const me = { replica: 'self', renewedAt: 95_000, durationMs: 15_000, nodes: 7 };
    const brief = (j: Judgement): string[] => replicaRows(replicas, held, me, j).map((r) => `${r.replica} ${r.judgement} ${r.lease} ${r.renewedAgoMs ?? '-'}/${r.durationMs ?? '-'} ${r.nodes}/${r.offline}${r.why ? ` (${r.why})` : ''}`);
    it('the observer first, then every replica known by its Lease or by the nodes it holds, by id, as judged now', () => {
      assert.deepEqual(brief(judge(100_000)), [
        'self self held 5000/15000 7/0',
        'a dead held 100000/15000 2/1 (its Lease was not renewed within its duration)',
        'b alive held 1000/2000 0/0',
        'c dead deleted 2000/15000 1/1 (its Lease was deleted)',
        'd dead deleted -/- 0/0 (its Lease was deleted)',
        'e alive none -/- 1/0',
      ]);
    });
    it('a holder without a Lease past the grace: dead, saying so', () => {
      const withE = new Map(replicas).set('e', seen({ firstSeenAt: 0 }));
      const e = replicaRows(withE, held, me, judge(100_000)).find((r) => r.replica === 'e')!;
      assert.deepEqual([e.judgement, e.why], ['dead', 'it holds nodes without a Lease']);
    });
    it('the observer before its first renewal: no Lease of its own yet', () => {
      const own = replicaRows(replicas, held, { ...me, renewedAt: undefined }, judge(100_000, null))[0]!;
      assert.deepEqual([own.lease, own.renewedAgoMs, own.judgement], ['none', undefined, 'self']);
    });
    it('while the observer is not current: nobody judged, and its own row says why', () => {
      const rows = replicaRows(replicas, held, me, judge(100_000, null));
      assert.deepEqual(rows.map((r) => r.judgement), ['self', 'not judged', 'not judged', 'not judged', 'not judged', 'not judged']);
      assert.match(rows[0]!.why ?? '', /judges nobody/);
    });
  });

  it('leasesToCollect: Leases dead for longer than the given time past their duration, never the observer\'s own', () => {
    const replicas = new Map<string, ReplicaSeen>([
      ['old', seen({ lease: lease(0) })],
      ['recent', seen({ lease: lease(3_000_000) })],
      ['self', seen({ lease: lease(0) })],
      ['gone', seen({ lease: lease(0), deleted: true })],
    ]);
    assert.deepEqual(leasesToCollect(replicas, 'self', judge(3_700_000), 3_600_000), ['old']);
    assert.deepEqual(leasesToCollect(replicas, 'self', judge(3_700_000, null), 3_600_000), []);
  });

  it('property: a replica renewing every third of its duration is never judged dead; one that stops is, within its duration of its last renewal seen (300 runs)', () => {
    const rng = new Rng(2026);
    for (let run = 0; run < 300; run++) {
      const durationMs = 1_000 + rng.int(20_000);
      // Its clock is anywhere (renewTime is its own); the observer's watch delivers each renewal 0–200 ms late.
      const skew = rng.int(2) === 0 ? -rng.int(1e9) : rng.int(1e9);
      const currentSince = rng.int(5_000);
      const stopAt = currentSince + rng.int(60_000);
      let view: ReturnType<typeof observeLease> | undefined;
      let lastSeenRenewal = 0;
      let renewAt = 0;
      let declaredDeadAt: number | undefined;
      for (let now = 0; now < stopAt + 3 * durationMs; now += 50) {
        while (renewAt <= now && renewAt < stopAt) {
          const deliveredAt = renewAt + rng.int(200);
          if (deliveredAt <= now) {
            view = observeLease(view, new Date(renewAt + skew + 1e12).toISOString(), durationMs, now);
            lastSeenRenewal = now;
            renewAt += Math.floor(durationMs / 3);
          } else break;
        }
        const dead = replicaDead(view ? seen({ lease: view }) : seen({ firstSeenAt: 0 }), judge(now, currentSince, durationMs));
        if (now < stopAt) assert.equal(dead, false, `run ${run}: judged dead at ${now} while renewing (duration ${durationMs})`);
        if (dead && declaredDeadAt === undefined) declaredDeadAt = now;
      }
      assert.ok(declaredDeadAt !== undefined, `run ${run}: never judged dead after stopping`);
      const from = Math.max(lastSeenRenewal, currentSince);
      assert.ok(declaredDeadAt - from <= durationMs + 50, `run ${run}: dead ${declaredDeadAt - from} ms after the last renewal seen (duration ${durationMs})`);
    }
  });

  describe('WorkloadRegistry.markOffline', () => {
    const share = (s: Stamp, online = true): RegistrationShare => ({
      stamp: s,
      nodeAddress: '192.168.1.1',
      online,
      lastSeen: '2026-12-07T12:00:00.000Z',
      workloads: [{ name: 'web', namespace: 'default', serviceAccount: 'web', ip: '10.0.0.1', labels: {} }],
      services: [],
    });

    it('offline as if the session had closed (workloads kept, one set-node delta); sticky for that stamp; a newer share brings it back', () => {
      const deltas: string[] = [];
      const registry = new WorkloadRegistry('cluster.local', (d) => deltas.push(d.changes.map((c) => c.op).join(',')));
      registry.applyShared('n1', share(stamp('a', 1, 3)), () => undefined);
      deltas.length = 0;
      assert.deepEqual(registry.heldNodes(), [{ node: 'n1', stamp: stamp('a', 1, 3), online: true }]);
      assert.equal(registry.markOffline('n1', stamp('a', 1, 2)), false, 'not the stamp the registry holds');
      assert.equal(registry.markOffline('n1', stamp('a', 1, 3)), true);
      assert.deepEqual(deltas, ['set-node']);
      assert.deepEqual([registry.snapshot().nodes[0]!.online, registry.snapshot().workloads.length], [false, 1]);
      assert.equal(registry.markOffline('n1', stamp('a', 1, 3)), false, 'already offline');
      assert.equal(registry.applyShared('n1', share(stamp('a', 1, 3)), () => undefined).applied, false, 'the same share heard again changes nothing');
      assert.equal(registry.snapshot().nodes[0]!.online, false);
      assert.equal(registry.applyShared('n1', share(stamp('a', 1, 4)), () => undefined).applied, true, 'its holder\'s newer share');
      assert.equal(registry.snapshot().nodes[0]!.online, true);
    });

    it('property: shares and marks in any order — the node is online only when the newest share says so and it was not marked at that share (200 runs)', () => {
      const rng = new Rng(77);
      const key = (t: Stamp): string => `${t.at}/${t.replica}/${t.seq}`;
      for (let run = 0; run < 200; run++) {
        const byKey = new Map<string, RegistrationShare>();
        for (let i = 0; i < 2 + rng.int(6); i++) {
          const sh = share(stamp('ab'[rng.int(2)]!, 1 + rng.int(4), rng.int(3)), rng.chance(0.7));
          byKey.set(key(sh.stamp), sh);
        }
        const shares = [...byKey.values()];
        const events = [...shares, ...shares.filter(() => rng.chance(0.3))].flatMap((sh) => (rng.chance(0.5) ? [sh, 'mark' as const] : [sh]));
        events.sort(() => rng.next() / 0x1_0000_0000 - 0.5);
        const registry = new WorkloadRegistry('cluster.local');
        let newest: RegistrationShare | undefined;
        const marked = new Set<string>();
        for (const e of events) {
          if (e === 'mark') {
            const held = registry.heldNodes()[0];
            if (held && registry.markOffline(held.node, held.stamp)) marked.add(key(held.stamp));
            continue;
          }
          registry.applyShared('n1', e, () => undefined);
          if (!newest || key(newest.stamp) !== key(e.stamp)) newest = newest && !newerThan(e.stamp, newest.stamp) ? newest : e;
        }
        const expected = newest!.online && !marked.has(key(newest!.stamp));
        assert.equal(registry.snapshot().nodes[0]!.online, expected, `run ${run}`);
      }
    });

    it('never marks a node our own session holds; republishLocal gives each of ours a newer stamp', () => {
      const registry = new WorkloadRegistry('cluster.local');
      const published: string[] = [];
      registry.onLocalChange((n) => published.push(n));
      registry.nodeOnline('n2', '192.168.1.2');
      const before = registry.shared('n2')!.stamp;
      assert.equal(registry.markOffline('n2', before), false);
      assert.deepEqual(registry.heldNodes(), []);
      published.length = 0;
      registry.republishLocal();
      assert.deepEqual(published, ['n2']);
      assert.equal(registry.shared('n2')!.stamp.seq, before.seq + 1);
    });
  });
});
