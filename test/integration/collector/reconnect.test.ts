import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { RunningCollector } from '../../../collector/collector';
import { PalisadeError } from '../../../common/errors';
import { encodeMessage } from '../../../common/mesh-protocol';
import {
  client,
  collector,
  joinedNodeDir,
  LogCapture,
  opened,
  rawNodeSocket,
  snapshotWhere,
  token,
  useCollectorSuite,
  waitFor,
  workload,
} from './helpers';

describe('collector: restarts and the agent socket', () => {
  const { dirs, stack, dataDir } = useCollectorSuite();

  it('serves agents on a 0600 Unix socket with the same TLS and auth', async () => {
    const data = dataDir();
    const sock = path.join(dirs.make(), 'collector.sock');
    const col = await collector(stack, { dataDir: data, log: new LogCapture().logger, agentSocket: sock });
    assert.equal(col.socketPath, sock);
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
    const c = client(stack, { url: `unix:${sock}`, caPem: col.ca.certPem, node: 'node-u', dataDir: dirs.make(), joinToken: token(data, 'node-u') });
    c.setWorkloads([workload('web', '10.4.0.1')]);
    await c.start();
    await snapshotWhere(c, (s) => s.workloads.some((w) => w.ip === '10.4.0.1' && w.node === 'node-u'));
    await col.stop();
    assert.ok(!fs.existsSync(sock), 'the socket file is removed on stop');
  });

  it('reconnects by itself after a collector restart, re-registers and gets a snapshot again', async () => {
    const data = dataDir();
    const sock = path.join(dirs.make(), 'collector.sock');
    const logs = new LogCapture();
    const first = await startCollectorAt(data, sock, logs, '127.0.0.1:0');
    const [dirTcp, dirUnix] = await Promise.all([
      joinedNodeDir(dirs, first, data, 'node-tcp'),
      joinedNodeDir(dirs, first, data, 'node-unix'),
    ]);
    const tcp = client(stack, { url: first.url, caPem: first.ca.certPem, node: 'node-tcp', dataDir: dirTcp });
    const unix = client(stack, { url: `unix:${sock}`, caPem: first.ca.certPem, node: 'node-unix', nodeAddress: '192.168.50.2', dataDir: dirUnix });
    tcp.setWorkloads([workload('web', '10.5.0.1')]);
    unix.setWorkloads([workload('db', '10.5.0.2')]);
    await Promise.all([tcp.start(), unix.start()]);
    const both = (s: { workloads: { ip: string }[] }): boolean => s.workloads.map((w) => w.ip).join() === '10.5.0.1,10.5.0.2';
    await Promise.all([snapshotWhere(tcp, both), snapshotWhere(unix, both)]);

    const gone = Promise.all([tcp, unix].map((c) => new Promise((r) => c.once('disconnected', r))));
    await first.stop();
    await gone;
    assert.equal(tcp.connected, false);
    await assert.rejects(tcp.requestCertificate('spiffe://cluster.local/ns/default/sa/web', 'x'), (e: unknown) => e instanceof PalisadeError && e.code === 'PALISADE_ERR_COLLECTOR_UNAVAILABLE');

    assert.ok(both(tcp.latest()!), 'the last snapshot stays available while disconnected');

    await new Promise((r) => setTimeout(r, 300)); // agents retry against a dead collector for a while
    const reconnected = Promise.all([tcp, unix].map((c) => new Promise((r) => c.once('connected', r))));
    const second = await startCollectorAt(data, sock, logs, first.address);
    assert.equal(second.address, first.address);
    await Promise.race([reconnected, new Promise((_, reject) => setTimeout(() => reject(new Error('no reconnect within 5 s')), 5_000))]);
    const back = await Promise.all([snapshotWhere(tcp, both), snapshotWhere(unix, both)]);
    assert.ok(tcp.connected && unix.connected);
    for (const s of back) assert.deepEqual(s.nodes.map((n) => [n.node, n.online]), [['node-tcp', true], ['node-unix', true]]);
  });

  it('replaces a stale socket file left by a crash', async () => {
    const sock = path.join(dirs.make(), 'collector.sock');
    const crashed = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.equal(crashed.signal, 'SIGKILL');
    assert.ok(fs.lstatSync(sock).isSocket(), 'a stale socket is left behind');
    const col = await collector(stack, { dataDir: dataDir(), log: new LogCapture().logger, agentSocket: sock });
    assert.equal(col.socketPath, sock);
  });

  it('refuses a socket path that is in use or is not a socket', async () => {
    const dir = dirs.make();
    const live = path.join(dir, 'live.sock');
    const other = net.createServer();
    await new Promise<void>((r) => other.listen(live, r));
    stack.push(() => new Promise<void>((r) => other.close(() => r())));
    const data = dataDir();
    await assert.rejects(
      collector(stack, { dataDir: data, log: new LogCapture().logger, agentSocket: live }),
      (e: unknown) => e instanceof PalisadeError && e.code === 'PALISADE_ERR_LISTEN' && /in use by another process/.test(e.message),
    );
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'keep me');
    await assert.rejects(collector(stack, { dataDir: data, log: new LogCapture().logger, agentSocket: file }), /is not a socket/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'keep me');
  });

  it('refuses a port that is taken, in one line', async () => {
    const data = dataDir();
    const col = await collector(stack, { dataDir: data, log: new LogCapture().logger });
    await assert.rejects(
      collector(stack, { dataDir: data, log: new LogCapture().logger, listen: col.address }),
      (e: unknown) => e instanceof PalisadeError && e.message === `cannot listen on ${col.address}: EADDRINUSE from listen`,
    );
  });

  it('start() waits for a collector that is not up yet, then connects', async () => {
    const data = dataDir();
    const first = await collector(stack, { dataDir: data, log: new LogCapture().logger });
    const agentDir = await joinedNodeDir(dirs, first, data, 'node-a');
    await first.stop();
    const c = client(stack, { url: first.url, caPem: first.ca.certPem, node: 'node-a', dataDir: agentDir });
    let done = false;
    const started = c.start().finally(() => (done = true));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(done, false, 'still waiting for the collector');
    await collector(stack, { dataDir: data, log: new LogCapture().logger, listen: first.address });
    const snap = await started;
    assert.deepEqual(snap.nodes.map((n) => n.node), ['node-a']);
  });

  it('terminates a session that stops answering pings and marks the node offline', async () => {
    const data = dataDir();
    const logs = new LogCapture();
    const col = await collector(stack, { dataDir: data, log: logs.logger, pingIntervalMs: 50, deadAfterMs: 300 });
    const [dirA, dirB] = await Promise.all([joinedNodeDir(dirs, col, data, 'node-a'), joinedNodeDir(dirs, col, data, 'node-b')]);
    const b = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-b', dataDir: dirB });
    await b.start();
    const ws = rawNodeSocket(stack, col.url, col.ca.certPem, dirA);
    await opened(ws);
    ws.send(encodeMessage({ type: 'hello', node: 'node-a', nodeAddress: '192.168.50.1', agentVersion: 'test' }));
    await snapshotWhere(b, (s) => s.nodes.some((n) => n.node === 'node-a' && n.online));
    (ws as unknown as { _socket: import('node:net').Socket })._socket.pause(); // a hung agent: reads nothing, answers nothing
    await snapshotWhere(b, (s) => s.nodes.some((n) => n.node === 'node-a' && !n.online), 5_000);
    assert.ok(logs.find('session terminated', { reason: 'no pong' }));
    assert.equal(b.connected, true, 'the live agent answers pings and stays');
  });

  it('drops a collector that went silent and reconnects', async () => {
    const data = dataDir();
    const col = await collector(stack, { dataDir: data, log: new LogCapture().logger });
    const agentDir = await joinedNodeDir(dirs, col, data, 'node-a');
    const c = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: agentDir, deadAfterMs: 300 });
    await c.start();
    const events: string[] = [];
    c.on('disconnected', () => events.push('disconnected'));
    c.on('connected', () => events.push('connected'));
    await waitFor(() => events.join() === 'disconnected,connected', 5_000, 'a reconnect after 300 ms of silence');
  });

  async function startCollectorAt(data: string, sock: string, logs: LogCapture, listen: string): Promise<RunningCollector> {
    return collector(stack, { dataDir: data, log: logs.logger, agentSocket: sock, listen });
  }
});
