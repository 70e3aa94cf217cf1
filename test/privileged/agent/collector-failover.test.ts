/**
 * Collector replicas under traffic: two real collector processes in Kubernetes mode (`--kubernetes
 * --ca-secret`, both started at once against the Kubernetes API double: one CA from one Secret),
 * each with its own store; two real agents given both (`--collector A --collector B`), a client
 * polling a strict web pod over HBONE. Replica A is killed (SIGKILL) mid-traffic: the agents move
 * to B, no request fails, the certificates keep working, and for each node produced = stored(A ∪ B)
 * + lost exactly, a flow both replicas stored being the same flow (node + origin). `palisade
 * observe` over both shows every flow once, and names a replica that does not answer.
 *
 * The replicas share the CA and the node records through the API (PalisadeNode objects): the
 * nodes join through A only, and B accepts them from the records A wrote — no copy of A's files,
 * no new join.
 */
import { strict as assert } from 'node:assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FLOWS_DB_FILE, openFlowReader, scanFlows } from '../../../collector/flows/store';
import { ANY_SCOPE } from '../../../collector/nodes/node-binding';
import { NodeRecords } from '../../../collector/nodes/node-records';
import { TokenStore } from '../../../collector/tokens';
import { mergeFlowPages } from '../../../cli/flow-merge';
import type { StoredFlow } from '../../../common/flows-api';
import {
  cliPath,
  fixturePath,
  JsonLines,
  nodeMetric,
  requirePrivileges,
  startAgentProcess,
  startWebApp,
  sweepStale,
  tearDown,
  tempDir,
  Topology,
  waitFor,
  type AgentProcess,
  type NodeNs,
  type PodNs,
} from '../../harness';
import { KubeApiDouble } from '../../harness/kube-api-double';
import { installCrds } from '../../harness/kube-crds';

const CA_SECRET = 'palisade-system/palisade-ca';
const TRAFFIC_S = 16;
const KILL_AFTER_MS = 5_000;

interface Replica {
  name: string;
  dataDir: string;
  socket: string;
  child: ChildProcess;
  logs: JsonLines;
  apiUrl: string;
  exited: Promise<void>;
}

describe('collector replicas: agents fail over under traffic (two collector processes, Kubernetes mode, real eBPF)', function () {
  this.timeout(300_000);
  let dir: string;
  let api: KubeApiDouble;
  let kubeconfig: string;
  let caFile: string;
  let topo: Topology;
  let n1: NodeNs;
  let n2: NodeNs;
  let client: PodNs;
  let web: PodNs;
  let a: Replica;
  let b: Replica;
  let agents: AgentProcess[];

  async function startReplica(name: string): Promise<Replica> {
    const dataDir = path.join(dir, name);
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const socket = path.join(dir, `${name}.sock`);
    const args = [cliPath(), 'collector', '--data', dataDir, '--listen', '127.0.0.1:0', '--agent-socket', socket, '--kubernetes', '--kubeconfig', kubeconfig, '--ca-secret', CA_SECRET];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const logs = new JsonLines(child.stderr!);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const ready = await Promise.race([
      logs.waitFor<{ address: string }>((l) => l?.msg === 'collector ready', 120_000),
      exited.then(() => {
        throw new Error(`collector ${name} exited before ready: ${logs.other.join(' | ')} ${JSON.stringify(logs.lines.slice(-3))}`);
      }),
    ]);
    return { name, dataDir, socket, child, logs, apiUrl: `https://${ready.address}`, exited };
  }

  async function kill(r: Replica): Promise<void> {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await r.exited;
  }

  /** Every flow a replica stored: read from its database, read-only (while it runs, or after it died). */
  function stored(r: Replica): StoredFlow[] {
    const db = openFlowReader(path.join(r.dataDir, FLOWS_DB_FILE));
    try {
      return [...scanFlows(db, {}, 1_000_000)];
    } finally {
      db.close();
    }
  }

  /** A meshed agent serves its metrics on the node's address. */
  const metric = (node: NodeNs, name: string): Promise<number> => nodeMetric(topo, node, `${node.underlayIp}:15020`, name);

  function observe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const token = path.join(a.dataDir, 'admin.token');
    return new Promise((resolve) => {
      execFile(process.execPath, [cliPath(), 'observe', ...args, '--token-file', token, '--ca', caFile], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  before(async function () {
    requirePrivileges();
    sweepStale();
    dir = tempDir('replicas');
    api = await KubeApiDouble.start({ token: `double-${process.pid}` });
    api.create('v1/namespaces', { metadata: { name: 'palisade-system' } });
    installCrds(api);
    kubeconfig = path.join(dir, 'kubeconfig');
    api.writeKubeconfig(kubeconfig);
    // One admin token for both (each reads <data>/admin.token): observe asks both with it.
    const adminToken = `pla_${Buffer.alloc(32, 7).toString('base64url')}\n`;
    for (const name of ['a', 'b']) {
      fs.mkdirSync(path.join(dir, name), { mode: 0o700 });
      fs.writeFileSync(path.join(dir, name, 'admin.token'), adminToken, { mode: 0o600 });
    }
    [a, b] = await Promise.all([startReplica('a'), startReplica('b')]);
    const secret = api.get('v1/secrets', 'palisade-system', 'palisade-ca') as unknown as { data: Record<string, string> };
    caFile = path.join(dir, 'ca.crt');
    fs.writeFileSync(caFile, Buffer.from(secret.data['ca.crt']!, 'base64'));

    topo = await Topology.create({ label: 'replicas', nodes: 2 });
    [n1, n2] = topo.nodes as [NodeNs, NodeNs];
    client = await topo.addPod(n1, 'client');
    web = await topo.addPod(n2, 'web');
    await startWebApp(topo, web, 'web');
    // In Kubernetes mode the collectors are node authorizers: each workload is a pod the API places on its node.
    for (const [node, pod, serviceAccount] of [[n1, client, 'client'], [n2, web, 'web']] as const) {
      api.create('v1/pods', { metadata: { name: pod.name, namespace: 'default' }, spec: { nodeName: node.name, serviceAccountName: serviceAccount, containers: [{ name: 'app', image: 'app' }] } });
      api.patch('v1/pods', 'default', pod.name, { status: { podIP: pod.ip, podIPs: [{ ip: pod.ip }], phase: 'Running' } }, { status: true });
    }
    agents = [];
    for (const [node, pods] of [
      [n1, [{ pod: client, serviceAccount: 'client' }]],
      [n2, [{ pod: web, serviceAccount: 'web', strict: true }]],
    ] as const) {
      const tokenFile = path.join(dir, `${node.name}.token`);
      fs.writeFileSync(tokenFile, new TokenStore(a.dataDir).create({ node: node.name, scopes: [ANY_SCOPE], nodeCidr: node.podCidr }, 10 * 60_000).token, { mode: 0o600 });
      agents.push(
        startAgentProcess(topo, node, {
          pods: [...pods],
          readyTimeoutMs: 60_000,
          mesh: { collectorSocket: a.socket, moreCollectorSockets: [b.socket], caFile, tokenFile, dataDir: path.join(dir, `${node.name}-data`) },
        }),
      );
    }
    await Promise.all(agents.map((x) => x.ready));
    // A wrote the nodes' records to the API (PalisadeNode); B hears of them through its watch.
    const atB = new NodeRecords(b.dataDir);
    await waitFor(() => [n1, n2].every((n) => atB.record(n.name) !== undefined), 10_000, { what: 'B knows the nodes A let join' });
  });

  after(async function () {
    await tearDown({ agents: agents ?? [], topo });
    for (const r of [a, b]) if (r) await kill(r);
    await api?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('kill replica A under traffic: the agents move to B, no request fails, produced = stored(A ∪ B) + lost, none twice', async function () {
    const poll = topo.spawn(client, process.execPath, [fixturePath('http-poll.js'), web.ip, '8080', '/', '50', String(TRAFFIC_S)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const polls = new JsonLines(poll.stdout!);
    await new Promise((r) => setTimeout(r, KILL_AFTER_MS));
    const killedAt = Date.now();
    await kill(a);
    const moved = await Promise.all(
      agents.map((x) => x.logs.waitFor<{ time: string }>((l) => l?.msg === 'connected to the collector' && l.collector === `unix:${b.socket}`, 20_000)),
    );
    const failoverMs = moved.map((l) => Date.parse(l.time) - killedAt);
    const done = await polls.waitFor<{ requests: number }>((l) => l?.event === 'done', (TRAFFIC_S + 20) * 1000);
    assert.deepEqual(
      polls.lines.filter((l) => typeof (l as { status?: number }).status === 'number').map((l) => (l as { status: number }).status),
      [200],
      'every request answered 200, across the failover (mTLS with the certificates the agents had)',
    );
    assert.ok(done.requests > TRAFFIC_S * 10, `${done.requests} requests`);

    const fromA = stored(a);
    const account = async (node: NodeNs): Promise<{ produced: number; lost: number; unique: number; both: number; inA: number; inB: number }> => {
      let last = { produced: -1, lost: 0, unique: 0, both: 0, inA: 0, inB: 0 };
      await waitFor(
        async () => {
          const produced = await metric(node, 'palisade_flows_produced_total');
          const lost = await metric(node, 'palisade_flows_lost_total');
          const mineA = fromA.filter((f) => f.node === node.name);
          const mineB = stored(b).filter((f) => f.node === node.name);
          const merged = mergeFlowPages([mineA, mineB], 1_000_000);
          last = { produced, lost, unique: merged.flows.length, both: merged.duplicates, inA: mineA.length, inB: mineB.length };
          return produced === merged.flows.length + lost || undefined;
        },
        30_000,
        { what: `${node.name}: produced = stored(A ∪ B) + lost (last ${JSON.stringify(last)})` },
      );
      return last;
    };
    const s1 = await account(n1);
    const s2 = await account(n2);
    process.stdout.write(`      failover after SIGKILL: ${failoverMs.join(', ')} ms; node-1 ${JSON.stringify(s1)}; node-2 ${JSON.stringify(s2)}\n`);
    for (const s of [s1, s2]) {
      assert.equal(s.lost, 0, 'nothing lost: the buffers held what was in flight');
      assert.ok(s.inA > 0 && s.inB > 0, 'flows stored on both sides of the failover');
    }
    assert.ok(s1.produced >= done.requests, 'node-1 produced a flow per connection');
    // (the per-pod filters' packet summaries are flows too: only the client's connections to web count here)
    const after = stored(b).filter((f) => f.node === n2.name && f.direction === 'inbound' && f.source.ip === client.ip && f.destination.port === 8080 && Date.parse(f.time) > killedAt);
    const plain = after.filter((f) => !f.mtls);
    assert.ok(after.length > 0 && plain.length === 0, `after the failover the requests still arrive over mTLS (${after.length} requests, not mTLS: ${JSON.stringify(plain.slice(0, 2))})`);
  });

  it('observe over both replicas shows every flow once; a replica that does not answer is named', async function () {
    a = await startReplica('a');
    // node-1 keeps reporting (its pods' packet summaries): what observe shows lies between two readings of the stores.
    const mine = (r: Replica): StoredFlow[] => stored(r).filter((f) => f.node === n1.name);
    const key = (f: StoredFlow): string => `${f.node} ${f.origin}`;
    const args = ['--collector', a.apiUrl, '--collector', b.apiUrl, '--node', n1.name, '--last', '10000', '-o', 'json'];
    const before = mergeFlowPages([mine(a), mine(b)], 1_000_000).flows;
    const both = await observe(args);
    const after = mergeFlowPages([mine(a), mine(b)], 1_000_000).flows;
    assert.equal(both.code, 0, both.stderr);
    const shown = JSON.parse(both.stdout) as StoredFlow[];
    const keys = new Set(shown.map(key));
    assert.equal(keys.size, shown.length, 'no flow shown twice');
    assert.ok(before.every((f) => keys.has(key(f))), 'every flow of node-1 stored before, from both replicas');
    assert.ok(shown.length <= after.length && shown.every((f) => after.some((x) => key(x) === key(f))), 'nothing else');
    assert.ok(shown.some((f) => mine(a).some((x) => key(x) === key(f))) && shown.some((f) => mine(b).some((x) => key(x) === key(f))), 'from both');

    await kill(a);
    const fromB = mine(b);
    const one = await observe(args);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stderr, new RegExp(`collector ${a.apiUrl.replace(/[.]/g, '\\.')} did not answer`));
    const shownB = new Set((JSON.parse(one.stdout) as StoredFlow[]).map(key));
    assert.ok(fromB.every((f) => shownB.has(key(f))), 'B\'s flows, all of them');
  });
});
