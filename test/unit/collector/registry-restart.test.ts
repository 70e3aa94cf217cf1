/**
 * The registry across a collector restart (collector/registry-state.ts): random change sequences
 * with restarts in between — some from the newest state, some from an older one (a crash lost the
 * changes after the last write) — and agents at every kind of position reconnecting with what they
 * hold; each ends with exactly the state a fresh snapshot gives. A damaged or foreign state file is
 * one warning and a fresh epoch.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { MeshRegistry } from '../../../agent/mesh/mesh-registry';
import { createRootLogger } from '../../../common/log';
import { encodeMessage, MAX_COLLECTOR_FRAME_BYTES, NODE_REPLIES, parseMessage, type WorkloadRegistration } from '../../../common/mesh-protocol';
import { WorkloadRegistry } from '../../../collector/registry';
import { encodeRegistryState, parseRegistryState, REGISTRY_STATE_FILE, RegistryStateWriter, restoreRegistry } from '../../../collector/registry-state';
import { Rng } from '../../harness/random';
import { deliver, step } from './registry-steps';

const TRUST = 'cluster.local';
const FIXED_NOW = new Date('2026-12-07T05:00:00.000Z');

/** The state file a write would hold now (`final`: at stop, the registry frozen), and what the registry is told once it is on disk. */
function persist(registry: WorkloadRegistry, final = false): string {
  if (final) registry.freeze();
  const { state, reserved, text } = encodeRegistryState(registry, final);
  registry.noteDurable(state.epoch, reserved);
  return text;
}

/** A collector process started from `text`: restored, its new reservation written before any change. */
function restart(text: string, frames: string[]): WorkloadRegistry {
  const next = new WorkloadRegistry(TRUST, (_d, frame) => frames.push(frame), () => FIXED_NOW);
  const state = parseRegistryState(text, TRUST);
  assert.ok(typeof state !== 'string', `the state file parses: ${String(state)}`);
  next.restore(state);
  persist(next);
  return next;
}

function capture(): { lines: string[]; log: ReturnType<typeof createRootLogger> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
      done();
    },
  });
  return { lines, log: createRootLogger({ level: 'info', destination }) };
}

describe('registry across a collector restart', () => {
  it('agents at any position that reconnect after restarts (from the newest or an older state) end with a fresh snapshot\'s state', () => {
    let nothingSent = 0;
    let deltasOnly = 0;
    let snapshots = 0;
    for (let seed = 1; seed <= 80; seed++) {
      const rng = new Rng(seed * 104729);
      const frames: string[] = [];
      let registry = new WorkloadRegistry(TRUST, (_d, frame) => frames.push(frame), () => FIXED_NOW);
      const online = new Set<string>();
      const agents = [new MeshRegistry(), new MeshRegistry(), new MeshRegistry()];
      // an agent cut off across each restart: it holds every frame the old process sent (some past
      // the state written before a crash) and reconnects only after the new one has moved on
      const away = new MeshRegistry();
      let isAway = false;
      for (const a of [...agents, away]) for (const f of registry.catchUp(undefined)) deliver(a, f);
      let saved = persist(registry);
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 25; i++) {
          step(rng, registry, online);
          if (rng.chance(0.2)) saved = persist(registry);
          if (isAway && i === 20) {
            for (const f of registry.catchUp(away.position())) assert.ok(deliver(away, f), `seed ${seed}: the agent that was away catches up`);
            isAway = false;
          }
          for (const frame of frames.splice(0)) {
            if (!isAway) deliver(away, frame);
            // agent 0 gets everything, agent 1 most, agent 2 only now and then (it falls behind)
            deliver(agents[0]!, frame);
            if (rng.chance(0.8)) deliver(agents[1]!, frame);
            if (rng.chance(0.2)) deliver(agents[2]!, frame);
          }
        }
        // a clean stop writes the newest state and sends nothing after; a crash leaves the last write
        if (rng.chance(0.5)) saved = persist(registry, true);
        const before = registry.epoch;
        registry = restart(saved, frames);
        isAway = true;
        assert.equal(registry.epoch, before, `seed ${seed}: the epoch survives the restart`);
        frames.length = 0;
        // the agents come back: what they miss since where they stand, then their nodes' hellos (online again) as deltas
        for (const a of agents) {
          const sent = registry.catchUp(a.position());
          if (sent.length === 0) nothingSent += 1;
          else if (sent.every((f) => f.startsWith('{"type":"registry-delta"'))) deltasOnly += 1;
          else snapshots += 1;
          for (const f of sent) assert.ok(deliver(a, f), `seed ${seed}: every frame after a restart applies`);
        }
        for (const node of [...online]) {
          if (rng.chance(0.7)) registry.nodeOnline(node, registry.snapshot().nodes.find((n) => n.node === node)?.nodeAddress ?? '192.168.0.1');
          else online.delete(node); // its agent is not back (yet): it registers nothing
        }
        if (rng.chance(0.3)) registry.expireRestored();
        for (const frame of frames.splice(0)) for (const a of agents) assert.ok(deliver(a, frame), `seed ${seed}: a delta after the restart applies`);
      }
      for (const a of [...agents, away]) for (const f of registry.catchUp(a.position())) deliver(a, f);
      const fresh = new MeshRegistry();
      deliver(fresh, encodeMessage({ type: 'registry', ...registry.snapshot() }));
      for (const [k, a] of [...agents, away].entries()) assert.deepEqual(a.snapshot(), fresh.snapshot(), `seed ${seed}: agent ${k} holds the collector's state`);
    }
    assert.ok(nothingSent > 50, `agents current at the restart were sent nothing (${nothingSent})`);
    assert.ok(deltasOnly > 25, `agents behind were sent deltas only (${deltasOnly})`);
    assert.ok(snapshots > 20, `agents the restarted collector cannot serve got a snapshot (${snapshots})`);
  });

  it('a restart from the newest state sends an agent that holds it nothing; each node coming back costs one small delta, a pod change one', () => {
    const frames: string[] = [];
    const registry = new WorkloadRegistry(TRUST, (_d, frame) => frames.push(frame), () => FIXED_NOW);
    const pods: WorkloadRegistration[] = Array.from({ length: 50 }, (_, i) => ({ name: `p-${i}`, namespace: 'default', serviceAccount: 'web', ip: `10.1.0.${i + 1}`, labels: { app: 'web' } }));
    registry.nodeOnline('node-a', '192.168.0.1');
    registry.register('node-a', pods);
    const agent = new MeshRegistry();
    for (const f of registry.catchUp(undefined)) deliver(agent, f);
    frames.length = 0;
    const back = restart(persist(registry, true), frames);
    assert.deepEqual(back.catchUp(agent.position()), [], 'the agent is current: nothing to send');
    back.nodeOnline('node-a', '192.168.0.1');
    back.register('node-a', pods);
    assert.equal(frames.length, 1, 'the node online again (its session\'s first frame); the same pods change nothing');
    assert.ok(frames[0]!.length < 300, `one small delta (${frames[0]!.length} B)`);
    back.register('node-a', pods.slice(1));
    assert.equal(frames.length, 2);
    assert.ok(frames[1]!.length < 200, `one small delta (${frames[1]!.length} B)`);
    for (const f of frames) assert.ok(deliver(agent, f));
    assert.deepEqual(agent.snapshot(), back.snapshot());
  });

  it('nodes restored online whose agents do not come back go offline in one delta after the grace', () => {
    const frames: string[] = [];
    const registry = new WorkloadRegistry(TRUST, (_d, frame) => frames.push(frame), () => FIXED_NOW);
    for (const n of ['node-a', 'node-b', 'node-c']) registry.nodeOnline(n, `192.168.0.${n.charCodeAt(5) - 96}`);
    frames.length = 0;
    const back = restart(persist(registry), frames);
    back.nodeOnline('node-b', '192.168.0.2');
    frames.length = 0;
    assert.deepEqual(back.expireRestored(), ['node-a', 'node-c']);
    assert.equal(frames.length, 1, 'one delta');
    assert.deepEqual(back.snapshot().nodes.map((n) => [n.node, n.online]), [['node-a', false], ['node-b', true], ['node-c', false]]);
    assert.deepEqual(back.expireRestored(), [], 'once');
  });

  it('a state file that stopped reserving ahead (writes stalled) moves the registry to a new epoch: agents get a snapshot, never a wrong delta', () => {
    const registry = new WorkloadRegistry(TRUST, () => undefined, () => FIXED_NOW);
    registry.nodeOnline('node-a', '192.168.0.1');
    const agent = new MeshRegistry();
    for (const f of registry.catchUp(undefined)) deliver(agent, f);
    const epoch = registry.epoch;
    registry.noteDurable(epoch, registry.version + 1); // what the file on disk lets it send
    registry.register('node-a', [{ name: 'a', namespace: 'default', serviceAccount: 'web', ip: '10.1.0.1', labels: {} }]);
    assert.equal(registry.epoch, epoch, 'within the reservation');
    registry.register('node-a', []);
    assert.notEqual(registry.epoch, epoch, 'past it: a new epoch');
    const sent = registry.catchUp(agent.position());
    assert.equal(sent.length, 1);
    assert.ok(sent[0]!.startsWith('{"type":"registry",'), 'a snapshot');
  });

  describe('the state dir', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'registry-state-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('a writer keeps the registry off the loop and at stop; a new process restores it', async () => {
      const registry = new WorkloadRegistry(TRUST);
      const writer = new RegistryStateWriter(dir, registry, createRootLogger({ level: 'silent' }), 10);
      registry.nodeOnline('node-a', '192.168.0.1');
      writer.changed();
      registry.register('node-a', [{ name: 'a', namespace: 'default', serviceAccount: 'web', ip: '10.1.0.1', labels: { app: 'a' } }]);
      writer.changed();
      await writer.flush();
      registry.nodeOffline('node-a'); // the sessions closing at stop: not written, not sent
      writer.changed();
      assert.equal(writer.counts.written, 1);
      assert.equal(registry.nextFrame(undefined), undefined, 'a stopping registry sends nothing');
      const { lines, log } = capture();
      const next = new WorkloadRegistry(TRUST);
      assert.deepEqual(restoreRegistry(dir, next, log), ['node-a']);
      assert.equal(next.epoch, registry.epoch);
      assert.equal(next.version, registry.version - 1, 'where it stopped: nothing reserved past a clean stop');
      assert.deepEqual(next.snapshot().workloads, registry.snapshot().workloads);
      assert.equal(next.snapshot().nodes[0]!.online, true, 'online until the grace ends');
      assert.ok(lines.some((l) => l.includes('registry restored')));
      const mode = (await import('node:fs')).statSync(path.join(dir, REGISTRY_STATE_FILE)).mode & 0o777;
      assert.equal(mode, 0o600);
    });

    const good = (): string => {
      const registry = new WorkloadRegistry(TRUST);
      registry.nodeOnline('node-a', '192.168.0.1');
      registry.register('node-a', [{ name: 'a', namespace: 'default', serviceAccount: 'web', ip: '10.1.0.1', labels: {} }]);
      return persist(registry);
    };
    for (const [label, text, why] of [
      ['damaged (cut short)', () => good().slice(0, 120), /not JSON/],
      ['of another trust domain', () => good().replace('"trustDomain":"cluster.local"', '"trustDomain":"other.example"'), /of trust domain .*other\.example.*, not cluster\.local/],
      ['of another format', () => good().replace('palisade-registry/1', 'palisade-registry/9'), /format/],
      ['with a reservation behind its version', () => good().replace(/"reserved":\d+/, '"reserved":0'), /reserved/],
      ['with a workload that is not a registration', () => good().replace('"serviceAccount":"web"', '"serviceAccount":7'), /nodes\[0\] \(node-a\)/],
      ['with an address held twice', () => good().replace(/"nodes":\[(.*)\]\}/, (_m, n: string) => `"nodes":[${n},${n.replace('"node-a"', '"node-b"')}]}`), /held twice/],
    ] as const) {
      it(`a state file ${label} is one warning and a fresh epoch, nothing restored`, () => {
        writeFileSync(path.join(dir, REGISTRY_STATE_FILE), text());
        const { lines, log } = capture();
        const registry = new WorkloadRegistry(TRUST);
        assert.deepEqual(restoreRegistry(dir, registry, log), []);
        assert.equal(lines.length, 1, lines.join('\n'));
        assert.match(lines[0]!, why);
        assert.match(lines[0]!, /ignored: .*fresh registry epoch/);
        assert.equal(registry.epoch, registry.replica, 'a fresh epoch');
        assert.equal(registry.version, 0);
        assert.deepEqual(registry.snapshot().nodes, []);
        assert.ok(readFileSync(path.join(dir, REGISTRY_STATE_FILE), 'utf8').length > 0, 'the file is left for a look');
      });
    }

    it('no state file: a fresh epoch, nothing logged', () => {
      const { lines, log } = capture();
      const registry = new WorkloadRegistry(TRUST);
      assert.deepEqual(restoreRegistry(dir, registry, log), []);
      assert.deepEqual(lines, []);
      assert.equal(registry.version, 0);
    });
  });

  it('the state round-trips: a restored registry\'s snapshot is the one it was written from', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rng = new Rng(seed * 31337);
      const registry = new WorkloadRegistry(TRUST, () => undefined, () => FIXED_NOW);
      const online = new Set<string>();
      for (let i = 0; i < 40; i++) step(rng, registry, online);
      const back = restart(persist(registry), []);
      const { version: _v1, ...a } = registry.snapshot();
      const { version: _v2, ...b } = back.snapshot();
      assert.deepEqual(b, a, `seed ${seed}`);
      assert.deepEqual(parseMessage(back.catchUp(undefined)[0]!, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES).type, 'registry');
    }
  });
});
