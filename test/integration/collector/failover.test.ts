/**
 * Two collector replicas in Kubernetes mode (the CA from one Secret in the API double), each with
 * its own store: an agent given both addresses joins at the first, and when that one goes away
 * under a steady flow of records it moves to the second at once, keeps its node certificate, gets
 * workload certificates there that chain to the same CA, and its reporter resends what was not
 * acknowledged — so produced = stored(A) ∪ stored(B) + lost exactly, and a flow both stored is
 * the same flow (same node + origin), shown once by observe's merge.
 *
 * The replicas share the CA and the node records through the API (PalisadeNode objects,
 * collector/kubernetes/node-records-share.ts): B accepts the node A let join, with no copy of
 * A's files and no new join.
 */
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { FlowReporter } from '../../../agent/flows/reporter';
import { nodeCertPath } from '../../../agent/mesh/node-identity';
import { mergeFlowPages } from '../../../cli/flow-merge';
import type { RunningCollector } from '../../../collector/collector';
import { FLOWS_DB_FILE, FlowStore } from '../../../collector/flows/store';
import type { FlowRecord } from '../../../common/flow';
import type { StoredFlow } from '../../../common/flows-api';
import { createCsr, generateKeyPair } from '../../../common/pki';
import { NodeRecords } from '../../../collector/nodes/node-records';
import { numberedFlow } from './flows-fixtures';
import { REPLICAS_CA_SECRET, useReplicasApi } from './kube-collector';
import { client, collector, LogCapture, token, useCollectorSuite, waitFor, workload } from './helpers';

const NODE = 'node-f';

const record = (n: number): FlowRecord => numberedFlow(NODE, n);

/** Every flow a stopped collector stored (its database, opened again read-write by the test). */
async function storedIn(dataDir: string): Promise<StoredFlow[]> {
  const store = FlowStore.open({ file: path.join(dataDir, FLOWS_DB_FILE), log: pino({ level: 'silent' }) });
  try {
    return [...store.scan({}, 1_000_000)];
  } finally {
    await store.close();
  }
}

describe('collector replicas: an agent fails over between two collectors sharing one CA', function () {
  this.timeout(60_000);
  const { dirs, stack } = useCollectorSuite();
  const k8s = useReplicasApi(dirs, stack);

  beforeEach(async function () {
    // In Kubernetes mode the collector is the node authorizer: the workload is a pod on the node.
    k8s.api.create('v1/pods', { metadata: { name: 'web', namespace: 'default' }, spec: { nodeName: NODE, serviceAccountName: 'web', containers: [{ name: 'web', image: 'web' }] } });
  });

  const replica = (dataDir: string, logs: LogCapture): Promise<RunningCollector> =>
    collector(stack, { dataDir, log: logs.logger, kubernetes: { kubeconfig: k8s.kubeconfig, caSecret: REPLICAS_CA_SECRET } });

  it('under a steady flow of records: moves to B at once, keeps its certificates, produced = stored(A ∪ B) + lost', async function () {
    const [dataA, dataB] = [dirs.make(), dirs.make()];
    const logs = new LogCapture();
    const [a, b] = await Promise.all([replica(dataA, logs), replica(dataB, logs)]);
    assert.equal(a.ca.certPem, b.ca.certPem, 'one CA, from the Secret');

    const agentDir = dirs.make('palisade-agent-');
    const agentLogs = new LogCapture();
    const c = client(stack, { url: [a.url, b.url], caPem: a.ca.certPem, node: NODE, dataDir: agentDir, joinToken: token(dataA, NODE), log: agentLogs.logger });
    c.setWorkloads([workload('web', '10.7.0.1')]);
    await c.start();
    assert.equal(c.collector, a.url, 'the first address first');
    // A wrote the node's record to the API; B hears of it through its watch.
    await waitFor(() => new NodeRecords(dataB).record(NODE) !== undefined, 5_000, 'B knows the node A let join (PalisadeNode)');
    assert.equal((k8s.api.get('palisade.dev/v1/palisadenodes', '', NODE) as { spec?: { record?: { node?: string } } } | undefined)?.spec?.record?.node, NODE, 'the PalisadeNode object A wrote');
    const nodeCert = fs.readFileSync(nodeCertPath(agentDir), 'utf8');

    const reporter = new FlowReporter({ log: pino({ level: 'silent' }), batchSize: 50, flushIntervalMs: 20 });
    reporter.start(c);
    stack.push(() => reporter.close());
    let produced = 0;
    const producing = setInterval(() => {
      for (let i = 0; i < 5; i++) reporter.record(record(++produced));
    }, 2);
    stack.push(() => clearInterval(producing));

    await waitFor(() => reporter.stats().acknowledged > 500, 10_000, 'flows stored at A');
    const moved = new Promise<void>((resolve) => c.once('connected', () => resolve()));
    const stoppedAt = Date.now();
    await a.stop();
    await moved;
    const failoverMs = Date.now() - stoppedAt;
    assert.equal(c.collector, b.url, 'moved to the second address');
    await waitFor(() => b.flows.rows() > 0, 5_000, 'flows stored at B');
    await new Promise((r) => setTimeout(r, 300)); // traffic goes on at B
    clearInterval(producing);
    assert.ok(await reporter.settled(10_000), 'every record acknowledged or counted');

    // Certificates: the node's is the one it joined with; a workload's, asked of B, chains to the same CA.
    assert.equal(fs.readFileSync(nodeCertPath(agentDir), 'utf8'), nodeCert, 'no new join, same node certificate');
    const key = await generateKeyPair();
    const identity = 'spiffe://cluster.local/ns/default/sa/web';
    const issued = await c.requestCertificate(identity, createCsr(key, { commonName: 'web', uri: identity }));
    assert.ok(new X509Certificate(issued.certPem).verify(new X509Certificate(a.ca.certPem).publicKey), 'B signs with the shared CA');

    const stats = reporter.stats();
    const fromA = await storedIn(dataA);
    const fromB = [...b.flows.scan({}, 1_000_000)];
    const merged = mergeFlowPages([fromA, fromB], 1_000_000);
    const tags = new Set(merged.flows.map((f) => f.bytesSent));
    process.stdout.write(
      `      produced ${stats.produced}, stored A ${fromA.length} + B ${fromB.length}, both ${merged.duplicates}, lost ${stats.lost}, resent ${stats.resent}; failover ${failoverMs} ms\n`,
    );
    assert.equal(stats.produced, produced);
    assert.equal(stats.lost, 0, 'nothing lost: the buffer held what was in flight');
    assert.equal(merged.flows.length, produced, 'produced = stored(A ∪ B) + lost');
    assert.equal(tags.size, produced, 'every record once');
    assert.ok(fromA.length > 0 && fromB.length > 0, 'both replicas stored some');
    assert.equal(fromA.length + fromB.length - merged.duplicates, produced, 'a flow both stored is the same flow (node + origin)');
    assert.ok(agentLogs.find('collector connection closed, reconnecting', { next: b.url }), 'the agent said where it went');
  });
});
