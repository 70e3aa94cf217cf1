/**
 * Workload registrations shared by two collector replicas serving at once, in Kubernetes mode,
 * through the API double (driven by the real client-node): PalisadeRegistration objects
 * (collector/kubernetes/registrations-share.ts). An agent connected to A sees, within a second, a
 * workload that an agent connected to B registered, and sees it go when it is removed; and when A
 * goes away, an agent that fails over to B keeps every workload — also those of a node whose agent
 * never reaches B — past the agent's failover carry-over window (without the share, B would not
 * know them and the agent would drop them when that window ends).
 */
import { strict as assert } from 'node:assert';
import pino from 'pino';
import { FlowReporter } from '../../../agent/flows/reporter';
import type { RunningCollector } from '../../../collector/collector';
import type { RegistrySnapshot, WorkloadRegistration } from '../../../common/mesh-protocol';
import { numberedFlow } from './flows-fixtures';
import { podOn, REPLICAS_CA_SECRET, useReplicasApi } from './kube-collector';
import { client, collector, LogCapture, snapshotWhere, token, useCollectorSuite, waitFor, workload } from './helpers';

const has = (ip: string) => (s: RegistrySnapshot): boolean => s.workloads.some((w) => w.ip === ip);

describe('collector replicas share workload registrations through the API (PalisadeRegistration objects)', function () {
  this.timeout(60_000);
  const { dirs, stack } = useCollectorSuite();
  const k8s = useReplicasApi(dirs, stack);

  const pod = (w: WorkloadRegistration, node: string): void => podOn(k8s.api, w, node);
  const replicas = async (): Promise<{ a: RunningCollector; b: RunningCollector; dataA: string; dataB: string }> => {
    const [dataA, dataB] = [dirs.make(), dirs.make()];
    const logs = new LogCapture();
    const start = (dataDir: string): Promise<RunningCollector> => collector(stack, { dataDir, log: logs.logger, kubernetes: { kubeconfig: k8s.kubeconfig, caSecret: REPLICAS_CA_SECRET } });
    const [a, b] = await Promise.all([start(dataA), start(dataB)]);
    return { a, b, dataA, dataB };
  };

  it('agents at A and at B see each other\'s workloads within a second; a removed one goes', async function () {
    const { a, b, dataA, dataB } = await replicas();
    const web = workload('web', '10.8.1.1');
    const db = workload('db', '10.8.2.1');
    const cache = workload('cache', '10.8.2.2');
    pod(web, 'node-x');
    pod(db, 'node-y');
    pod(cache, 'node-y');
    const x = client(stack, { url: a.url, caPem: a.ca.certPem, node: 'node-x', nodeAddress: '192.168.60.1', dataDir: dirs.make('palisade-agent-'), joinToken: token(dataA, 'node-x') });
    const y = client(stack, { url: b.url, caPem: b.ca.certPem, node: 'node-y', nodeAddress: '192.168.60.2', dataDir: dirs.make('palisade-agent-'), joinToken: token(dataB, 'node-y') });
    x.setWorkloads([web]);
    y.setWorkloads([db]);
    await Promise.all([x.start(), y.start()]);
    await snapshotWhere(x, (s) => has(db.ip)(s) && has(web.ip)(s), 5_000);
    await snapshotWhere(y, (s) => has(db.ip)(s) && has(web.ip)(s), 5_000);
    const atX = x.latest()!.workloads.find((w) => w.ip === db.ip)!;
    assert.deepEqual([atX.node, atX.nodeAddress, atX.identity], ['node-y', '192.168.60.2', 'spiffe://cluster.local/ns/default/sa/db'], 'as B admitted it');
    assert.equal(x.latest()!.nodes.find((n) => n.node === 'node-y')?.online, true, 'node-y online, seen at A');

    let started = Date.now();
    y.setWorkloads([db, cache]);
    await snapshotWhere(x, has(cache.ip), 1_000);
    const addedMs = Date.now() - started;
    started = Date.now();
    y.setWorkloads([cache]);
    await snapshotWhere(x, (s) => !has(db.ip)(s) && has(cache.ip)(s), 1_000);
    const removedMs = Date.now() - started;
    process.stdout.write(`      B → API → A → agent: added in ${addedMs} ms, removed in ${removedMs} ms\n`);
    const object = k8s.api.get('palisade.dev/v1/palisaderegistrations', '', 'node-y') as unknown as { spec: { workloads: Array<{ ip: string }> } };
    assert.deepEqual(object.spec.workloads.map((w) => w.ip), [cache.ip], 'B\'s PalisadeRegistration for node-y');
    assert.ok(!JSON.stringify(object).includes('BEGIN'), 'no certificate or key in the object');
  });

  it('a workload the node\'s binding does not allow is refused at the other replica too', async function () {
    const { a, b, dataA, dataB } = await replicas();
    const web = workload('web', '10.8.1.1');
    pod(web, 'node-x');
    const x = client(stack, {
      url: a.url,
      caPem: a.ca.certPem,
      node: 'node-x',
      nodeAddress: '192.168.60.1',
      dataDir: dirs.make('palisade-agent-'),
      joinToken: token(dataA, 'node-x', { scopes: ['default/*'] }),
    });
    const y = client(stack, { url: b.url, caPem: b.ca.certPem, node: 'node-y', nodeAddress: '192.168.60.2', dataDir: dirs.make('palisade-agent-'), joinToken: token(dataB, 'node-y') });
    x.setWorkloads([web]);
    await Promise.all([x.start(), y.start()]);
    await snapshotWhere(y, has(web.ip), 5_000);
    // Another writer of the object (not a replica that admitted it) claims a workload outside node-x's scope.
    const object = k8s.api.get('palisade.dev/v1/palisaderegistrations', '', 'node-x') as unknown as { spec: { stamp: { at: number }; workloads: WorkloadRegistration[] } };
    const forged = { stamp: { at: object.spec.stamp.at + 60_000, replica: 'zz', seq: 0 }, workloads: [...object.spec.workloads, { ...workload('evil', '10.8.1.9'), namespace: 'kube-system' }] };
    const applied = b.kubernetes!.registrations.applied;
    k8s.api.patch('palisade.dev/v1/palisaderegistrations', '', 'node-x', { spec: forged });
    await waitFor(() => b.kubernetes!.registrations.applied > applied, 5_000, 'B applied the forged share');
    assert.ok(has(web.ip)(b.snapshot()) && !has('10.8.1.9')(b.snapshot()), 'the allowed workload stays, the other is refused at B');
    assert.ok(!has('10.8.1.9')(y.latest()!), 'and never reaches B\'s agents');
  });

  it('failover A → B under a flow stream: no workload lost, also those of a node that never reaches B', async function () {
    const { a, b, dataA, dataB } = await replicas();
    const [web, api1, db] = [workload('web', '10.8.1.1'), workload('api', '10.8.3.1'), workload('db', '10.8.2.1')];
    pod(web, 'node-x');
    pod(api1, 'node-w');
    pod(db, 'node-y');
    // x only knows A (it never reaches B); w knows A then B; y is at B.
    const x = client(stack, { url: a.url, caPem: a.ca.certPem, node: 'node-x', nodeAddress: '192.168.60.1', dataDir: dirs.make('palisade-agent-'), joinToken: token(dataA, 'node-x') });
    const wLogs = new LogCapture();
    const w = client(stack, {
      url: [a.url, b.url],
      caPem: a.ca.certPem,
      node: 'node-w',
      nodeAddress: '192.168.60.3',
      dataDir: dirs.make('palisade-agent-'),
      joinToken: token(dataA, 'node-w'),
      failoverCarryMs: 300,
      log: wLogs.logger,
    });
    const y = client(stack, { url: b.url, caPem: b.ca.certPem, node: 'node-y', nodeAddress: '192.168.60.2', dataDir: dirs.make('palisade-agent-'), joinToken: token(dataB, 'node-y') });
    x.setWorkloads([web]);
    w.setWorkloads([api1]);
    y.setWorkloads([db]);
    await Promise.all([x.start(), w.start(), y.start()]);
    const all = (s: RegistrySnapshot): boolean => [web, api1, db].every((v) => has(v.ip)(s));
    await snapshotWhere(w, all, 5_000);
    await waitFor(() => all(b.snapshot()), 5_000, 'B knows every workload');

    const reporter = new FlowReporter({ log: pino({ level: 'silent' }), batchSize: 50, flushIntervalMs: 20 });
    reporter.start(w);
    stack.push(() => reporter.close());
    let produced = 0;
    const producing = setInterval(() => {
      for (let i = 0; i < 5; i++) reporter.record(numberedFlow('node-w', ++produced));
    }, 5);
    stack.push(() => clearInterval(producing));
    await waitFor(() => reporter.stats().acknowledged > 100, 10_000, 'flows stored at A');

    const moved = new Promise<void>((resolve) => w.once('connected', () => resolve()));
    await a.stop();
    await moved;
    assert.equal(w.collector, b.url);
    await waitFor(() => b.flows.rows() > 0, 5_000, 'flows stored at B');
    // Past the carry-over window: what the agent holds is what B said, and B knew every workload.
    await new Promise((r) => setTimeout(r, 800));
    clearInterval(producing);
    assert.ok(await reporter.settled(10_000), 'every record acknowledged or counted');
    const held = w.latest()!;
    assert.deepEqual(held.workloads.map((v) => v.ip).sort(), [web.ip, api1.ip, db.ip].sort(), 'no workload lost');
    assert.equal(wLogs.find('failover: keeping the workloads of nodes this collector does not know yet'), undefined, 'B\'s snapshot named every node: nothing carried');
    assert.equal(reporter.stats().lost, 0);
  });
});
