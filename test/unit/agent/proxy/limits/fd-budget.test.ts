import { strict as assert } from 'node:assert';
import { capsForFdLimit, parseFdLimit, perPodCap } from '../../../../../agent/proxy/limits/fd-budget';
import { proxyLimitSettings } from '../../../../../agent/proxy/limits';

describe('fd budget', () => {
  describe('capsForFdLimit', () => {
    const table: Array<[number, { outbound: number; inbound: number; perPod: number }]> = [
      [256, { outbound: 43, inbound: 28, perPod: 10 }],
      [1200, { outbound: 379, inbound: 253, perPod: 94 }],
      [20_000, { outbound: 7_077, inbound: 4_718, perPod: 1_769 }],
      [1_048_576, { outbound: 373_507, inbound: 249_004, perPod: 93_376 }],
    ];
    for (const [limit, caps] of table) {
      it(`${limit} descriptors → ${caps.outbound} outbound, ${caps.inbound} inbound, ${caps.perPod} per pod`, () => {
        const got = capsForFdLimit(limit);
        assert.deepEqual(got, caps);
        // Never more descriptors than the limit: two per outbound connection, one per inbound one.
        assert.ok(2 * got.outbound + got.inbound < limit);
        // No pod can take the outbound caps alone: it takes four.
        assert.ok(4 * got.perPod <= got.outbound);
      });
    }

    it('refuses a limit too low to serve anyone, with one line naming ulimit -n', () => {
      assert.throws(() => capsForFdLimit(255), (e: Error & { code?: string }) => e.code === 'PALISADE_ERR_INVALID_ARGUMENT' && /ulimit -n/.test(e.message));
    });
  });

  describe('parseFdLimit', () => {
    const limits = (soft: string, hard = '4096'): string =>
      `Limit                     Soft Limit           Hard Limit           Units\nMax cpu time              unlimited            unlimited            seconds\nMax open files            ${soft}                 ${hard}                 files\n`;
    const table: Array<[string, string, number | undefined]> = [
      ['a number (the soft limit)', limits('1200', '1200'), 1200],
      ['soft below hard', limits('1024', '524288'), 1024],
      ['unlimited', limits('unlimited', 'unlimited'), 1 << 20],
      ['no such line', 'Max processes 1 1 processes\n', undefined],
      ['garbage', limits('many'), undefined],
    ];
    for (const [what, text, want] of table) it(`${what} → ${want}`, () => assert.equal(parseFdLimit(text), want));
  });

  describe('proxyLimitSettings', () => {
    it('derives every cap from the descriptor limit, with the documented defaults', () => {
      const s = proxyLimitSettings({}, 1200);
      assert.deepEqual(s.connections, { outbound: 379, inbound: 253, perPod: 94 });
      assert.equal(s.sniffBudgetBytes, 16 * 1024 * 1024);
      assert.deepEqual(s.timeouts, { idleTimeoutMs: 3_600_000, halfClosedTimeoutMs: 300_000 });
    });

    it('takes what the flags say; a pod gets a quarter of a --max-connections given alone', () => {
      assert.deepEqual(proxyLimitSettings({ maxConnections: 40 }, 1200).connections, { outbound: 40, inbound: 253, perPod: perPodCap(40) });
      assert.equal(perPodCap(40), 10);
      assert.deepEqual(proxyLimitSettings({ maxConnectionsPerPod: 5, maxInboundConnections: 9 }, 1200).connections, { outbound: 379, inbound: 9, perPod: 5 });
    });

    const bad: Array<[string, Parameters<typeof proxyLimitSettings>[0], RegExp]> = [
      ['a per-pod cap of 0', { maxConnectionsPerPod: 0 }, /--max-connections-per-pod/],
      ['a fraction', { maxConnections: 1.5 }, /--max-connections /],
      ['a negative timeout', { idleTimeoutMs: -1 }, /--idle-timeout/],
      ['a zero summary interval', { refusalIntervalMs: 0 }, /--refusal-summary-interval/],
      ['a zero sniff budget', { sniffBudgetBytes: 0 }, /--sniff-budget/],
    ];
    for (const [what, opts, msg] of bad) {
      it(`refuses ${what} with one line`, () => assert.throws(() => proxyLimitSettings(opts, 1200), msg));
    }
  });
});
