/**
 * Registry deltas over real node sessions: after hello a session gets one snapshot, then each
 * change as a small `registry-delta`; a reconnect that says where its registry stands gets only
 * the deltas it missed; a registry of another epoch (another collector process) gets a snapshot;
 * a real agent whose delta does not follow asks (`registry-sync`) and ends with the collector's state.
 */
import { strict as assert } from 'node:assert';
import type WebSocket from 'ws';
import type { RunningCollector } from '../../../collector/collector';
import { encodeMessage, inflateRegistryFrame, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES, parseMessage, REGISTRY_DEFLATE, type MeshMessage, type RegistryPosition } from '../../../common/mesh-protocol';
import { CaTemplate, client, collector, joinedNodeDir, LogCapture, opened, rawNodeSocket, snapshotWhere, Stack, TempDirs, waitFor, workload } from './helpers';

type Reply = Extract<MeshMessage, { type: (typeof NODE_REPLIES)[number] }>;

/**
 * A raw node session that says hello (with `since`, and `accepts` when given) and keeps every
 * frame it is sent, parsed (a binary one inflated first), with its size on the wire and whether it
 * came as a binary message.
 */
async function rawSession(
  stack: Stack,
  col: RunningCollector,
  dir: string,
  node: string,
  since?: RegistryPosition,
  accepts?: string[],
): Promise<{ ws: WebSocket; got: Array<{ m: Reply; bytes: number; binary: boolean; text: string }> }> {
  const ws = rawNodeSocket(stack, col.url, col.ca.certPem, dir);
  const got: Array<{ m: Reply; bytes: number; binary: boolean; text: string }> = [];
  ws.on('message', (data: Buffer, binary: boolean) => {
    const text = (binary ? inflateRegistryFrame(data) : data).toString();
    got.push({ m: parseMessage(text, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES), bytes: data.length, binary, text });
  });
  await opened(ws);
  ws.send(encodeMessage({ type: 'hello', node, nodeAddress: '192.168.50.9', agentVersion: 'test', ...(since ? { since } : {}), ...(accepts ? { accepts } : {}) }));
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

  it('an agent that accepts registry-deflate gets the same frames deflated (a quarter of the bytes or less); one that does not, text; small deltas stay text', async () => {
    const b = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', nodeAddress: '192.168.50.2', dataDir: dirB });
    const pods = (n: number, tag: string): ReturnType<typeof workload>[] => Array.from({ length: n }, (_, i) => workload(`pod-${tag}-${i}`, `10.2.1.${i + 1}`, 'web'));
    b.setWorkloads(pods(100, 'a'));
    await b.start();
    await snapshotWhere(b, (s) => s.workloads.length === 100);
    const plain = await rawSession(stack, col, dirA, 'node-a');
    await waitFor(() => registryFrames(plain.got).length >= 1, 5_000, 'the plain session\'s snapshot');
    plain.ws.close(1000);
    assert.equal(plain.got[0]!.binary, false, 'a session that did not say it accepts deflated frames gets text');
    // another epoch: a snapshot; a name the collector does not know is ignored
    const deflating = await rawSession(stack, col, dirA, 'node-a', { epoch: 'another-process', version: 0 }, [REGISTRY_DEFLATE, 'something-newer']);
    await waitFor(() => registryFrames(deflating.got).length >= 1, 5_000, 'the deflating session\'s snapshot');
    const snap = deflating.got.find((g) => g.m.type === 'registry')!;
    assert.equal(snap.binary, true, 'the snapshot as a binary message');
    assert.ok(snap.bytes * 4 < Buffer.byteLength(snap.text), `deflated ${snap.bytes} bytes for ${Buffer.byteLength(snap.text)} of JSON`);
    // a change of 100 pods (a delta of ~30 KB) comes deflated, a change of one pod (under 1 KB) as text
    b.setWorkloads(pods(100, 'b'));
    await waitFor(() => deflating.got.some((g) => g.m.type === 'registry-delta' && g.m.changes.length >= 100), 5_000, 'the big delta');
    const big = deflating.got.find((g) => g.m.type === 'registry-delta' && g.m.changes.length >= 100)!;
    assert.equal(big.binary, true, 'a big delta as a binary message');
    const other = await rawSession(stack, col, dirA, 'node-a', big.m.type === 'registry-delta' ? { epoch: big.m.epoch, version: big.m.fromVersion } : undefined);
    await waitFor(() => registryFrames(other.got).length >= 1, 5_000, 'the same delta as text');
    const same = other.got.find((g) => g.m.type === 'registry-delta')!;
    assert.equal(same.binary, false, 'as text to an agent that did not say it accepts deflated frames');
    assert.equal(same.text, big.text, 'the same frame, byte for byte, once inflated');
    other.ws.close(1000);
    deflating.ws.close(1000);
    const again = await rawSession(stack, col, dirA, 'node-a', big.m.type === 'registry-delta' ? { epoch: big.m.epoch, version: big.m.toVersion } : undefined, [REGISTRY_DEFLATE]);
    b.setWorkloads([...pods(99, 'b'), workload('pod-c', '10.2.1.200', 'web')]);
    await waitFor(() => again.got.some((g) => g.m.type === 'registry-delta' && g.m.changes.some((c) => c.op === 'set-workload' && c.workload.ip === '10.2.1.200')), 5_000, 'the small delta');
    const small = again.got.find((g) => g.m.type === 'registry-delta')!;
    assert.equal(small.binary, false, `a delta of ${small.bytes} bytes goes as text`);
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
