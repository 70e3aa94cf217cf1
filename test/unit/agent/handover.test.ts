import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../../common/log';
import { askHolder, handoverSocketPath, HandoverServer, parseHandoverRequest, type HolderState } from '../../../agent/handover';

describe('handover', () => {
  describe('parseHandoverRequest', () => {
    const cases: Array<[string, string, unknown]> = [
      ['hello', '{"type":"hello"}', { type: 'hello' }],
      ['take-over with a pid', '{"type":"take-over","pid":42}', { type: 'take-over', pid: 42 }],
      ['not JSON', 'hello', { error: 'not JSON' }],
      ['an array', '[1]', { error: 'not a JSON object' }],
      ['null', 'null', { error: 'not a JSON object' }],
      ['take-over without a pid', '{"type":"take-over"}', { error: 'unknown request' }],
      ['a pid of 0', '{"type":"take-over","pid":0}', { error: 'unknown request' }],
      ['a fractional pid', '{"type":"take-over","pid":1.5}', { error: 'unknown request' }],
      ['an extra field', '{"type":"hello","x":1}', { error: 'unknown request' }],
      ['__proto__', '{"type":"hello","__proto__":{"a":1}}', { error: 'unknown request' }],
      ['an unknown type', '{"type":"uninstall"}', { error: 'unknown request' }],
    ];
    for (const [what, line, want] of cases) it(`reads ${what}`, () => assert.deepEqual(parseHandoverRequest(line), want));
  });

  describe('HandoverServer', () => {
    let dir: string;
    let server: HandoverServer | undefined;
    let state: HolderState;
    let tookOver: number[];
    beforeEach(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-handover-'));
      state = 'serving';
      tookOver = [];
      server = await HandoverServer.listen({
        runDir: dir,
        node: 'node-a',
        log: silentLogger(),
        state: () => state,
        takeOver: async (pid) => {
          tookOver.push(pid);
          state = 'draining';
          return { drainDeadline: new Date(Date.UTC(2030, 0, 1)) };
        },
      });
    });
    afterEach(async () => {
      await server?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('is a socket only its owner can use', () => {
      assert.equal(fs.statSync(handoverSocketPath(dir, 'node-a')).mode & 0o777, 0o600);
    });

    it('says who holds the node and whether it still serves', async () => {
      assert.deepEqual(await askHolder(dir, 'node-a', { type: 'hello' }), { type: 'hello', pid: process.pid, state: 'serving' });
    });

    it('hands over once: a second successor is refused while the first takes over', async () => {
      assert.deepEqual(await askHolder(dir, 'node-a', { type: 'take-over', pid: 1234 }), {
        type: 'released',
        pid: process.pid,
        drainDeadline: '2030-01-01T00:00:00.000Z',
      });
      assert.deepEqual(tookOver, [1234]);
      const again = await askHolder(dir, 'node-a', { type: 'take-over', pid: 5678 });
      assert.equal(again.type, 'refused');
      assert.deepEqual(tookOver, [1234]);
      assert.deepEqual(await askHolder(dir, 'node-a', { type: 'hello' }), { type: 'hello', pid: process.pid, state: 'draining' });
    });

    it('refuses a malformed request with a reason and keeps serving', async () => {
      const line = await new Promise<string>((resolve, reject) => {
        const s = net.connect(handoverSocketPath(dir, 'node-a'), () => s.write('{"type":"take-over","pid":"1"}\n'));
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
      assert.deepEqual(JSON.parse(line), { type: 'refused', reason: 'unknown request' });
      assert.deepEqual(tookOver, []);
      assert.equal((await askHolder(dir, 'node-a', { type: 'hello' })).type, 'hello');
    });

    it('drops a line that never ends (bounded size) without taking over', async () => {
      await new Promise<void>((resolve) => {
        const s = net.connect(handoverSocketPath(dir, 'node-a'), () => s.write('x'.repeat(10_000)));
        s.on('close', () => resolve());
        s.on('error', () => undefined);
      });
      assert.deepEqual(tookOver, []);
    });

    it('leaves nobody to ask once closed', async () => {
      await server!.close();
      server = undefined;
      await assert.rejects(askHolder(dir, 'node-a', { type: 'hello' }), /ENOENT|ECONNREFUSED/);
    });
  });
});
