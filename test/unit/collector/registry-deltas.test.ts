/**
 * Incremental registry distribution, property-tested: random sequences of registry changes
 * (nodes coming online at new addresses, going offline, revoked; registrations that add,
 * relabel, move and drop workloads and declare services, some refused; the Kubernetes Services
 * changing, appearing, going and handing virtual IPs over — each a set-service/remove-service) drive the collector's WorkloadRegistry, and
 * its `registry-delta` frames — parsed at the boundary as an agent parses them — go to agents:
 * one that applies every delta, one that misses deltas at random and catches up from where it
 * stands (registry-sync / hello `since`: the log's deltas, or a snapshot when the log no longer
 * reaches back), and one that joins late with a snapshot. Each must end with exactly the state
 * of a fresh snapshot.
 */
import { strict as assert } from 'node:assert';
import { MeshRegistry } from '../../../agent/mesh/mesh-registry';
import {
  encodeMessage,
  MAX_COLLECTOR_FRAME_BYTES,
  MAX_DELTA_CHANGES,
  NODE_REPLIES,
  parseMessage,
  type RegistryChange,
  type RegistryPosition,
  type RegistryService,
  type WorkloadRegistration,
} from '../../../common/mesh-protocol';
import { WorkloadRegistry } from '../../../collector/registry';
import { MERGE_BYTES } from '../../../collector/registry-log';
import { Rng } from '../../harness/random';
import { DECLARED, deliver, FIXED_NOW, step } from './registry-steps';

const EVERY_VIP_PORT: Array<[string, number]> = [
  ...DECLARED.flatMap((d) => d.vips.flatMap((v) => d.ports.map((p): [string, number] => [v, p.port]))),
  ...['10.96.0.1', '10.96.0.12', '10.96.0.50', '10.96.0.53', '10.96.0.20'].flatMap((v) => [443, 80, 8443, 53].map((p): [string, number] => [v, p])),
];

/** The changes of the registry-delta frames among `frames`. */
function changesOf(frames: string[]): RegistryChange[] {
  return frames.map((f) => parseMessage(f, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES)).flatMap((m) => (m.type === 'registry-delta' ? m.changes : []));
}

describe('registry deltas', () => {
  for (const [logEntries, snapshotReuseBytes, label] of [
    [4096, undefined, 'a log that reaches back'],
    [3, undefined, 'a short log (catching up often needs a snapshot)'],
    [4096, 0, 'an older snapshot reused, then the deltas after it'],
    [3, 0, 'a short log and older snapshots reused'],
  ] as const) {
    it(`agents that apply deltas, miss some or join late all hold a fresh snapshot's state (${label})`, () => {
      let servicesPushed = 0;
      let servicesSeen = 0;
      let reusedSnapshots = 0;
      let mergedDeltas = 0;
      for (let seed = 1; seed <= 60; seed++) {
        const rng = new Rng(seed * 7919 + logEntries);
        const frames: string[] = [];
        const registry = new WorkloadRegistry('cluster.local', (_delta, frame) => frames.push(frame), () => FIXED_NOW, { maxEntries: logEntries, snapshotReuseBytes });
        /** What an agent at `since` is sent (registry.nextFrame until current), counting snapshots older than the registry. */
        const catchUp = (since: RegistryPosition | undefined): string[] => {
          const out = registry.catchUp(since);
          const parsed = out.map((f) => parseMessage(f, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES));
          if (parsed[0]?.type === 'registry' && parsed[0].version < registry.version) reusedSnapshots += 1;
          mergedDeltas += parsed.filter((m) => m.type === 'registry-delta' && m.toVersion - m.fromVersion > 1).length;
          return out;
        };
        const online = new Set<string>();
        const every = new MeshRegistry();
        const lossy = new MeshRegistry();
        let late: MeshRegistry | undefined;
        const joiners: MeshRegistry[] = [];
        deliver(every, registry.catchUp(undefined)[0]!);
        deliver(lossy, registry.catchUp(undefined)[0]!);
        let delivered = 0;
        let caughtUp = 0;
        for (let i = 0; i < 80; i++) {
          step(rng, registry, online);
          servicesPushed += changesOf(frames).filter((c) => c.op === 'set-service' || c.op === 'remove-service').length;
          for (const frame of frames.splice(0)) {
            assert.ok(deliver(every, frame), `seed ${seed}: a delta in order applies`);
            if (late) assert.ok(deliver(late, frame), `seed ${seed}: a delta after the snapshot applies`);
            for (const j of joiners) assert.ok(deliver(j, frame), `seed ${seed}: a delta after joining applies`);
            if (rng.chance(0.25)) continue; // lost: the next one will not follow
            if (deliver(lossy, frame)) delivered += 1;
            else {
              // what the agent does: ask from where it stands (registry-sync)
              for (const f of catchUp(lossy.position())) assert.ok(deliver(lossy, f), `seed ${seed}: every catch-up frame applies`);
              caughtUp += 1;
            }
          }
          if (i % 5 === 0) {
            // a new agent: what it is sent now, then every delta pushed
            const j = new MeshRegistry();
            for (const f of catchUp(undefined)) assert.ok(deliver(j, f), `seed ${seed}: every frame of a join applies`);
            joiners.push(j);
          }
          if (i === 40) {
            late = new MeshRegistry();
            for (const f of catchUp(undefined)) assert.ok(deliver(late, f), `seed ${seed}: every frame of a late join applies`);
          }
        }
        // whatever the lossy agent still misses at the end comes on its next sync
        for (const f of catchUp(lossy.position())) deliver(lossy, f);
        const fresh = new MeshRegistry();
        deliver(fresh, encodeMessage({ type: 'registry', ...registry.snapshot() }));
        assert.deepEqual(fresh.snapshot(), registry.snapshot(), `seed ${seed}: a snapshot is the collector's state`);
        const joined = new MeshRegistry();
        for (const f of catchUp(undefined)) deliver(joined, f);
        assert.deepEqual(joined.snapshot(), fresh.snapshot(), `seed ${seed}: what a new agent is sent`);
        assert.deepEqual(every.snapshot(), fresh.snapshot(), `seed ${seed}: all deltas applied`);
        assert.deepEqual(lossy.snapshot(), fresh.snapshot(), `seed ${seed}: missed deltas caught up (${delivered} applied, ${caughtUp} catch-ups)`);
        assert.deepEqual(late!.snapshot(), fresh.snapshot(), `seed ${seed}: a late snapshot then deltas`);
        for (const j of joiners) assert.deepEqual(j.snapshot(), fresh.snapshot(), `seed ${seed}: joined, then deltas`);
        assert.deepEqual([...every.nodeAddresses()].sort(), [...new Set(fresh.snapshot().workloads.map((w) => w.nodeAddress))].sort(), `seed ${seed}: node addresses`);
        // every address any service ever had: a service gone or moved leaves nothing behind
        for (const [vip, port] of EVERY_VIP_PORT) {
          for (const agent of [every, lossy, late!]) assert.deepEqual(agent.byVip(vip, port), fresh.byVip(vip, port), `seed ${seed}: ${vip}:${port}`);
        }
        servicesSeen += fresh.services().length;
      }
      if (logEntries > 3) assert.ok(mergedDeltas > 20, `deltas were merged for agents behind (${mergedDeltas})`);
      if (snapshotReuseBytes === 0) assert.ok(reusedSnapshots > 5, `older snapshots were sent (${reusedSnapshots})`);
      else assert.equal(reusedSnapshots, 0, 'below the reuse size, every snapshot is current');
      assert.ok(servicesPushed > 100, `the sequences changed the services (${servicesPushed} set-service/remove-service)`);
      assert.ok(servicesSeen > 60, `and ended with some (${servicesSeen} over 60 seeds)`);
    });
  }

  it('a reconnecting agent gets only the deltas it missed; a registry of another epoch or out of the log gets a snapshot', () => {
    const frames: string[] = [];
    const registry = new WorkloadRegistry('cluster.local', (_d, f) => frames.push(f), () => FIXED_NOW, { maxEntries: 4 });
    registry.nodeOnline('node-a', '192.168.0.1');
    const agent = new MeshRegistry();
    deliver(agent, registry.catchUp(undefined)[0]!);
    const at = agent.position()!;
    registry.register('node-a', [{ name: 'web', namespace: 'default', serviceAccount: 'web', ip: '10.1.0.1', labels: {} }]);
    registry.nodeOnline('node-b', '192.168.0.2');
    const missed = registry.catchUp(at);
    const pushed = frames.slice(-2).map((f) => JSON.parse(f) as { changes: unknown[]; fromVersion: number; toVersion: number });
    assert.equal(missed.length, 1, 'the deltas it missed, merged into one frame');
    assert.deepEqual(
      JSON.parse(missed[0]!),
      { type: 'registry-delta', epoch: registry.epoch, fromVersion: at.version, toVersion: registry.version, changes: pushed.flatMap((d) => d.changes) },
      'the changes every agent was pushed, in order, nothing else',
    );
    assert.equal(registry.catchUp({ ...at, version: at.version + 1 })[0], frames.at(-1), 'one delta missed: the frame every agent was pushed');
    assert.deepEqual(registry.catchUp(registry.position()), [], 'a current agent needs nothing');
    assert.equal(JSON.parse(registry.catchUp({ epoch: 'another-collector', version: at.version })[0]!).type, 'registry', 'another epoch: a snapshot');
    assert.equal(JSON.parse(registry.catchUp({ ...at, version: at.version + 99 })[0]!).type, 'registry', 'ahead of us: a snapshot');
    for (let i = 0; i < 6; i++) registry.nodeOnline('node-c', `192.168.0.${3 + (i % 2)}`);
    assert.equal(JSON.parse(registry.catchUp(at)[0]!).type, 'registry', 'older than the log: a snapshot');
  });

  it('a service travels as set-service when, and only when, it changes; remove-service when it goes', () => {
    const frames: string[] = [];
    const registry = new WorkloadRegistry('cluster.local', (_d, f) => frames.push(f), () => FIXED_NOW);
    const web = DECLARED[0]!;
    const pod = (ip: string, app: string): WorkloadRegistration => ({ name: `${app}-${ip.split('.')[3]}`, namespace: 'default', serviceAccount: 'web', ip, labels: { app } });
    registry.nodeOnline('node-a', '192.168.0.1');
    registry.nodeOnline('node-b', '192.168.0.2');
    const agent = new MeshRegistry();
    deliver(agent, registry.catchUp(undefined)[0]!);
    frames.length = 0;
    /** The ops of each delta pushed since the last call, one list per delta. */
    const ops = (): string[][] => frames.splice(0).map((f) => changesOf([f]).map((c) => c.op));
    const apply = (): void => {
      for (const f of frames) assert.ok(deliver(agent, f));
    };

    registry.register('node-a', [pod('10.1.0.1', 'web')], [web]);
    apply();
    assert.deepEqual(ops(), [['set-workload', 'set-service']], 'a declared service with its endpoint: one delta');
    assert.deepEqual(agent.byVip('10.96.0.10', 80)?.endpoints, [{ ip: '10.1.0.1', port: 8080 }]);

    registry.register('node-b', [pod('10.1.0.2', 'db')]);
    apply();
    assert.deepEqual(ops(), [['set-workload']], 'a workload no service selects: no set-service');

    registry.register('node-b', [pod('10.1.0.2', 'db'), pod('10.1.0.3', 'web')]);
    apply();
    assert.deepEqual(ops(), [['set-workload', 'set-service']], "another node's workload joins the endpoints");
    assert.deepEqual(agent.byVip('10.96.0.10', 80)?.endpoints, [{ ip: '10.1.0.1', port: 8080 }, { ip: '10.1.0.3', port: 8080 }]);

    registry.nodeOffline('node-b');
    apply();
    assert.deepEqual(ops(), [['set-node', 'set-service']], 'its node offline: that endpoint is no longer ready');
    assert.deepEqual(agent.byVip('10.96.0.10', 80)?.endpoints, [{ ip: '10.1.0.1', port: 8080 }]);

    const kube: RegistryService = { namespace: 'default', name: 'kubernetes', vips: ['10.96.0.1'], ports: [{ name: 'https', port: 443 }], endpoints: [{ ip: '10.2.0.1', ready: true, targetPorts: [6443] }] };
    registry.setKubernetesServices([kube]);
    apply();
    assert.deepEqual(ops(), [['set-service']], 'a Kubernetes Service alone: a delta of that service');
    assert.deepEqual(agent.byVip('10.96.0.1', 443)?.endpoints, [{ ip: '10.2.0.1', port: 6443 }]);
    const version = registry.version;
    registry.setKubernetesServices([kube]);
    assert.equal(registry.version, version, 'the same Services again: no delta');

    const result = registry.register('node-b', [pod('10.1.0.2', 'db'), pod('10.1.0.3', 'web')], [DECLARED[1]!]);
    assert.deepEqual(result.refused, ['service default/web: declared differently by node node-a']);
    assert.equal(registry.version, version, 'a refused declaration changes nothing an agent holds: no delta');

    registry.setKubernetesServices([]);
    apply();
    assert.deepEqual(ops(), [['remove-service']]);
    assert.equal(agent.byVip('10.96.0.1', 443), undefined, 'a Service gone is gone from the agent');
    assert.deepEqual(agent.snapshot(), registry.snapshot());
  });

  it('a delta that does not follow the agent is not applied and changes nothing', () => {
    const frames: string[] = [];
    const registry = new WorkloadRegistry('cluster.local', (_d, f) => frames.push(f), () => FIXED_NOW);
    registry.nodeOnline('node-a', '192.168.0.1');
    const agent = new MeshRegistry();
    deliver(agent, registry.catchUp(undefined)[0]!);
    const before = agent.snapshot();
    registry.register('node-a', [{ name: 'web', namespace: 'default', serviceAccount: 'web', ip: '10.1.0.1', labels: {} }]);
    registry.register('node-a', [{ name: 'api', namespace: 'default', serviceAccount: 'web', ip: '10.1.0.2', labels: {} }]);
    assert.equal(deliver(agent, frames[frames.length - 1]!), false, 'skips a version');
    assert.deepEqual(agent.snapshot(), before);
  });

  it('one EndpointSlice change at 1,000 Services costs one small delta, not the services list', () => {
    const frames: string[] = [];
    const registry = new WorkloadRegistry('cluster.local', (_d, f) => frames.push(f), () => FIXED_NOW);
    const service = (i: number, endpoints: number): RegistryService => ({
      namespace: `team-${i % 20}`,
      name: `svc-${i}`,
      vips: [`10.96.${i >> 8}.${i & 255}`],
      ports: [{ name: 'http', port: 80 }],
      endpoints: Array.from({ length: endpoints }, (_, k) => ({ ip: `10.${1 + (i >> 8)}.${i & 255}.${k + 1}`, ready: true, targetPorts: [8080] })),
    });
    const services = Array.from({ length: 1000 }, (_, i) => service(i, 3));
    registry.setKubernetesServices(services);
    frames.length = 0;
    const changed = [...services];
    changed[500] = service(500, 4); // one more ready endpoint in one slice
    registry.setKubernetesServices(changed);
    assert.equal(frames.length, 1);
    const ops = changesOf(frames).map((c) => c.op);
    console.log(`      one EndpointSlice change at 1,000 Services: ${frames[0]!.length} bytes per agent`);
    assert.deepEqual(ops, ['set-service'], 'only the changed service travels');
    assert.ok(frames[0]!.length < 600, `delta of ${frames[0]!.length} bytes`);
    changed.splice(500, 1);
    registry.setKubernetesServices(changed);
    assert.deepEqual(changesOf(frames.slice(1)), [{ op: 'remove-service', namespace: 'team-0', name: 'svc-500' }], 'a Service gone: its name only');
  });

  it('an agent far behind catches up in merged deltas of at most MERGE_BYTES (plus one delta) and MAX_DELTA_CHANGES each, and ends exact', () => {
    const registry = new WorkloadRegistry('cluster.local', () => undefined, () => FIXED_NOW);
    const agent = new MeshRegistry();
    deliver(agent, registry.catchUp(undefined)[0]!);
    for (let n = 0; n < 60; n++) {
      registry.nodeOnline(`node-${n}`, `192.168.1.${n + 1}`);
      registry.register(`node-${n}`, Array.from({ length: 100 }, (_, k) => ({ name: `pod-${k}`, namespace: 'default', serviceAccount: 'web', ip: `10.${1 + n}.0.${k + 1}`, labels: { app: 'web' } })));
    }
    const frames = registry.catchUp(agent.position());
    assert.ok(frames.length > 2 && frames.length < 20, `${frames.length} frames for 120 deltas`);
    for (const f of frames) {
      const m = parseMessage(f, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES);
      assert.equal(m.type, 'registry-delta');
      assert.ok(Buffer.byteLength(f) <= MERGE_BYTES + 30_000, `a merged delta of ${Buffer.byteLength(f)} bytes`);
      assert.ok(m.type === 'registry-delta' && m.changes.length <= MAX_DELTA_CHANGES);
      assert.ok(deliver(agent, f), 'each follows the one before');
    }
    const fresh = new MeshRegistry();
    fresh.replace(registry.snapshot());
    assert.deepEqual(agent.snapshot(), fresh.snapshot(), 'the state of a fresh snapshot');
  });

  it('up to a published version: agents at one position get the same bytes, nothing past it; 20 s of a 1,000 pods/s churn behind still catches up in deltas', () => {
    const registry = new WorkloadRegistry('cluster.local', () => undefined, () => FIXED_NOW);
    const pod = (n: number, k: number, i: number): WorkloadRegistration => ({ name: `pod-${k}-${i}`, namespace: 'default', serviceAccount: 'web', ip: `10.${1 + n}.${k}.${i % 250}`, labels: { app: 'web' } });
    const nodes = Array.from({ length: 10 }, (_, n) => Array.from({ length: 10 }, (_, k) => pod(n, k, 0)));
    nodes.forEach((list, n) => {
      registry.nodeOnline(`node-${n}`, `192.168.1.${n + 1}`);
      registry.register(`node-${n}`, list);
    });
    const at = registry.position();
    const behind = new MeshRegistry();
    behind.replace(registry.snapshot());
    // a churn of 1,000 pod changes/s for 20 s, one pod replaced per registration (the default log keeps it)
    for (let i = 1; i <= 20_000; i++) {
      const n = i % 10;
      const k = Math.floor(i / 10) % 10;
      nodes[n]![k] = pod(n, k, i);
      registry.register(`node-${n}`, nodes[n]!);
    }
    const published = at.version + 40;
    const a = registry.nextFrame(at, published)!;
    const b = registry.nextFrame(at, published)!;
    assert.equal(a.frame, b.frame, 'the same merged frame object for both sessions (encoded once)');
    assert.ok(Buffer.isBuffer(a.frame.bytes), 'as bytes, encoded to UTF-8 once');
    assert.equal(a.to.version, published, 'merged up to the published version, not past it');
    assert.equal(registry.nextFrame(a.to, published), undefined, 'an agent at the published version waits for the next publication');
    let to: RegistryPosition | undefined = at;
    let frames = 0;
    for (let next = registry.nextFrame(to); next; to = next.to, next = registry.nextFrame(to)) {
      assert.equal(parseMessage(next.frame.toString(), NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES).type, 'registry-delta', 'deltas, no snapshot');
      assert.ok(deliver(behind, next.frame.toString()));
      frames += 1;
    }
    const fresh = new MeshRegistry();
    fresh.replace(registry.snapshot());
    assert.deepEqual(behind.snapshot(), fresh.snapshot(), 'the state of a fresh snapshot');
    assert.ok(frames < 200, `${frames} merged frames for 20,000 deltas`);
  });

  it('between two publications the deltas are one chunk shared by every agent at the first; an agent between them is taken to the next, then shares the chunks', () => {
    const registry = new WorkloadRegistry('cluster.local', () => undefined, () => FIXED_NOW);
    const pod = (n: number, i: number): WorkloadRegistration => ({ name: `pod-${i}`, namespace: 'default', serviceAccount: 'web', ip: `10.${1 + n}.0.${i}`, labels: { app: 'web' } });
    const lists: WorkloadRegistration[][] = [[], [], []];
    const change = (i: number): void => {
      const n = i % 3;
      lists[n] = [...lists[n]!, pod(n, Math.floor(i / 3) + 1)];
      registry.register(`node-${n}`, lists[n]!);
    };
    for (let n = 0; n < 3; n++) registry.nodeOnline(`node-${n}`, `192.168.1.${n + 1}`);
    registry.publish();
    const p0 = registry.version;
    const states = new Map([[p0, registry.snapshot()]]);
    for (let i = 0; i < 30; i++) {
      change(i);
      states.set(registry.version, registry.snapshot());
    }
    registry.publish();
    const p1 = registry.version;
    for (let i = 30; i < 60; i++) change(i);
    registry.publish();
    const p2 = registry.version;
    const epoch = registry.epoch;
    const a = registry.nextFrame({ epoch, version: p0 }, p2)!;
    const b = registry.nextFrame({ epoch, version: p0 }, p2)!;
    assert.equal(a.to.version, p1, 'from a publication to the next');
    assert.equal(a.frame, b.frame, 'one frame for every agent there');
    const between = registry.nextFrame({ epoch, version: p0 + 7 }, p2)!;
    assert.equal(between.to.version, p1, 'an agent between two publications is taken to the next');
    const after = registry.nextFrame(between.to, p2)!;
    assert.equal(after.frame, registry.nextFrame(a.to, p2)!.frame, 'then gets the same chunk as everyone');
    assert.equal(after.to.version, p2);
    // an agent from anywhere ends with the state of a fresh snapshot, in deltas
    const fresh = new MeshRegistry();
    fresh.replace(registry.snapshot());
    for (const start of [p0, p0 + 7, p1 - 1]) {
      const agent = new MeshRegistry();
      agent.replace(states.get(start)!);
      let at: RegistryPosition | undefined = { epoch, version: start };
      for (let next = registry.nextFrame(at, p2); next; at = next.to, next = registry.nextFrame(at, p2)) {
        assert.equal(parseMessage(next.frame.toString(), NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES).type, 'registry-delta');
        assert.ok(deliver(agent, next.frame.toString()), `from ${start}: each frame follows the one before`);
      }
      assert.equal(at!.version, p2, `from ${start}: at the last publication`);
      assert.deepEqual(agent.snapshot(), fresh.snapshot(), `from ${start}: the state of a fresh snapshot`);
    }
  });

  it('a pod change costs one small delta, whatever the size of the mesh', () => {
    const frames: string[] = [];
    const registry = new WorkloadRegistry('cluster.local', (_d, f) => frames.push(f), () => FIXED_NOW);
    const pods = (n: number, i: number): WorkloadRegistration[] =>
      Array.from({ length: 100 }, (_, k) => ({ name: `pod-${k}-${i}`, namespace: 'default', serviceAccount: 'web', ip: `10.${1 + n}.${k}.${i % 200}`, labels: { app: 'web' } }));
    for (let n = 0; n < 50; n++) {
      registry.nodeOnline(`node-${n}`, `192.168.1.${n + 1}`);
      registry.register(`node-${n}`, pods(n, 0));
    }
    frames.length = 0;
    const changed = pods(7, 0);
    changed[3] = { ...changed[3]!, name: 'pod-3-new', ip: '10.8.3.250' };
    registry.register('node-7', changed);
    assert.equal(frames.length, 1);
    const delta = JSON.parse(frames[0]!) as { changes: unknown[] };
    assert.equal(delta.changes.length, 2, 'one removal, one addition');
    const snapshotBytes = registry.catchUp(undefined)[0]!.length;
    assert.ok(frames[0]!.length < 600, `delta of ${frames[0]!.length} bytes`);
    assert.ok(snapshotBytes > 1_000_000, `vs a snapshot of ${snapshotBytes} bytes`);
  });
});
