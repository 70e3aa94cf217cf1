/**
 * Collector replica liveness through the API double (driven by the real client-node): each replica
 * renews a Lease and watches the others' (collector/kubernetes/replica-lease.ts, replica-leases.ts).
 * A replica killed without closing (SIGKILL: its PalisadeRegistration objects still say online)
 * has its node marked offline at the other replica within the Lease's duration and a margin, and
 * that replica's agents get the delta; when the node's agent reconnects there, it is back. A
 * replica that keeps renewing never has a node marked, and one cut off from the API marks nobody.
 * `palisade status` at a replica shows every replica's Lease, its judgement of each and their nodes.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { RunningCollector } from '../../../collector/collector';
import type { ReplicaStatus, StatusResponse } from '../../../common/control-api';
import type { RegistrySnapshot, WorkloadRegistration } from '../../../common/mesh-protocol';
import { cliPath } from '../../harness/agent';
import { runCli } from '../../harness/cli';
import { waitFor as poll } from '../../harness/wait';
import { JsonLines } from '../../harness/fixtures';
import { podOn, REPLICAS_CA_SECRET, useReplicasApi } from './kube-collector';
import { client, collector, LogCapture, snapshotWhere, token, useCollectorSuite, waitFor, workload } from './helpers';

const LEASES = 'coordination.k8s.io/v1/leases';
const online = (node: string) => (s: RegistrySnapshot): boolean | undefined => s.nodes.find((n) => n.node === node)?.online;
const has = (ip: string) => (s: RegistrySnapshot): boolean => s.workloads.some((w) => w.ip === ip);

describe('collector replicas: liveness by Lease (a dead replica\'s nodes go offline elsewhere)', function () {
  this.timeout(120_000);
  const { dirs, stack } = useCollectorSuite();
  const k8s = useReplicasApi(dirs, stack);

  const pod = (w: WorkloadRegistration, node: string): void => podOn(k8s.api, w, node);
  const replica = (dataDir: string, logs: LogCapture, leaseSeconds: number): Promise<RunningCollector> =>
    collector(stack, { dataDir, log: logs.logger, kubernetes: { kubeconfig: k8s.kubeconfig, caSecret: REPLICAS_CA_SECRET, replicaLeaseSeconds: leaseSeconds } });
  /** x (node-x, a workload) at A, y (node-y) at B, each seeing the other's node online. */
  const agents = async (a: RunningCollector, dataA: string, b: RunningCollector, dataB: string) => {
    const web = workload('web', '10.8.1.1');
    pod(web, 'node-x');
    const x = client(stack, { url: a.url, caPem: a.ca.certPem, node: 'node-x', nodeAddress: '192.168.60.1', dataDir: dirs.make('palisade-agent-'), joinToken: token(dataA, 'node-x') });
    const y = client(stack, { url: b.url, caPem: b.ca.certPem, node: 'node-y', nodeAddress: '192.168.60.2', dataDir: dirs.make('palisade-agent-'), joinToken: token(dataB, 'node-y') });
    x.setWorkloads([web]);
    await Promise.all([x.start(), y.start()]);
    await snapshotWhere(y, (s) => online('node-x')(s) === true, 10_000);
    await snapshotWhere(x, (s) => online('node-y')(s) === true, 10_000);
    return { x, y };
  };
  const leaseHolders = (): string[] => k8s.api.list(LEASES, 'default').map((l) => String((l.spec as { holderIdentity?: unknown }).holderIdentity)).sort();

  it('A is killed without closing: B marks its node offline within the Lease\'s duration and a margin and tells its agents; the node\'s agent reconnects to B and it is back', async function () {
    const LEASE_S = 2;
    const [dataA, dataB] = [dirs.make(), dirs.make()];
    const logsB = new LogCapture();
    const b = await replica(dataB, logsB, LEASE_S);
    const tokenX = token(dataA, 'node-x');
    // A: a collector process of its own, so that SIGKILL leaves its objects and its Lease as a crash does.
    const child = spawn(process.execPath, [cliPath(), 'collector', '--data', dataA, '--listen', '127.0.0.1:0', '--kubernetes', '--kubeconfig', k8s.kubeconfig, '--ca-secret', `${REPLICAS_CA_SECRET.namespace}/${REPLICAS_CA_SECRET.name}`, '--replica-lease', `${LEASE_S}s`], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    stack.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    const logsA = new JsonLines(child.stderr!);
    const ready = await Promise.race([
      logsA.waitFor<{ address: string }>((l) => l?.msg === 'collector ready', 60_000),
      exited.then(() => {
        throw new Error(`collector A exited before ready: ${logsA.other.join(' | ')}`);
      }),
    ]);
    const urlA = `wss://${ready.address}`;
    const [web, db] = [workload('web', '10.8.1.1'), workload('db', '10.8.2.1')];
    pod(web, 'node-x');
    pod(db, 'node-y');
    const agentDirX = dirs.make('palisade-agent-');
    const x = client(stack, { url: urlA, caPem: b.ca.certPem, node: 'node-x', nodeAddress: '192.168.60.1', dataDir: agentDirX, joinToken: tokenX });
    const y = client(stack, { url: b.url, caPem: b.ca.certPem, node: 'node-y', nodeAddress: '192.168.60.2', dataDir: dirs.make('palisade-agent-'), joinToken: token(dataB, 'node-y') });
    x.setWorkloads([web]);
    y.setWorkloads([db]);
    await Promise.all([x.start(), y.start()]);
    await snapshotWhere(y, (s) => has(web.ip)(s) && online('node-x')(s) === true, 10_000);
    await waitFor(() => leaseHolders().length === 2, 5_000, 'both replicas\' Leases');
    const holderA = (k8s.api.get('palisade.dev/v1/palisaderegistrations', '', 'node-x') as unknown as { spec: { stamp: { replica: string } } }).spec.stamp.replica;
    assert.ok(leaseHolders().includes(holderA), 'A\'s Lease is held by the replica id its registrations carry');
    assert.equal(b.kubernetes!.leases.marked, 0);

    const killedAt = Date.now();
    child.kill('SIGKILL');
    await exited;
    const offline = await snapshotWhere(y, (s) => online('node-x')(s) === false, (LEASE_S + 5) * 1000);
    const afterMs = Date.now() - killedAt;
    process.stdout.write(`      node-x offline at B's agent ${afterMs} ms after A's SIGKILL (Lease ${LEASE_S} s)\n`);
    assert.ok(afterMs <= LEASE_S * 1000 + 2_500, `within the Lease's duration and a margin: ${afterMs} ms`);
    assert.ok(has(web.ip)(offline), 'its workloads stay, as when a session closes');
    const object = k8s.api.get('palisade.dev/v1/palisaderegistrations', '', 'node-x') as unknown as { spec: { online: boolean; stamp: { replica: string } } };
    assert.deepEqual([object.spec.online, object.spec.stamp.replica], [true, holderA], 'the object still says online: B judged by the Lease');
    assert.equal(b.kubernetes!.leases.marked, 1);
    assert.ok(logsB.lines.some((l) => l.msg?.startsWith(`collector replica ${holderA} is gone (its Lease was not renewed within its duration)`)), 'B says why');
    assert.ok(leaseHolders().includes(holderA), 'a killed replica\'s Lease stays behind (collected an hour after it expired)');

    // A replica starting now finds A's object online and A's Lease no longer changing: offline one duration after its start.
    const startedC = Date.now();
    const c = await collector(stack, { dataDir: dirs.make(), log: new LogCapture().logger, kubernetes: { kubeconfig: k8s.kubeconfig, caSecret: REPLICAS_CA_SECRET, replicaLeaseSeconds: LEASE_S, replicaLeaseCollectAfterMs: 1_000 } });
    await waitFor(() => c.snapshot().nodes.find((n) => n.node === 'node-x')?.online === false, (LEASE_S + 10) * 1000, 'C marking node-x offline');
    const cMs = Date.now() - startedC;
    assert.ok(cMs >= LEASE_S * 1000, `not before a full duration after C started (${cMs} ms)`);
    assert.equal(c.kubernetes!.leases.marked, 1);
    // C was told to collect Leases 1 s past their expiry: A's goes, at the resourceVersion C saw.
    await waitFor(() => c.kubernetes!.leases.collected === 1, 10_000, 'A\'s Lease collected');
    assert.ok(!leaseHolders().includes(holderA), 'A\'s Lease is gone from the API');
    assert.equal(online('node-x')(y.latest()!), false, 'B still holds it offline: a deleted Lease is as dead');

    // The agent of node-x reconnects, to B: a newer session, so its node is back everywhere.
    await x.close();
    const x2 = client(stack, { url: b.url, caPem: b.ca.certPem, node: 'node-x', nodeAddress: '192.168.60.1', dataDir: agentDirX });
    x2.setWorkloads([web]);
    await x2.start();
    await snapshotWhere(y, (s) => online('node-x')(s) === true && has(web.ip)(s), 5_000);
    await waitFor(() => (k8s.api.get('palisade.dev/v1/palisaderegistrations', '', 'node-x') as unknown as { spec: { stamp: { replica: string } } }).spec.stamp.replica === b.snapshot().epoch, 5_000, 'node-x\'s object written by B');
    assert.equal(b.kubernetes!.leases.marked, 1, 'nothing more marked');
  });

  it('a replica renewing its Lease never has a node marked offline (2 s Lease, 8 s); one that stops cleanly deletes its Lease', async function () {
    const [dataA, dataB] = [dirs.make(), dirs.make()];
    const [a, b] = await Promise.all([replica(dataA, new LogCapture(), 2), replica(dataB, new LogCapture(), 2)]);
    const { y } = await agents(a, dataA, b, dataB);
    let wentOffline = 0;
    y.on('registry', (s: RegistrySnapshot) => {
      if (online('node-x')(s) === false) wentOffline += 1;
    });
    await new Promise((r) => setTimeout(r, 8_000));
    assert.equal(wentOffline, 0, 'node-x never offline at B\'s agent');
    assert.deepEqual([a.kubernetes!.leases.marked, b.kubernetes!.leases.marked], [0, 0]);
    assert.deepEqual([a.kubernetes!.leases.dead(), b.kubernetes!.leases.dead()], [[], []]);
    assert.ok(a.kubernetes!.lease.renewals >= 10, `A renewed every third of its duration (${a.kubernetes!.lease.renewals})`);
    assert.deepEqual(leaseHolders(), [a.snapshot().epoch, b.snapshot().epoch].sort());

    await a.stop();
    assert.deepEqual(leaseHolders(), [b.snapshot().epoch], 'A deleted its Lease');
  });

  it('a replica cut off from the API marks nobody offline, and publishes its nodes again when its Lease had lapsed', async function () {
    const [dataA, dataB] = [dirs.make(), dirs.make()];
    const logsA = new LogCapture();
    const [a, b] = await Promise.all([replica(dataA, logsA, 1), replica(dataB, new LogCapture(), 1)]);
    const { y } = await agents(a, dataA, b, dataB);
    // The API answers nobody for 3 s (three Lease durations): renewals fail, watches are cut and hang.
    const removeFault = k8s.api.addFault({ hang: true });
    k8s.api.dropWatches('reset');
    await new Promise((r) => setTimeout(r, 3_000));
    assert.deepEqual([a.kubernetes!.leases.marked, b.kubernetes!.leases.marked], [0, 0], 'no replica judged another while it could not see the API');
    assert.equal(online('node-x')(y.latest()!), true, 'agents keep working with what they have');
    assert.ok(logsA.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('this replica\'s Lease was not renewed for its duration')), 'A says its Lease lapsed');
    const objectBefore = k8s.api.get('palisade.dev/v1/palisaderegistrations', '', 'node-x') as unknown as { spec: { stamp: { seq: number } } };
    removeFault();
    k8s.api.dropWatches('reset');
    await waitFor(() => (k8s.api.get('palisade.dev/v1/palisaderegistrations', '', 'node-x') as unknown as { spec: { stamp: { seq: number } } }).spec.stamp.seq > objectBefore.spec.stamp.seq, 10_000, 'A publishing node-x again after its Lease lapsed');
    await new Promise((r) => setTimeout(r, 2_500));
    assert.deepEqual([a.kubernetes!.leases.marked, b.kubernetes!.leases.marked], [0, 0], 'nor after: each saw the other renew again');
    assert.equal(online('node-x')(y.latest()!), true);
  });

  it('palisade status at B: both replicas\' Leases, B\'s judgement of each and their nodes; A stopped cleanly is dead with its node offline there', async function () {
    const [dataA, dataB] = [dirs.make(), dirs.make()];
    const [a, b] = await Promise.all([replica(dataA, new LogCapture(), 2), replica(dataB, new LogCapture(), 2)]);
    await agents(a, dataA, b, dataB);
    const caFile = `${dirs.make()}/ca.crt`;
    fs.writeFileSync(caFile, b.ca.certPem); // the CA is the shared Secret's, not in the data directory
    const env = { PALISADE_COLLECTOR: b.apiUrl, PALISADE_TOKEN: b.adminToken, PALISADE_CA: caFile };
    const status = async (): Promise<{ rows: ReplicaStatus[]; table: string }> => {
      const json = await runCli(['status', '-o', 'json'], { env } as never);
      assert.equal(json.code, 0, json.stderr);
      const table = await runCli(['status'], { env } as never);
      return { rows: (JSON.parse(json.stdout) as StatusResponse).kubernetes?.replicas ?? [], table: table.stdout };
    };
    const [idA, idB] = [a.snapshot().epoch, b.snapshot().epoch];
    const judged = (rows: ReplicaStatus[]): string[] => rows.map((r) => `${r.replica === idA ? 'A' : r.replica === idB ? 'B' : r.replica}:${r.judgement}:${r.lease}:${r.nodes}/${r.offline}`);
    // B judges nobody for one duration after it started (and the Leases come through its watch).
    let seen = await status();
    const until = (want: string): Promise<unknown> =>
      poll(async () => judged((seen = await status()).rows).join() === want, 10_000, { intervalMs: 200, what: want }).catch((err: Error) => {
        throw new Error(`${err.message}; last: ${judged(seen.rows).join()}`);
      });
    await until('B:self:held:1/0,A:alive:held:1/0');
    const a1 = seen.rows.find((r) => r.replica === idA)!;
    assert.ok(a1.renewedAgoMs! >= 0 && a1.renewedAgoMs! <= 2_000 + 1_000, `A renewed ${a1.renewedAgoMs} ms ago (every third of 2 s)`);
    assert.equal(a1.durationMs, 2_000);
    assert.match(seen.table, new RegExp(`^REPLICA +LEASE +RENEWED +JUDGED +NODES$`, 'm'));
    assert.match(seen.table, new RegExp(`^${idB} \\(answering\\) +held, 2 s +\\d+\\.\\d s ago +self +1$`, 'm'));
    assert.match(seen.table, new RegExp(`^${idA} +held, 2 s +\\d+\\.\\d s ago +alive +1$`, 'm'));

    await a.stop();
    await until('B:self:held:1/0,A:dead:deleted:1/1');
    // the last renewal B saw before the deletion
    assert.match(seen.table, new RegExp(`^${idA} +deleted +\\d+\\.\\d s ago +dead: its Lease was deleted +1 \\(1 offline here\\)$`, 'm'));
  });
});
