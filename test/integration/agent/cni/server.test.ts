import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { CniRefusal, CniErrorCode } from '../../../../agent/cni/protocol';
import { CniServer } from '../../../../agent/cni/server';
import { isPalisadeError } from '../../../../common/errors';
import { silentLogger } from '../../../../common/log';
import { FakeEnroller } from '../../../harness/cni-fake-enroller';
import { tempDir } from '../../../harness/agent';
import { waitFor } from '../../../harness/wait';
import { exchange, POD_UID, sampleRequest, startEndpoint, type TestEndpoint } from '../../../harness/cni-endpoint';

function json(value: unknown): string {
  return JSON.stringify(value);
}

describe('CNI endpoint (CniServer)', function () {
  this.timeout(20_000);
  let ep: TestEndpoint;
  afterEach(async () => ep?.close());

  describe('socket', () => {
    it('listens on a 0600 socket and removes it on close', async () => {
      ep = await startEndpoint();
      const st = fs.lstatSync(ep.socket);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600);
      assert.deepEqual(fs.readdirSync(path.dirname(ep.socket)), ['cni.sock'], 'no staging directory left behind');
      await ep.server.close();
      assert.equal(fs.existsSync(ep.socket), false);
    });

    it('replaces a stale socket nobody answers on', async () => {
      const dir = tempDir('cni-stale');
      const socket = path.join(dir, 'cni.sock');
      // A crashed agent leaves its socket file behind: a process that listened is SIGKILLed.
      const crashed = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => console.log('up'))`]);
      await new Promise((r) => crashed.stdout.once('data', r));
      crashed.kill('SIGKILL');
      await new Promise((r) => crashed.once('exit', r));
      assert.ok(fs.lstatSync(socket).isSocket());
      const server = await CniServer.start({ socketPath: socket, enroller: new FakeEnroller(), log: silentLogger() });
      const r = await exchange(socket, json(sampleRequest()));
      assert.equal(r.response?.ok, true);
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('refuses a socket another process serves, and a path that is not a socket (left as it was)', async () => {
      ep = await startEndpoint();
      await assert.rejects(
        CniServer.start({ socketPath: ep.socket, enroller: new FakeEnroller(), log: silentLogger() }),
        (err: unknown) => isPalisadeError(err) && err.code === 'PALISADE_ERR_LISTEN' && /is in use by another process/.test(err.message),
      );
      const file = path.join(ep.dir, 'not-a-socket');
      fs.writeFileSync(file, 'keep me');
      await assert.rejects(
        CniServer.start({ socketPath: file, enroller: new FakeEnroller(), log: silentLogger() }),
        (err: unknown) => isPalisadeError(err) && /exists and is not a socket; refusing to replace it/.test(err.message),
      );
      assert.equal(fs.readFileSync(file, 'utf8'), 'keep me');
    });
  });

  describe('taking over', () => {
    it('a successor replaces a live socket: new requests reach it, and the predecessor\'s close leaves the path', async () => {
      ep = await startEndpoint();
      const enroller = new FakeEnroller();
      const successor = await CniServer.start({ socketPath: ep.socket, enroller, log: silentLogger(), takeOver: true });
      try {
        const r = await exchange(ep.socket, json(sampleRequest()));
        assert.equal(r.response?.ok, true);
        assert.equal(enroller.enrolled.size, 1, 'the successor enrolled it');
        await ep.server.close();
        assert.ok(fs.lstatSync(ep.socket).isSocket(), 'still there after the predecessor closed');
        assert.equal((await exchange(ep.socket, json(sampleRequest()))).response?.ok, true);
      } finally {
        await successor.close();
      }
    });
  });

  describe('operations', () => {
    beforeEach(async () => {
      ep = await startEndpoint();
    });

    it('ADD hands the validated sandbox to enroll() and answers ok once it resolved', async () => {
      ep.enroller.delayMs = 100;
      const r = await exchange(ep.socket, json(sampleRequest()));
      assert.deepEqual(r.response, { palisadeCni: 1, ok: true });
      assert.ok(r.ms >= 100, `answered after enroll() resolved (${r.ms} ms)`);
      const [sandbox] = ep.enroller.of('enroll');
      assert.deepEqual(sandbox?.pod, { namespace: 'shop', name: 'web-1', uid: POD_UID });
      assert.equal(sandbox?.netns, '/var/run/netns/cni-test');
      assert.deepEqual(sandbox?.ips.map((ip) => `${ip.address}/${ip.prefixLength}`), ['10.22.0.5/16']);
      assert.equal(ep.server.stats().succeeded, 1);
    });

    it('an enroll() failure is code 100 with its reason; a CniRefusal keeps its own code', async () => {
      ep.enroller.failure = { ops: ['enroll'], error: new Error('netns /var/run/netns/cni-test: ENOENT') };
      const r = await exchange(ep.socket, json(sampleRequest()));
      assert.deepEqual(r.response, { palisadeCni: 1, ok: false, code: CniErrorCode.ENROLL_FAILED, msg: 'netns /var/run/netns/cni-test: ENOENT' });
      ep.enroller.failure = { ops: ['enroll'], error: new CniRefusal(CniErrorCode.TRY_AGAIN_LATER, 'pod shop/web-1 is not known yet') };
      const again = await exchange(ep.socket, json(sampleRequest()));
      assert.equal(again.response?.code, CniErrorCode.TRY_AGAIN_LATER);
      assert.equal(ep.server.stats().failed, 2);
    });

    it('CHECK of a sandbox that is not enrolled is code 101; after ADD it is ok', async () => {
      const before = await exchange(ep.socket, json(sampleRequest({ command: 'CHECK' })));
      assert.equal(before.response?.code, CniErrorCode.NOT_ENROLLED);
      assert.match(String(before.response?.msg), /not enrolled/);
      await exchange(ep.socket, json(sampleRequest()));
      const after = await exchange(ep.socket, json(sampleRequest({ command: 'CHECK' })));
      assert.equal(after.response?.ok, true);
    });

    it('an error message with newlines goes back as one line', async () => {
      ep.enroller.failure = { ops: ['enroll'], error: new Error('first line\nsecond line\r\n\tthird') };
      const r = await exchange(ep.socket, json(sampleRequest()));
      assert.equal(r.response?.msg, 'first line second line third');
    });

    it('a DEL sent while its ADD is still running waits for it (one sandbox, one operation at a time)', async () => {
      ep.enroller.delayMs = 300;
      const add = exchange(ep.socket, json(sampleRequest()));
      await waitFor(() => ep.enroller.calls.length === 1, 2000);
      const del = exchange(ep.socket, json(sampleRequest({ command: 'DEL' })));
      await Promise.all([add, del]);
      const [enroll, unenroll] = ep.enroller.calls;
      assert.equal(enroll?.op, 'enroll');
      assert.equal(unenroll?.op, 'unenroll');
      assert.ok(unenroll!.started >= enroll!.settled!, 'unenroll started after enroll settled');
      assert.equal(ep.enroller.enrolled.size, 0, 'the pod is not left enrolled');
    });

    it('different sandboxes are served at the same time', async () => {
      ep.enroller.delayMs = 300;
      const started = Date.now();
      await Promise.all(['a1', 'b2', 'c3'].map((id) => exchange(ep.socket, json(sampleRequest({ containerId: id })))));
      assert.ok(Date.now() - started < 800, `three 300 ms enrollments overlapped (${Date.now() - started} ms)`);
      assert.equal(ep.enroller.enrolled.size, 3);
    });

    it('counts a plugin that hung up before its answer', async () => {
      ep.enroller.delayMs = 300;
      const conn = net.connect({ path: ep.socket, allowHalfOpen: true });
      conn.on('error', () => undefined);
      conn.end(json(sampleRequest()));
      await waitFor(() => ep.enroller.calls.length === 1, 2000);
      conn.destroy();
      await waitFor(() => ep.server.stats().abandoned === 1, 3000, { what: 'abandoned counted' });
      await ep.logs.waitFor((l) => l.msg === 'palisade-cni hung up before the answer' && l.pod === 'shop/web-1', 2000);
    });
  });

  describe('limits and hostile input', () => {
    it('refuses malformed requests with a reason, logs them, and never calls the enroller', async () => {
      ep = await startEndpoint();
      const bad: [string | Buffer, number, RegExp][] = [
        ['', CniErrorCode.DECODE_FAILED, /not JSON/],
        ['null', CniErrorCode.PROTOCOL, /must be a JSON object/],
        [Buffer.from([0xc3, 0x28]), CniErrorCode.DECODE_FAILED, /not UTF-8/],
        [json(sampleRequest({ palisadeCni: 9 })), CniErrorCode.PROTOCOL, /version 9 is not supported/],
        [json(sampleRequest({ netns: '../../proc/1/ns/net' })), CniErrorCode.INVALID_ENVIRONMENT, /CNI_NETNS/],
      ];
      for (const [body, code, reason] of bad) {
        const r = await exchange(ep.socket, body);
        assert.equal(r.response?.ok, false);
        assert.equal(r.response?.code, code, String(r.response?.msg));
        assert.match(String(r.response?.msg), reason);
      }
      assert.equal(ep.enroller.calls.length, 0);
      assert.equal(ep.server.stats().refused, bad.length);
      await ep.logs.waitFor((l) => l.msg === 'CNI request refused' && l.level === 40 && /CNI_NETNS/.test(l.reason), 2000);
    });

    it('refuses an oversized request', async () => {
      ep = await startEndpoint({ maxRequestBytes: 1024 });
      const r = await exchange(ep.socket, 'x'.repeat(4096), { halfClose: false });
      assert.equal(r.response?.code, CniErrorCode.PROTOCOL);
      assert.match(String(r.response?.msg), /request larger than 1024 bytes/);
    });

    it('hangs up on a refused peer that keeps its side open and goes on writing', async () => {
      ep = await startEndpoint({ maxRequestBytes: 1024, requestTimeoutMs: 300 });
      const conn = net.connect({ path: ep.socket, allowHalfOpen: true });
      conn.on('error', () => undefined);
      const writer = setInterval(() => conn.write('x'.repeat(512)), 20);
      try {
        await waitFor(() => ep.server.stats().refused === 1, 2000);
        await waitFor(() => ep.server.stats().open === 0, 2000, { what: 'the agent closed the connection' });
      } finally {
        clearInterval(writer);
        conn.destroy();
      }
    });

    it('refuses a request that does not arrive in time', async () => {
      ep = await startEndpoint({ requestTimeoutMs: 200 });
      const r = await exchange(ep.socket, '{"palisadeCni":1,', { halfClose: false });
      assert.match(String(r.response?.msg), /request not complete within 200 ms/);
      assert.equal(ep.server.stats().refused, 1);
    });

    it('answers "try again later" to an operation that outlasts its limit', async () => {
      ep = await startEndpoint({ operationTimeoutMs: 150 });
      ep.enroller.delayMs = 1000;
      const r = await exchange(ep.socket, json(sampleRequest()));
      assert.equal(r.response?.code, CniErrorCode.TRY_AGAIN_LATER);
      assert.match(String(r.response?.msg), /did not finish ADD within 150 ms/);
      assert.equal(ep.server.stats().timedOut, 1);
    });

    it('turns connections away past maxConnections without reading them', async () => {
      ep = await startEndpoint({ maxConnections: 2, requestTimeoutMs: 1500 });
      const held = [0, 1].map(() => {
        const c = net.connect({ path: ep.socket });
        c.on('error', () => undefined);
        return c;
      });
      await Promise.all(held.map((c) => new Promise((r) => c.once('connect', r))));
      await waitFor(() => ep.server.stats().open === 2, 2000);
      const r = await exchange(ep.socket, json(sampleRequest()));
      assert.equal(r.response?.code, CniErrorCode.TRY_AGAIN_LATER);
      assert.match(String(r.response?.msg), /serving 2 CNI requests already/);
      assert.equal(ep.server.stats().busy, 1);
      assert.equal(ep.enroller.calls.length, 0);
      for (const c of held) c.destroy();
    });

    it('close() hangs up on connections still waiting', async () => {
      ep = await startEndpoint();
      ep.enroller.delayMs = 5000;
      const pending = exchange(ep.socket, json(sampleRequest()));
      await waitFor(() => ep.enroller.calls.length === 1, 2000);
      await ep.server.close();
      const r = await pending;
      assert.equal(r.raw, '', 'no answer: the plugin reports the agent went away');
    });
  });
});
