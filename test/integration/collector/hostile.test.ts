import { strict as assert } from 'node:assert';
import type { CollectorClient } from '../../../agent/mesh/collector-client';
import type { RunningCollector } from '../../../collector/collector';
import { encodeMessage } from '../../../common/mesh-protocol';
import {
  CaTemplate,
  client,
  closed,
  collector,
  joinedNodeDir,
  LogCapture,
  opened,
  rawNodeSocket,
  snapshotWhere,
  Stack,
  TempDirs,
  workload,
} from './helpers';

const HELLO = encodeMessage({ type: 'hello', node: 'node-a', nodeAddress: '192.168.50.1', agentVersion: 'test' });

describe('collector: hostile input', () => {
  const suiteDirs = new TempDirs();
  const suite = new Stack();
  const stack = new Stack();
  let logs: LogCapture;
  let col: RunningCollector;
  let dirA: string;
  let b: CollectorClient;
  let round = 0;

  before(async () => {
    logs = new LogCapture();
    const data = new CaTemplate(suiteDirs).dataDir(suiteDirs);
    col = await collector(suite, { dataDir: data, log: logs.logger });
    let dirB: string;
    [dirA, dirB] = await Promise.all([joinedNodeDir(suiteDirs, col, data, 'node-a'), joinedNodeDir(suiteDirs, col, data, 'node-b')]);
    b = client(suite, { url: col.url, caPem: col.ca.certPem, node: 'node-b', nodeAddress: '192.168.50.2', dataDir: dirB });
    await b.start();
  });
  after(async () => {
    await suite.unwind();
    suiteDirs.cleanup();
  });
  afterEach(() => stack.unwind());

  /** A node-b registration change must still reach node-b: the collector keeps serving others. */
  async function othersStillServed(): Promise<void> {
    round += 1;
    const ip = `10.3.0.${round}`;
    b.setWorkloads([workload('db', ip)]);
    await snapshotWhere(b, (s) => s.workloads.some((w) => w.ip === ip));
  }

  const frames: [string, (ws: import('ws').WebSocket) => void, number, string | RegExp][] = [
    ['a non-JSON frame', (ws) => ws.send('{"type": "register", oops'), 4400, 'frame is not JSON'],
    ['an unknown message type', (ws) => ws.send('{"type":"exec","cmd":"id"}'), 4400, 'unknown message type "exec"'],
    ['an unknown field', (ws) => ws.send('{"type":"register","workloads":[],"admin":true}'), 4400, 'register: unknown field "admin"'],
    ['a binary frame', (ws) => ws.send(Buffer.from([1, 2, 3])), 4400, 'binary frames are not accepted'],
    ['a second hello', (ws) => ws.send(HELLO), 4400, 'message type "hello" is not allowed here'],
    ['a 2 MiB frame', (ws) => ws.send(JSON.stringify({ type: 'register', pad: 'x'.repeat(2 * 1024 * 1024) })), 1009, /Max payload size exceeded/],
  ];
  for (const [what, send, code, reason] of frames) {
    it(`closes a session that sends ${what} (${code}), logs it, and keeps serving others`, async () => {
      const ws = rawNodeSocket(stack, col.url, col.ca.certPem, dirA);
      await opened(ws);
      ws.send(HELLO);
      await snapshotWhere(b, (s) => s.nodes.some((n) => n.node === 'node-a' && n.online));
      const end = closed(ws);
      send(ws);
      assert.equal((await end).code, code);
      const logged = logs.lines.find((l) => l.node === 'node-a' && (typeof reason === 'string' ? l.reason === reason : reason.test(String(l.reason))));
      assert.ok(logged, `a log line with reason ${String(reason)}`);
      if (code === 4400) {
        const audited = col.audit.list({ kind: 'trust-refusal' }).some((r) => r.data.event === 'protocol' && r.actor === 'node:node-a' && (typeof reason === 'string' ? r.data.reason === reason : reason.test(String(r.data.reason))));
        assert.ok(audited, 'and a trust-refusal audit record');
      }
      await snapshotWhere(b, (s) => s.nodes.some((n) => n.node === 'node-a' && !n.online));
      await othersStillServed();
    });
  }

  it('refuses a register before hello (4400)', async () => {
    const ws = rawNodeSocket(stack, col.url, col.ca.certPem, dirA);
    await opened(ws);
    const end = closed(ws);
    ws.send(encodeMessage({ type: 'register', workloads: [] }));
    assert.equal((await end).code, 4400);
    await othersStillServed();
  });

  it('refuses a hello for another node with the node-a certificate (4403)', async () => {
    const ws = rawNodeSocket(stack, col.url, col.ca.certPem, dirA);
    await opened(ws);
    const end = closed(ws);
    ws.send(encodeMessage({ type: 'hello', node: 'node-b', nodeAddress: '192.168.50.9', agentVersion: 'test' }));
    assert.equal((await end).code, 4403);
    assert.ok(logs.find('session refused', { node: 'node-a', claimed: 'node-b' }));
    assert.equal(b.connected, true, 'the real node-b session is untouched');
    assert.equal(col.snapshot().nodes.find((n) => n.node === 'node-b')?.nodeAddress, '192.168.50.2');
  });
});
