/**
 * A collector restarted on its data dir keeps its registry's epoch and version
 * (collector/registry-state.ts): an agent that reconnects with the registry it holds gets the few
 * deltas it missed (the nodes coming back), never the whole registry again, and ends with the
 * collector's state; a damaged state file is one warning and a snapshot, as before.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WebSocket } from 'ws';
import { encodeMessage, MAX_COLLECTOR_FRAME_BYTES, NODE_REPLIES, parseMessage, type RegistryPosition } from '../../../common/mesh-protocol';
import { REGISTRY_STATE_FILE } from '../../../collector/registry-state';
import { client, collector, joinedNodeDir, LogCapture, opened, rawNodeSocket, snapshotWhere, useCollectorSuite, waitFor, workload } from './helpers';

/** A raw node session that says hello with `since` and keeps every frame's type, size and position. */
async function rawAgent(ws: WebSocket, node: string, since?: RegistryPosition): Promise<{ frames: Array<{ type: string; bytes: number }>; at: () => RegistryPosition | undefined }> {
  const frames: Array<{ type: string; bytes: number }> = [];
  let at = since;
  ws.on('message', (data: Buffer) => {
    const m = parseMessage(data, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES);
    frames.push({ type: m.type, bytes: data.length });
    if (m.type === 'registry') at = { epoch: m.epoch, version: m.version };
    if (m.type === 'registry-delta') {
      assert.deepEqual({ epoch: m.epoch, version: m.fromVersion }, at, 'every delta follows the registry held');
      at = { epoch: m.epoch, version: m.toVersion };
    }
  });
  await opened(ws);
  ws.send(encodeMessage({ type: 'hello', node, nodeAddress: '192.168.60.9', agentVersion: 'test', ...(since ? { since } : {}) }));
  return { frames, at: () => at };
}

describe('collector: the registry across a restart', () => {
  const { dirs, stack, dataDir } = useCollectorSuite();

  it('an agent that reconnects with the registry it holds gets deltas only, and ends with the collector\'s state', async () => {
    const data = dataDir();
    const logs = new LogCapture();
    const first = await collector(stack, { dataDir: data, log: logs.logger });
    const [dirA, dirRaw] = await Promise.all([joinedNodeDir(dirs, first, data, 'node-a'), joinedNodeDir(dirs, first, data, 'node-raw')]);
    const a = client(stack, { url: first.url, caPem: first.ca.certPem, node: 'node-a', dataDir: dirA });
    a.setWorkloads(Array.from({ length: 60 }, (_, i) => workload(`web-${i}`, `10.6.0.${i + 1}`, 'web')));
    await a.start();
    const raw = await rawAgent(rawNodeSocket(stack, first.url, first.ca.certPem, dirRaw), 'node-raw');
    await waitFor(() => raw.at()?.version === first.snapshot().version && first.snapshot().workloads.length === 60, 5_000, 'the raw agent current');
    const snapshotBytes = raw.frames.find((f) => f.type === 'registry')!.bytes;
    const held = raw.at()!;

    await first.stop();
    assert.ok(fs.existsSync(path.join(data, REGISTRY_STATE_FILE)), 'the registry is kept in the data dir');
    const second = await collector(stack, { dataDir: data, log: logs.logger, listen: first.address });
    assert.equal(second.snapshot().epoch, held.epoch, 'the same epoch');
    const back = await rawAgent(rawNodeSocket(stack, second.url, second.ca.certPem, dirRaw), 'node-raw', held);
    await waitFor(() => a.connected, 5_000, 'the real agent reconnected');
    await waitFor(() => back.at()?.version === second.snapshot().version, 5_000, 'the raw agent current again');
    assert.deepEqual(back.frames.filter((f) => f.type === 'registry'), [], 'no snapshot after the restart');
    const sent = back.frames.filter((f) => f.type === 'registry-delta').reduce((n, f) => n + f.bytes, 0);
    assert.ok(sent > 0 && sent * 4 < snapshotBytes, `the deltas (${sent} B) are a fraction of the snapshot (${snapshotBytes} B)`);
    const s = await snapshotWhere(a, (x) => x.version === second.snapshot().version && x.nodes.every((n) => n.online));
    const theirs = second.snapshot();
    assert.deepEqual(s.workloads, theirs.workloads, 'the real agent holds the collector\'s workloads');
    assert.deepEqual(s.nodes.map((n) => [n.node, n.online]), theirs.nodes.map((n) => [n.node, n.online]));
  });

  it('a damaged state file: one warning, a fresh epoch, and agents get a snapshot', async () => {
    const data = dataDir();
    const logs = new LogCapture();
    const first = await collector(stack, { dataDir: data, log: logs.logger });
    const dirRaw = await joinedNodeDir(dirs, first, data, 'node-raw');
    const raw = await rawAgent(rawNodeSocket(stack, first.url, first.ca.certPem, dirRaw), 'node-raw');
    await waitFor(() => raw.at(), 5_000, 'a snapshot');
    await first.stop();
    const file = path.join(data, REGISTRY_STATE_FILE);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, 40));
    const second = await collector(stack, { dataDir: data, log: logs.logger, listen: first.address });
    assert.notEqual(second.snapshot().epoch, raw.at()!.epoch, 'a fresh epoch');
    const warned = logs.lines.filter((l) => String(l.msg).includes('registry state'));
    assert.equal(warned.length, 1);
    assert.match(String(warned[0]!.msg), /ignored: not JSON \(damaged\); starting a fresh registry epoch/);
    const back = await rawAgent(rawNodeSocket(stack, second.url, second.ca.certPem, dirRaw), 'node-raw', raw.at());
    await waitFor(() => back.frames.some((f) => f.type === 'registry'), 5_000, 'a snapshot');
  });
});
