/**
 * The collector's event loop during a large policy apply (issue #15, item 2: "never blocks on one
 * request for more than a few milliseconds"): 1,000 AuthorizationPolicies of two rules each (2,000
 * rules, a file well within `policy apply`'s 1 MiB limit) created, then all of them changed,
 * with agents' sessions connected to be pushed to, while /healthz is polled and an
 * event-loop-delay histogram watches (the collector runs in this process). Prints the figures.
 */
import { strict as assert } from 'node:assert';
import type { RunningCollector } from '../../../collector/collector';
import { encodeMessage } from '../../../common/mesh-protocol';
import { MAX_POLICY_FILE_BYTES } from '../../../common/policy-files';
import { HealthPoller, keepAlive, loopDelay, manyPolicies, type LoopDelay } from './event-loop-fixtures';
import { apiGet } from './flows-fixtures';
import { collector, joinedNodeDir, LogCapture, opened, rawNodeSocket, useCollectorSuite, waitFor } from './helpers';

const POLICIES = 1_000;
const AGENTS = 8;

describe('collector: event loop during a large policy apply', function () {
  this.timeout(300_000);
  const { dirs, stack, dataDir } = useCollectorSuite();

  it(`answers every /healthz probe while ${POLICIES} AuthorizationPolicies (${2 * POLICIES} rules) are applied and changed and pushed to ${AGENTS} agents (figures printed)`, async () => {
    const data = dataDir();
    // The files are read in the worker thread, off the event loop, within a budget (5 s) that a
    // machine this loaded can run out of: what is measured here is the event loop, not that budget.
    const col: RunningCollector = await collector(stack, { dataDir: data, log: new LogCapture().logger, policyParseDeadlineMs: 120_000 });
    // Agents' sessions that receive every version (counted, not parsed: the test's own work stays small).
    const received: number[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const node = `node-${i}`;
      const ws = rawNodeSocket(stack, col.url, col.ca.certPem, await joinedNodeDir(dirs, col, data, node));
      await opened(ws);
      received.push(0);
      ws.on('message', (d: Buffer) => (received[i]! += d.length > 100_000 ? 1 : 0));
      ws.send(encodeMessage({ type: 'hello', node, nodeAddress: `192.168.50.${i + 1}`, agentVersion: 'test' }));
    }
    await waitFor(() => col.snapshot().nodes.filter((n) => n.online).length === AGENTS, 10_000, 'every agent online');
    const admin = { token: col.adminToken, agent: keepAlive(stack) };
    // This machine's own stalls, for scale: the same histogram over a second of doing nothing.
    const idle = loopDelay();
    await new Promise((r) => setTimeout(r, 1_000));
    const baseline: LoopDelay = idle.stop();
    console.log(`      idle: event-loop delay p99 ${baseline.p99.toFixed(1)} / max ${baseline.max.toFixed(1)} ms`);
    for (const round of [1, 2]) {
      const text = manyPolicies(POLICIES, round);
      assert.ok(Buffer.byteLength(text) <= MAX_POLICY_FILE_BYTES, `${Buffer.byteLength(text)} bytes`);
      const body = { files: [{ source: 'many.yaml', text }] };
      const health = new HealthPoller(col, { token: col.adminToken, agent: keepAlive(stack) });
      await new Promise((r) => setTimeout(r, 50));
      const loop = loopDelay();
      const t = performance.now();
      const r = await apiGet(col, '/v1/policies/apply', admin, 'POST', body);
      const applyMs = performance.now() - t;
      assert.equal(r.status, 200, r.text.slice(0, 500));
      await waitFor(() => received.every((n) => n >= round), 20_000, `version ${round} pushed to every agent`);
      const d = loop.stop();
      const h = await health.stop();
      const answer = JSON.parse(r.text) as { version: number; changes: Array<{ op: string }> };
      assert.equal(answer.changes.filter((c) => c.op === (round === 1 ? 'create' : 'update')).length, POLICIES);
      assert.deepEqual(health.failures, []);
      assert.ok(h.answered >= 2, `/healthz answered ${h.answered} times during the apply`);
      console.log(
        `      apply ${round} (${round === 1 ? 'create' : 'update'} ${POLICIES}): ${applyMs.toFixed(0)} ms; event-loop delay p50 ${d.p50.toFixed(1)} / p99 ${d.p99.toFixed(1)} / max ${d.max.toFixed(1)} ms; ` +
          `/healthz answered ${h.answered} times, slowest ${h.maxMs.toFixed(1)} ms`,
      );
    }
    assert.equal(col.policies.list().policies.length, POLICIES);
  });
});
