/**
 * Bounded parsing (issue #15, item 2): hostile and large input reaches the collector over the API
 * and the agent protocol while /healthz is polled and the collector's event loop is watched (it
 * runs in this process: an event-loop-delay histogram sees every stretch it was blocked).
 */
import { strict as assert } from 'node:assert';
import { performance } from 'node:perf_hooks';
import type { RunningCollector } from '../../../collector/collector';
import type { FlowRecord } from '../../../common/flow';
import { apiGet, FlowSession, nodeCreds, type ApiCredentials } from './flows-fixtures';
import { encodeMessage } from '../../../common/mesh-protocol';
import { HealthPoller, keepAlive, loopDelay } from './event-loop-fixtures';
import { collector, joinedNodeDir, LogCapture, useCollectorSuite, waitFor } from './helpers';

/** The issue's bomb: `levels` anchors, each a list of `per` aliases of the one before. */
function aliasBomb(levels = 11, per = 1400): string {
  let s = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: bomb, namespace: default}\nspec:\n  action: ALLOW\n  x0: &a0 ["lol"]\n';
  for (let i = 1; i < levels; i++) s += `  x${i}: &a${i} [${Array(per).fill(`*a${i - 1}`).join(',')}]\n`;
  return `${s}  rules: [{from: [{source: {principals: *a${levels - 1}}}]}]\n`;
}

const egressPolicy = (i: number): string =>
  `apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: egress-${i}, namespace: default}\nspec:\n  selector: {matchLabels: {app: app-${i}}}\n  allow: [{hosts: [api-${i}.example.com, "*.svc-${i}.example.com"], ports: [443, 8443]}, {cidrs: [10.${i % 250}.0.0/16]}]\n`;

function flowRecord(i: number, node = 'node-a'): FlowRecord {
  return {
    time: new Date(Date.now() - 60_000 + i).toISOString(),
    node,
    direction: 'outbound',
    source: { ip: '10.1.0.1', workload: 'web', namespace: 'shop', identity: 'spiffe://cluster.local/ns/shop/sa/web' },
    destination: { ip: '10.1.0.2', port: 8080, workload: 'api', namespace: 'shop', identity: 'spiffe://cluster.local/ns/shop/sa/api' },
    protocol: 'http',
    http: { method: 'GET', path: `/api/v1/orders/${i}`, status: 200 },
    verdict: 'allowed',
    reason: 'allowed-by-policy',
    mtls: true,
    bytesSent: i,
    bytesReceived: 100,
    durationMs: 5,
  };
}

describe('collector: bounded input', function () {
  this.timeout(120_000);
  const { dirs, stack, dataDir } = useCollectorSuite();
  let col: RunningCollector;
  let node: ApiCredentials;
  let admin: ApiCredentials;
  let agentDir: string;
  let data: string;
  const dataDirOf = (_: RunningCollector): string => data;

  beforeEach(async () => {
    data = dataDir();
    col = await collector(stack, { dataDir: data, log: new LogCapture().logger });
    agentDir = await joinedNodeDir(dirs, col, data, 'node-a');
    node = { cert: nodeCreds(agentDir) };
    admin = { token: col.adminToken };
  });

  it('answers the alias bomb (56 KB, 14,000 aliases) sent to /v1/policies/test with a node certificate with 400 in under 100 ms, /healthz answering throughout (bug: held 26-29 s, then a 500)', async () => {
    const bomb = aliasBomb();
    assert.ok(bomb.length > 55_000 && bomb.length < 58_000 && (bomb.match(/\*a/g) ?? []).length >= 14_000);
    // One kept-alive connection, as a client would use: TLS set-up is not what is measured.
    const nodeConn: ApiCredentials = { ...node, agent: keepAlive(stack) };
    assert.equal((await apiGet(col, '/healthz', nodeConn)).status, 200);
    const health = new HealthPoller(col, { ...admin, agent: keepAlive(stack) });
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const r = await apiGet(col, '/v1/policies/test', nodeConn, 'POST', { files: [{ source: 'bomb.yaml', text: bomb }], since: 0 });
      times.push(performance.now() - t);
      assert.equal(r.status, 400, r.text);
      const body = JSON.parse(r.text) as { error: { code: string; message: string }; problems: string[] };
      assert.equal(body.error.code, 'PALISADE_ERR_POLICY_INVALID');
      assert.deepEqual(body.problems, ['bomb.yaml:7: more than 100 YAML aliases (*name) in one file (found 14001): write the values out or split the file']);
    }
    const h = await health.stop();
    console.log(`      alias bomb: ${times.map((t) => t.toFixed(1)).join(', ')} ms; /healthz answered ${h.answered} times meanwhile, slowest ${h.maxMs.toFixed(1)} ms`);
    // A loaded machine stalls any request now and then: the median is the measure, and none may take long.
    const median = [...times].sort((x, y) => x - y)[Math.floor(times.length / 2)]!;
    assert.ok(median < 100 && Math.max(...times) < 1_000, `answered in ${times.map((t) => t.toFixed(1)).join(', ')} ms`);
    assert.deepEqual(health.failures, []);
    assert.ok(h.answered >= 1 && h.maxMs < 1_000, `/healthz answered ${h.answered} times, slowest ${h.maxMs.toFixed(1)} ms`);
  });

  it('keeps its event loop free while it reads large valid policy files, a bomb and flow batches (event-loop-delay histogram)', async () => {
    const session = await FlowSession.open(stack, col, agentDir, 'node-a');
    const health = new HealthPoller(col, { ...admin, agent: keepAlive(stack) });
    const idle = loopDelay();
    await new Promise((r) => setTimeout(r, 1_000));
    const baseline = idle.stop();
    // This machine's scheduler adds its own stalls (see the idle baseline): a stretch the collector
    // really blocks shows in every round, so the round with the smallest maximum is the measure.
    const rounds: Array<ReturnType<ReturnType<typeof loopDelay>['stop']>> = [];
    for (let round = 1; round <= 3; round++) {
      const policies = Array.from({ length: 300 }, (_, i) => egressPolicy(round * 1000 + i)).join('---\n');
      const loop = loopDelay();
      const results = await Promise.all([
        apiGet(col, '/v1/policies/test', node, 'POST', { files: [{ source: 'many.yaml', text: policies }], since: 0 }),
        apiGet(col, '/v1/policies/test', node, 'POST', { files: [{ source: 'bomb.yaml', text: aliasBomb() }], since: 0 }),
        apiGet(col, '/v1/policies/apply', admin, 'POST', { files: [{ source: 'many.yaml', text: policies }] }),
        session.send({ session: 'agent-1', seq: round, lost: 0, flows: Array.from({ length: 1000 }, (_, i) => flowRecord(i)) }),
      ]);
      rounds.push(loop.stop());
      const [test, bomb, apply, ack] = results as [{ status: number; text: string }, { status: number }, { status: number; text: string }, { type: string }];
      assert.equal(test.status, 200, test.text);
      assert.equal(bomb.status, 400);
      assert.equal(apply.status, 200, apply.text);
      assert.equal((JSON.parse(apply.text) as { changes: unknown[] }).changes.length, 300);
      assert.equal(ack.type, 'flows-ack');
      if (rounds.at(-1)!.max < 100) break;
    }
    const h = await health.stop();
    const best = rounds.reduce((a, b) => (b.max < a.max ? b : a));
    console.log(
      `      event-loop delay, 300-policy apply + test + alias bomb + 1000-flow batch at once: ${rounds.map((d) => `p50 ${d.p50.toFixed(1)} / p99 ${d.p99.toFixed(1)} / max ${d.max.toFixed(1)} ms`).join('; ')} ` +
        `(idle: p99 ${baseline.p99.toFixed(1)}, max ${baseline.max.toFixed(1)} ms); /healthz answered ${h.answered} times, slowest ${h.maxMs.toFixed(1)} ms`,
    );
    assert.deepEqual(health.failures, []);
    assert.ok(best.max < 250, `the event loop was blocked for ${best.max.toFixed(1)} ms at once in every round`);
  });

  it('slows a node that floods frames instead of serving it first: /healthz and other nodes are answered meanwhile, and nothing it sent is lost', async () => {
    const flooder = await FlowSession.open(stack, col, agentDir, 'node-a');
    const dirB = await joinedNodeDir(dirs, col, dataDirOf(col), 'node-b');
    const other = await FlowSession.open(stack, col, dirB, 'node-b');
    const acked = (): number => flooder.replies.filter((m) => m.type === 'flows-ack').length;
    const health = new HealthPoller(col, { ...admin, agent: keepAlive(stack) });
    const started = performance.now();
    for (let seq = 1; seq <= 500; seq++) flooder.ws.send(encodeMessage({ type: 'flows', session: 'flood', seq, lost: 0, flows: [flowRecord(seq)] }));
    await new Promise((r) => setTimeout(r, 1_000));
    const afterOneSecond = acked();
    const t = performance.now();
    assert.equal((await other.send({ session: 'b', seq: 1, lost: 0, flows: [flowRecord(1, 'node-b')] })).type, 'flows-ack');
    const otherMs = performance.now() - t;
    await waitFor(() => acked() === 500, 20_000, 'every flooded batch acknowledged');
    const h = await health.stop();
    console.log(
      `      flood of 500 frames: ${afterOneSecond} acknowledged after 1 s, all after ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
        `another node's batch answered in ${otherMs.toFixed(1)} ms; /healthz slowest ${h.maxMs.toFixed(1)} ms`,
    );
    assert.ok(afterOneSecond < 400, `the flood was paced (${afterOneSecond} of 500 after 1 s)`);
    assert.ok(otherMs < 1_000, `another node waited ${otherMs.toFixed(1)} ms`);
    assert.deepEqual(health.failures, []);
    assert.ok(h.maxMs < 1_000, `/healthz waited ${h.maxMs.toFixed(1)} ms`);
  });
});
