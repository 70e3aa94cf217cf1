/**
 * The demo's state lock (cli/demo/state-lock.ts): `demo up`, `down` and `pod add|remove` one at a
 * time, a kernel lock that a dead holder does not keep, and `demo down` waiting for a command in
 * progress instead of removing the demo under it.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { demoDown, writeState, type DemoState } from '../../../cli/demo/demo';
import { STATE_LOCK, withStateLock } from '../../../cli/demo/state-lock';

const NATIVE = path.resolve(__dirname, '../../../native');

describe('palisade demo: the state lock', function () {
  this.timeout(20_000);
  let tmp: string;
  let dir: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-demo-lock-'));
    dir = path.join(tmp, 'demo');
    fs.mkdirSync(dir);
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A demo with nothing running: what `demo down` takes down without touching the machine. */
  function emptyDemo(): void {
    const state: DemoState = {
      createdAt: new Date().toISOString(),
      topology: { label: 'demo', cgroupPath: path.join(tmp, 'no-cgroup'), netns: [], nodes: [], pods: [], externalHosts: [] },
      agents: [],
      apps: [],
    };
    writeState(dir, state);
  }

  it('two holders run one after the other, and the lock file goes with the last', async () => {
    const events: string[] = [];
    const hold = (name: string) => withStateLock(dir, async () => {
      events.push(`${name} in`);
      await new Promise((r) => setTimeout(r, 150));
      events.push(`${name} out`);
    }, () => assert.fail('the directory is there'));
    await Promise.all([hold('a'), hold('b')]);
    assert.deepEqual(events, ['a in', 'a out', 'b in', 'b out']);
    assert.equal(fs.existsSync(path.join(dir, STATE_LOCK)), false);
  });

  it('demo down waits for a command holding the lock, then removes the demo', async () => {
    emptyDemo();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const command = withStateLock(dir, async () => {
      entered();
      await held;
      assert.ok(fs.existsSync(path.join(dir, 'state.json')), 'the demo is still there while the command runs');
    }, () => assert.fail('the directory is there'));
    await inside;
    let downDone = false;
    const down = demoDown(dir).then((was) => ((downDone = true), was));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(downDone, false, 'demo down waits for the lock');
    assert.ok(fs.existsSync(path.join(dir, 'state.json')));
    release();
    await command;
    assert.equal(await down, true);
    assert.equal(fs.existsSync(dir), false, 'the demo directory is removed');
  });

  it('a waiter that finds the demo gone answers "absent"; demo down of no demo is false and creates nothing', async () => {
    fs.rmSync(dir, { recursive: true });
    assert.equal(await withStateLock(dir, async () => 'ran', () => 'absent'), 'absent');
    assert.equal(await demoDown(dir), false);
    assert.equal(fs.existsSync(dir), false);
  });

  it('demo down leaves a directory without state.json alone', async () => {
    fs.writeFileSync(path.join(dir, 'keep'), 'x');
    assert.equal(await demoDown(dir), false);
    assert.deepEqual(fs.readdirSync(dir), ['keep']);
  });

  it('a holder killed with SIGKILL keeps nothing locked: the next one gets the lock at once', async () => {
    const file = path.join(dir, STATE_LOCK);
    const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(NATIVE)}).native.lockFile(${JSON.stringify(file)}); console.log('locked'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
      child.once('exit', (code) => reject(new Error(`the holder exited (${code})`)));
    });
    let got = false;
    const waiter = withStateLock(dir, async () => void (got = true), () => assert.fail('the directory is there'));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got, false, 'held while the holder lives');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const t0 = Date.now();
    await waiter;
    assert.equal(got, true);
    assert.ok(Date.now() - t0 < 2000, `the lock is free once its holder is dead (${Date.now() - t0} ms)`);
  });
});
