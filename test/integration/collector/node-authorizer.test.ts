/**
 * The collector as node authorizer (issue #15, item 1) with its Kubernetes source: a node
 * registers a workload, and gets its certificate, only for a pod the API says runs on that node
 * as that namespace and service account (at that IP once the API has one). Real collector, real
 * agents' client, the real @kubernetes/client-node against the Kubernetes API double.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import type { CollectorClient } from '../../../agent/mesh/collector-client';
import type { RunningCollector } from '../../../collector/collector';
import type { AuditRecord } from '../../../common/control-api';
import { PalisadeError } from '../../../common/errors';
import { createCsr, generateKeyPair, type KeyPair } from '../../../common/pki';
import { KubeApiDouble } from '../../harness/kube-api-double';
import { client, collector, joinedNodeDir, LogCapture, snapshotWhere, useCollectorSuite, waitFor, workload } from './helpers';

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';

const refused = (re: RegExp) => (err: unknown) => err instanceof PalisadeError && err.code === 'PALISADE_ERR_CSR_REFUSED' && re.test(err.message);
/** The next `collector-error` the client reports. */
const nextError = (c: CollectorClient): Promise<PalisadeError> => new Promise((resolve) => c.once('collector-error', resolve));

describe('collector: node authorizer from the Kubernetes API (double)', function () {
  this.timeout(60_000);
  const { dirs, stack, dataDir } = useCollectorSuite();
  let api: KubeApiDouble;
  let kubeconfig: string;
  let data: string;
  let logs: LogCapture;
  let key: KeyPair;

  before(async () => {
    key = await generateKeyPair();
  });

  beforeEach(async () => {
    api = await KubeApiDouble.start({ token: 'collector' });
    stack.push(() => api.close());
    kubeconfig = path.join(dirs.make('kubeconfig-'), 'kubeconfig');
    api.writeKubeconfig(kubeconfig);
    data = dataDir();
    logs = new LogCapture();
  });

  /** A pod as the scheduler and the kubelet leave it: on `node`, then (with `ip`) Running at that address. */
  function pod(name: string, node: string, serviceAccount: string, ip?: string): void {
    api.create('v1/pods', { metadata: { name, namespace: 'default' }, spec: { nodeName: node, serviceAccountName: serviceAccount, containers: [{ name: 'app', image: 'app' }] } });
    if (ip) setIp(name, ip);
  }
  const setIp = (name: string, ip: string): void => void api.patch('v1/pods', 'default', name, { status: { podIP: ip, podIPs: [{ ip }], phase: 'Running' } }, { status: true });

  async function start(opts: { synced?: boolean } = {}): Promise<RunningCollector> {
    const col = await collector(stack, { dataDir: data, log: logs.logger, kubernetes: { kubeconfig } });
    if (opts.synced !== false) await col.kubernetes!.synced();
    return col;
  }

  async function node(col: RunningCollector, name: string): Promise<CollectorClient> {
    const dir = await joinedNodeDir(dirs, col, data, name);
    const c = client(stack, { url: col.url, caPem: col.ca.certPem, node: name, dataDir: dir });
    await c.start();
    return c;
  }

  const ask = (c: CollectorClient, identity: string, name: string) => c.requestCertificate(identity, createCsr(key, { commonName: name, uri: identity }));
  const trust = (col: RunningCollector, event: string): AuditRecord[] => col.audit.list({ kind: 'trust-refusal' }).filter((r) => r.data.event === event);
  const registered = (col: RunningCollector): string[] => col.snapshot().workloads.map((w) => `${w.name}@${w.ip}`);

  it('no workload and no certificate for a service account no pod on the node runs (bug: any node got spiffe://…/sa/client); the pod created there allows them, its move or deletion refuses them again', async () => {
    pod('web-1', 'node-a', 'web', '10.0.1.11');
    pod('client-1', 'node-b', 'client', '10.0.2.11'); // client runs, but on another node
    const col = await start();
    const a = await node(col, 'node-a');
    const err = nextError(a);
    a.setWorkloads([workload('web-1', '10.0.1.11', 'web'), workload('client-1', '10.0.1.12', 'client')]);
    assert.equal((await err).message, 'registration refused for default/client-1: no pod of service account default/client at 10.0.1.12 runs on node node-a');
    await waitFor(() => registered(col).join() === 'web-1@10.0.1.11', 5_000, 'web-1 registered');
    const reg = trust(col, 'registration');
    assert.equal(reg.length, 1);
    assert.equal(reg[0]!.actor, 'node:node-a');
    assert.equal(reg[0]!.data.reason, '1 of 2 workloads refused: default/client-1: no pod of service account default/client at 10.0.1.12 runs on node node-a');
    await assert.rejects(ask(a, CLIENT, 'client'), refused(/is not the identity of a workload registered on node node-a/));
    assert.equal(trust(col, 'csr').length, 1, 'the refused certificate is an audit record');
    assert.ok((await ask(a, WEB, 'web')).certPem.startsWith('-----BEGIN CERTIFICATE-----'));

    // The pod is created on node-a: the same registration is admitted, without the agent sending it again.
    pod('client-2', 'node-a', 'client');
    await waitFor(() => registered(col).includes('client-1@10.0.1.12'), 5_000, 'client admitted once its pod runs on node-a');
    assert.ok((await ask(a, CLIENT, 'client')).certPem.startsWith('-----BEGIN CERTIFICATE-----'));
    assert.equal(trust(col, 'registration').length, 1, 'no refusal recorded for an admission');

    // Its IP, once the kubelet sets it, must be the registered one.
    setIp('client-2', '10.0.1.99');
    await waitFor(() => !registered(col).includes('client-1@10.0.1.12'), 5_000, 'client refused at an address its pod does not have');
    await assert.rejects(ask(a, CLIENT, 'client'), refused(/./));
    assert.match(String(trust(col, 'registration').at(-1)!.data.reason), /default\/client-1: no pod of service account default\/client at 10\.0\.1\.12 runs on node node-a$/);

    // web-1 is deleted and a pod of the same name runs on node-b now: node-a's web is refused.
    api.delete('v1/pods', 'default', 'web-1');
    pod('web-1', 'node-b', 'web', '10.0.2.12');
    await waitFor(() => registered(col).length === 0, 5_000, 'web refused once its pod left node-a');
    await assert.rejects(ask(a, WEB, 'web'), refused(/is not the identity of a workload registered on node node-a/));
    const reasons = trust(col, 'csr').map((r) => String(r.data.reason));
    assert.equal(reasons.length, 3);
    assert.ok(logs.find('workloads refused', { node: 'node-a' }));
  });

  it('the pods not listed yet: a registration waits and certificates are refused (fail closed); once listed, they are decided', async () => {
    pod('web-1', 'node-a', 'web', '10.0.1.11');
    const unlisted = api.addFault({ method: 'GET', path: /^\/api\/v1\/pods$/, watch: false, status: 503, reason: 'ServiceUnavailable' });
    const col = await start({ synced: false });
    const a = await node(col, 'node-a');
    a.setWorkloads([workload('web-1', '10.0.1.11', 'web')]);
    await waitFor(() => logs.find('registration waits for the first list of the cluster\'s pods', { node: 'node-a' }), 5_000, 'the registration held');
    await assert.rejects(ask(a, WEB, 'web'), refused(/^csr refused: the collector has not listed the cluster's pods yet: no workload certificates until it has \(fail closed\)$/));
    assert.deepEqual(registered(col), []);
    assert.equal(trust(col, 'csr').length, 1);
    assert.equal(col.kubernetes!.status().synced, false);

    unlisted();
    await snapshotWhere(a, (s) => s.workloads.length === 1, 15_000);
    assert.deepEqual(registered(col), ['web-1@10.0.1.11']);
    assert.ok((await ask(a, WEB, 'web')).certPem.startsWith('-----BEGIN CERTIFICATE-----'));
    assert.equal(trust(col, 'registration').length, 0, 'nothing refused: the registration waited');
  });

  it('the API away after the sync: what it said stays (certificates for known pods still issued, nothing revoked), a pod it never said runs gets none', async () => {
    pod('web-1', 'node-a', 'web', '10.0.1.11');
    const col = await start();
    const a = await node(col, 'node-a');
    a.setWorkloads([workload('web-1', '10.0.1.11', 'web')]);
    await waitFor(() => registered(col).length === 1, 5_000, 'web-1 registered');
    await ask(a, WEB, 'web');

    const down = api.addFault({ status: 503, reason: 'ServiceUnavailable' });
    api.dropWatches('reset');
    pod('client-1', 'node-a', 'client', '10.0.1.12'); // created while the collector cannot see it
    await new Promise((r) => setTimeout(r, 600));
    const err = nextError(a);
    a.setWorkloads([workload('web-1', '10.0.1.11', 'web'), workload('client-1', '10.0.1.12', 'client')]);
    assert.match((await err).message, /default\/client-1: no pod of service account default\/client at 10\.0\.1\.12 runs on node node-a/);
    assert.ok((await ask(a, WEB, 'web')).certPem.startsWith('-----BEGIN CERTIFICATE-----'), 'web-1 keeps its certificates through the outage');
    await assert.rejects(ask(a, CLIENT, 'client'), refused(/./));
    assert.deepEqual(registered(col), ['web-1@10.0.1.11']);

    down();
    await waitFor(() => registered(col).length === 2, 15_000, 'client-1 admitted once the API answers again');
    assert.ok((await ask(a, CLIENT, 'client')).certPem.startsWith('-----BEGIN CERTIFICATE-----'));
  });
});
