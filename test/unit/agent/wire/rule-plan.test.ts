import { strict as assert } from 'node:assert';
import { IPPROTO_UDP } from '../../../../agent/datapath/pod-codec';
import type { KernelRule } from '../../../../agent/wire/kernel-rules';
import { changedPods, failClosedRules, retryDelayMs, rulesByPod, signatures } from '../../../../agent/wire/rule-plan';

function rule(podId: number, port: number, cidr = '172.31.0.100/32', verdict: 'allow' | 'deny' = 'allow'): KernelRule {
  return { direction: 'from-pod', protocol: IPPROTO_UDP, podId, port, cidr, verdict, ref: { policy: 'default/out', rule: 0, reason: 'allowed-by-cidr' } };
}

describe('rule plan (what to write when the whole set cannot be)', () => {
  const inForce = [rule(1, 5140), rule(2, 53), rule(3, 123)];

  describe('changedPods', () => {
    const cases: Array<[string, KernelRule[], number[]]> = [
      ['nothing changed', [rule(1, 5140), rule(2, 53), rule(3, 123)], []],
      ['a port taken away (a tightening)', [rule(1, 5141), rule(2, 53), rule(3, 123)], [1]],
      ['a verdict turned', [rule(1, 5140), rule(2, 53, '172.31.0.100/32', 'deny'), rule(3, 123)], [2]],
      ['all rules of a pod gone', [rule(1, 5140), rule(2, 53)], [3]],
      ['a new pod', [rule(1, 5140), rule(2, 53), rule(3, 123), rule(4, 7)], [4]],
      ['an entry added to a pod', [rule(1, 5140), rule(1, 5141), rule(2, 53), rule(3, 123)], [1]],
    ];
    for (const [name, wanted, changed] of cases) {
      it(name, () => assert.deepEqual(changedPods(signatures(rulesByPod(inForce)), signatures(rulesByPod(wanted))), changed));
    }
  });

  describe('failClosedRules', () => {
    it('keeps the wanted rules of unchanged pods and gives the changed pods none (deny)', () => {
      const wanted = rulesByPod([rule(1, 5141), rule(1, 5142), rule(2, 53), rule(3, 123), rule(4, 7)]);
      const changed = changedPods(signatures(rulesByPod(inForce)), signatures(wanted));
      assert.deepEqual(changed, [1, 4]);
      const closed = failClosedRules(wanted, changed);
      assert.deepEqual(closed.map((r) => [r.podId, r.port]), [[2, 53], [3, 123]]);
      assert.ok(closed.length <= inForce.length, 'never more than what was in force, which fit');
    });

    it('a pod whose rules are all removed has none either way', () => {
      const wanted = rulesByPod([rule(1, 5140), rule(2, 53)]);
      assert.deepEqual(failClosedRules(wanted, changedPods(signatures(rulesByPod(inForce)), signatures(wanted))).map((r) => r.podId), [1, 2]);
    });
  });

  describe('retryDelayMs', () => {
    const cases: Array<[number, number]> = [
      [1, 1000],
      [2, 2000],
      [3, 4000],
      [6, 32_000],
      [7, 60_000],
      [50, 60_000],
    ];
    for (const [failures, ms] of cases) it(`${failures} failure(s): ${ms} ms`, () => assert.equal(retryDelayMs(failures), ms));
  });
});
