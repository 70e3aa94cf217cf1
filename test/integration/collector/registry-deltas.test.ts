/**
 * Registry deltas over real node sessions: after hello a session gets one snapshot, then each
 * change as a small `registry-delta`; a reconnect that says where its registry stands gets only
 * the deltas it missed; a registry of another epoch (another collector process) gets a snapshot;
 * a real agent whose delta does not follow asks (`registry-sync`) and ends with the collector's state.
 */
import { strict as assert } from 'node:assert';
import type WebSocket from 'ws';
import type { RunningCollector } from '../../../collector/collector';
import { encodeMessage, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES, parseMessage, type MeshMessage, type RegistryPosition } from '../../../common/mesh-protocol';
import { CaTemplate, client, collector, joinedNodeDir, LogCapture, opened, rawNodeSocket, snapshotWhere, Stack, TempDirs, waitFor, workload } from './helpers';

type Reply = Extract<MeshMessage, { type: (typeof NODE_REPLIES)[number] }>;

/** A raw node session that says hello (with `since`) and keeps every frame it is sent, parsed, with its size. */
async function rawSession(stack: Stack, col: RunningCollector, dir: string, node: string, since?: RegistryPosition): Promise<{ ws: WebSocket; got: Array<{ m: Reply; bytes: number }> }> {
  const ws = rawNodeSocket(stack, col.url, col.ca.certPem, dir);
  const got: Array<{ m: Reply; bytes: number }> = [];
  ws.on('message', (data: Buffer) => got.push({ m: parseMessage(data, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES), bytes: data.length }));
  await opened(ws);
  ws.send(encodeMessage({ type: 'hello', node, nodeAddress: '192.168.50.9', agentVersion: 'test', ...(since ? { since } : {}) }));
  return { ws, got };
}

const registryFrames = (got: Array<{ m: Reply }>): Reply[] => got.map((g) => g.m).filter((m) => m.type === 'registry' || m.type === 'registry-delta');

describe('collector: registry deltas', () => {
  const dirs = new TempDirs();
  const suite = new Stack();
  const stack = new Stack();
  let col: RunningCollector;
  let dirA: string;
  let dirB: string;

  before(async () => {
    const data = new CaTemplate(dirs).dataDir(dirs);
    col = await collector(suite, { dataDir: data, log: new LogCapture().logger });
    [dirA, dirB] = await Promise.all([joinedNodeDir(dirs, col, data, 'node-a'), joinedNodeDir(dirs, col, data, 'node-b')]);
  });
  after(async () => {
    await suite.unwind();
    dirs.cleanup();
  });
  afterEach(() => stack.unwind());

  it('sends one snapshot after hello, then each change as a small delta; a reconnect gets only what it missed', async () => {
    const b = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', nodeAddress: '192.168.50.2', dataDir: dirB });
    b.setWorkloads(Array.from({ length: 50 }, (_, i) => workload(`pod-${i}`, `10.2.0.${i + 1}`, 'web')));
    await b.start();
    await snapshotWhere(b, (s) => s.workloads.length === 50);

    const first = await rawSession(stack, col, dirA, 'node-a');
    await waitFor(() => registryFrames(first.got).length >= 1, 5_000, 'the first registry frame');
    const [snapshot] = registryFrames(first.got);
    assert.equal(snapshot!.type, 'registry', 'a fresh session starts from a snapshot');
    const snapshotBytes = first.got[0]!.bytes;

    b.setWorkloads([...Array.from({ length: 49 }, (_, i) => workload(`pod-${i}`, `10.2.0.${i + 1}`, 'web')), workload('pod-new', '10.2.0.200', 'web')]);
    await waitFor(() => registryFrames(first.got).length >= 2, 5_000, 'a delta');
    const delta = registryFrames(first.got)[1]!;
    assert.equal(delta.type, 'registry-delta');
    if (delta.type !== 'registry-delta' || snapshot!.type !== 'registry') return;
    assert.equal(delta.fromVersion, snapshot.version);
    assert.deepEqual(delta.changes.map((c) => c.op).sort(), ['remove-workload', 'set-workload']);
    const deltaBytes = first.got.find((g) => g.m === delta)!.bytes;
    assert.ok(deltaBytes * 10 < snapshotBytes, `a pod change is ${deltaBytes} bytes, the snapshot ${snapshotBytes}`);

    const at: RegistryPosition = { epoch: delta.epoch, version: delta.toVersion };
    first.ws.close(1000);
    b.setWorkloads([workload('only', '10.2.0.250', 'web')]);
    await snapshotWhere(b, (s) => s.workloads.length === 1);
    const again = await rawSession(stack, col, dirA, 'node-a', at);
    await waitFor(() => registryFrames(again.got).some((m) => m.type === 'registry-delta' && m.toVersion === col.snapshot().version), 5_000, 'the missed deltas');
    const caught = registryFrames(again.got);
    assert.ok(caught.every((m) => m.type === 'registry-delta'), `only deltas: ${caught.map((m) => m.type).join()}`);
    assert.equal(caught[0]!.type === 'registry-delta' && caught[0]!.fromVersion, at.version, 'starting where the agent stood');

    again.ws.close(1000);
    const other = await rawSession(stack, col, dirA, 'node-a', { epoch: 'another-process', version: at.version });
    await waitFor(() => registryFrames(other.got).length >= 1, 5_000, 'a registry frame');
    assert.equal(registryFrames(other.got)[0]!.type, 'registry', 'another epoch: a snapshot');
  });

  it('a real agent that gets a delta it cannot apply asks for what it missed and ends with the collector\'s state', async () => {
    const a = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', nodeAddress: '192.168.50.1', dataDir: dirA });
    const b = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', nodeAddress: '192.168.50.2', dataDir: dirB });
    a.setWorkloads([workload('web', '10.1.0.1')]);
    await Promise.all([a.start(), b.start()]);
    await snapshotWhere(b, (s) => s.workloads.some((w) => w.ip === '10.1.0.1'));
    // b's registry falls behind (as if a frame had been lost): the next delta does not follow it
    b.registry.version -= 1;
    a.setWorkloads([workload('web', '10.1.0.1'), workload('api', '10.1.0.2')]);
    await waitFor(() => b.registry.byIp('10.1.0.2') && b.registry.version === col.snapshot().version, 5_000, 'b caught up');
    const { version: _v, ...want } = col.snapshot();
    const { version: _w, ...have } = b.registry.snapshot();
    assert.deepEqual(have.workloads, want.workloads);
    assert.deepEqual(have.nodes.map((n) => [n.node, n.online]), want.nodes.map((n) => [n.node, n.online]));
  });
});
