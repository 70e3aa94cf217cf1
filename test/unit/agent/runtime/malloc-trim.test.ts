import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { nextBaseline, selfAnonKb, shouldTrim, startMallocTrim } from '../../../../agent/runtime/malloc-trim';

const MB = 1024;

describe('malloc trim', function () {
  describe('shouldTrim', function () {
    const s = { minGrowthKb: 8 * MB, maxBusy: 0.05 };
    const cases: Array<[string, number | undefined, number | undefined, number, boolean]> = [
      ['anonymous memory grew by the threshold, agent quiet', 48 * MB, 40 * MB, 0.01, true],
      ['it grew by more, event loop busy exactly at the limit', 150 * MB, 40 * MB, 0.05, true],
      ['it grew by more but the agent is busy (a stall under load)', 150 * MB, 40 * MB, 0.3, false],
      ['it grew by less', 47 * MB, 40 * MB, 0, false],
      ['it shrank', 30 * MB, 40 * MB, 0, false],
      ['there is no reading now', undefined, 40 * MB, 0, false],
      ['there is no baseline yet', 80 * MB, undefined, 0, false],
      ['the reading is not a number', NaN, 40 * MB, 0, false],
      ['the busy figure is not a number', 80 * MB, 40 * MB, NaN, false],
    ];
    for (const [what, now, base, busy, want] of cases) it(`${want ? 'trims' : 'does not trim'} when ${what}`, () => assert.equal(shouldTrim(now, base, busy, s), want));
  });

  describe('nextBaseline', function () {
    const cases: Array<[string, number | undefined, number | undefined, boolean, number | undefined]> = [
      ['after a trim: what is left', 40 * MB, 44 * MB, true, 44 * MB],
      ['no trim, memory grew: the old one', 40 * MB, 46 * MB, false, 40 * MB],
      ['no trim, memory shrank by itself: the lower one', 40 * MB, 36 * MB, false, 36 * MB],
      ['the first reading', undefined, 38 * MB, false, 38 * MB],
      ['no reading: unchanged', 40 * MB, undefined, true, 40 * MB],
    ];
    for (const [what, base, now, trimmed, want] of cases) it(what, () => assert.equal(nextBaseline(base, now, trimmed), want));
  });

  it('reads RssAnon from /proc/self/status, and nothing from text without it', function () {
    assert.ok((selfAnonKb() ?? 0) > 1000);
    assert.equal(selfAnonKb(() => 'VmRSS:\t 100 kB\nRssAnon:\t   51234 kB\n'), 51234);
    assert.equal(selfAnonKb(() => 'Name: x\n'), undefined);
    assert.equal(
      selfAnonKb(() => {
        throw new Error('gone');
      }),
      undefined,
    );
  });

  it('trims on its timer once memory grew and the agent is quiet, and not again until it grows again', async function () {
    let anon = 40 * MB;
    let trims = 0;
    let busy = 0;
    const t = startMallocTrim(
      () => {
        trims += 1;
        anon = 42 * MB;
        return true;
      },
      { everyMs: 20, minGrowthKb: 8 * MB, maxBusy: 0.05 },
      () => anon,
      () => busy,
    );
    try {
      await new Promise((r) => setTimeout(r, 70));
      assert.equal(trims, 0, 'nothing grew');
      anon = 90 * MB;
      busy = 0.5;
      await new Promise((r) => setTimeout(r, 70));
      assert.equal(trims, 0, 'busy: not now');
      busy = 0;
      await new Promise((r) => setTimeout(r, 70));
      assert.equal(trims, 1);
      await new Promise((r) => setTimeout(r, 70));
      assert.equal(trims, 1, 'the baseline is what was left after the trim');
      assert.equal(t.counters.trims, 1);
      assert.ok(t.counters.checks >= 5);
    } finally {
      t.stop();
    }
  });

  it('stops checking, and throws nothing, when trim itself fails', async function () {
    let anon = 40 * MB;
    let calls = 0;
    const t = startMallocTrim(
      () => {
        calls += 1;
        throw new Error('no malloc_trim here');
      },
      { everyMs: 20, minGrowthKb: 8 * MB, maxBusy: 0.05 },
      () => anon,
      () => 0,
    );
    try {
      anon = 90 * MB;
      await new Promise((r) => setTimeout(r, 120));
      assert.equal(calls, 1);
      assert.equal(t.counters.trims, 0);
    } finally {
      t.stop();
    }
  });

  it('native mallocTrim gives back the free pages glibc keeps between live allocations', function () {
    // A child: 96 MB of 16 KiB malloc'd buffers, one in 16 kept (so free() cannot return the
    // heap's top), the rest freed; RssAnon before and after native.mallocTrim().
    const addon = path.resolve(__dirname, '../../../../native');
    const script = `(async () => {
      const { native } = require(${JSON.stringify(addon)});
            const gc = globalThis.gc;
      const anon = () => Number(/RssAnon:\\s+(\\d+) kB/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]);
      let all = []; for (let i = 0; i < 6144; i++) all.push(Buffer.allocUnsafeSlow(16384).fill(1));
      const kept = all.filter((_, i) => i % 16 === 0); all = null; gc(); gc();
      await new Promise((r) => setTimeout(r, 100));
      const before = anon(); const released = native.mallocTrim(); const after = anon();
      process.stdout.write(JSON.stringify({ before, after, released, kept: kept.length }));})();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--no-concurrent-array-buffer-sweeping', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const m = JSON.parse(r.stdout) as { before: number; after: number; released: boolean };
    assert.equal(m.released, true);
    assert.ok(m.before - m.after > 48 * MB, `RssAnon ${m.before} -> ${m.after} kB: expected more than 48 MB back`);
  });
});
