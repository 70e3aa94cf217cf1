/**
 * Policy changes through the collector's API in Kubernetes mode go to the Kubernetes API (the API
 * double, driven by the real client-node), the store two collector replicas serving at once share
 * (collector/kubernetes/policy-writes.ts): `policy apply` at replica A is in force at replica B —
 * B's agent gets it — and `policy delete` at B removes it at A; a change made on a stale view is
 * answered 409 in one line, with what it had written rolled back; the API away refuses the change
 * with nothing applied; bad input is one line with nothing written to the API; and a policy a
 * collector stored before (origin api) is published to the API when it starts in Kubernetes mode.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunningCollector } from '../../../collector/collector';
import { APPLIED_BY } from '../../../collector/kubernetes/policy-objects';
import { podOn, REPLICAS_CA_SECRET, useReplicasApi } from './kube-collector';
import type { WorkloadRegistration } from '../../../common/mesh-protocol';
import { client, collector, LogCapture, snapshotWhere, token, useCollectorSuite, waitFor, workload } from './helpers';
import { adminAuthor, cliFor, egressYaml, frameNames, listPolicies, refused, writeFile, type Cli, type PolicyFrame } from './policies-fixtures';

const AP = 'security.istio.io/v1/authorizationpolicies';
const EGP = 'palisade.dev/v1/egresspolicies';
/** How long a change made at one replica may take to reach the other's agent (it travels API → watch → push). */
const BOUND_MS = 3_000;

const denyYaml = (name: string, path: string): string => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules: [{to: [{operation: {paths: [${path}]}}]}]
`;

interface Replica {
  col: RunningCollector;
  data: string;
  cli: Cli;
  /** The `policies` frames its agent received. */
  frames: PolicyFrame[];
}

describe('collector replicas store policy changes made through their API in the Kubernetes API', function () {
  this.timeout(60_000);
  const { dirs, stack } = useCollectorSuite();
  const k8s = useReplicasApi(dirs, stack, { istio: true });

  const start = async (name: string, data = dirs.make(), workloads: WorkloadRegistration[] = [], inForceMs?: number): Promise<Replica> => {
    const kubernetes = { kubeconfig: k8s.kubeconfig, caSecret: REPLICAS_CA_SECRET, replica: name, ...(inForceMs === undefined ? {} : { policyInForceTimeoutMs: inForceMs }) };
    const col = await collector(stack, { dataDir: data, log: new LogCapture().logger, kubernetes });
    await col.kubernetes!.synced();
    const session = client(stack, { url: col.url, caPem: col.ca.certPem, node: `node-${name}`, dataDir: dirs.make('palisade-agent-'), joinToken: token(data, `node-${name}`) });
    const frames: PolicyFrame[] = [];
    session.on('policies', (p: PolicyFrame) => frames.push(p));
    // The API places the pod on the node (the replicas are node authorizers in Kubernetes mode).
    for (const w of workloads) podOn(k8s.api, w, `node-${name}`);
    session.setWorkloads(workloads);
    await session.start();
    if (workloads.length > 0) await snapshotWhere(session, (s) => s.workloads.length === workloads.length);
    // The CA comes from the Secret, not the data directory: the CLI is given its certificate.
    fs.writeFileSync(path.join(data, 'ca.crt'), col.ca.certPem);
    return { col, data, cli: cliFor(col, data, dirs.make('palisade-home-')), frames };
  };
  /** The policies of the agent's latest frame. */
  const atAgent = (r: Replica): string[] => (r.frames.length === 0 ? [] : frameNames(r.frames[r.frames.length - 1]!));
  const stored = async (r: Replica): Promise<string[]> => (await listPolicies(r.cli)).policies.map((p) => `${p.kind} ${p.namespace}/${p.name} ${p.origin}`);
  /** Writes of policy objects the double received (its request log). */
  const policyWrites = (): string[] => k8s.api.requests.filter((q) => q.method !== 'GET' && /authorizationpolicies|egresspolicies|httproutes|faultinjections/.test(q.path)).map((q) => `${q.method} ${q.path}`);

  it('apply at A is in force at once at A and at B\'s agent within the bound; delete at B removes it at A; who applied it through which replica is recorded', async function () {
    const [a, b] = await Promise.all([start('replica-a'), start('replica-b', dirs.make(), [workload('web', '10.8.1.1')])]);
    const files = dirs.make();
    let started = Date.now();
    const applied = await a.cli('policy', 'apply', '-f', writeFile(files, 'deny.yaml', denyYaml('deny-admin', '/admin')));
    assert.equal(applied.code, 0, applied.stderr);
    const answeredMs = Date.now() - started;
    assert.deepEqual(a.col.policies.list().policies.map((p) => `${p.name} ${p.origin}`), ['deny-admin kubernetes'], 'in force at A when apply answers');
    started = Date.now();
    await waitFor(() => atAgent(b).includes('AuthorizationPolicy default/deny-admin'), BOUND_MS, 'B\'s agent enforcing it');
    const reachedMs = Date.now() - started;
    assert.deepEqual(await stored(a), ['AuthorizationPolicy default/deny-admin kubernetes'], 'and `policy list` at A shows it');
    assert.ok(atAgent(a).includes('AuthorizationPolicy default/deny-admin'), 'A\'s agent too');
    const object = k8s.api.get(AP, 'default', 'deny-admin')!;
    assert.equal((object.metadata as { annotations: Record<string, string> }).annotations[APPLIED_BY], `${adminAuthor(a.col)} via replica-a`);
    const record = a.col.audit.list({ kind: 'policy-change' }).find((r) => r.data.via === 'kubernetes');
    assert.ok(record, 'an audit record at A');
    assert.equal(record.actor, adminAuthor(a.col));
    assert.deepEqual([record.data.action, record.data.replica, record.data.changes], ['apply', 'replica-a', [{ op: 'create', kind: 'AuthorizationPolicy', namespace: 'default', name: 'deny-admin' }]]);

    // An update through B (the object is the collector's: any replica may change it), then a delete.
    const updated = await b.cli('policy', 'apply', '-f', writeFile(files, 'deny2.yaml', denyYaml('deny-admin', '/private')));
    assert.equal(updated.code, 0, updated.stderr);
    await waitFor(() => (a.col.policies.get('AuthorizationPolicy/default/deny-admin').manifest as { spec: { rules: Array<{ to: Array<{ operation: { paths: string[] } }> }> } }).spec.rules[0]!.to[0]!.operation.paths[0] === '/private', BOUND_MS, 'the update at A');
    started = Date.now();
    const deleted = await b.cli('policy', 'delete', 'AuthorizationPolicy/default/deny-admin');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(await stored(b), [], 'gone at B as soon as delete answers');
    await waitFor(() => atAgent(a).length === 0 && a.col.policies.list().policies.length === 0, BOUND_MS, 'gone at A and its agent');
    const goneMs = Date.now() - started;
    assert.equal(k8s.api.get(AP, 'default', 'deny-admin'), undefined);
    process.stdout.write(`      apply at A answered in ${answeredMs} ms (the CLI, the parser's worker, the API, A's watch), at B's agent ${reachedMs} ms later; delete at B → gone at A's agent: ${goneMs} ms (upper bounds on a loaded machine)\n`);

    // egress allow at B: one EgressPolicy, stored at A too; removed through A by the ID A lists.
    const rule = await b.cli('egress', 'allow', 'default/web', 'k8s.api.example.com');
    assert.equal(rule.code, 0, rule.stderr);
    const name = (await listPolicies(b.cli)).policies.find((p) => p.kind === 'EgressPolicy')!.name;
    await waitFor(() => a.col.policies.list().policies.find((p) => p.name === name), BOUND_MS, 'the egress rule at A');
    // Both replicas report on our EgressPolicy's status: once, not each on the other's report for ever.
    await waitFor(() => (k8s.api.get(EGP, 'default', name)?.status as { conditions?: unknown[] } | undefined)?.conditions, BOUND_MS, 'the Accepted condition');
    const settled = k8s.api.get(EGP, 'default', name)!.metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(k8s.api.get(EGP, 'default', name)!.metadata.resourceVersion, settled, 'the object stays still once reported');
    const idAtA = a.col.policies.list().policies.find((p) => p.name === name)!.id;
    const removed = await a.cli('egress', 'remove', String(idAtA));
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(k8s.api.list(EGP, 'default').length, 0);
  });

  it('a change made on a stale view is answered 409 in one line; what it wrote before is rolled back, nothing else changes', async function () {
    const a = await start('replica-a');
    const files = dirs.make();
    assert.equal((await a.cli('policy', 'apply', '-f', writeFile(files, 'b.yaml', denyYaml('b-old', '/one')))).code, 0);
    // A's watch stops hearing (its watches hang), then someone else changes b-old: A's view is stale.
    const heal = k8s.api.addFault({ watch: true, hang: true });
    k8s.api.dropWatches();
    k8s.api.patch(AP, 'default', 'b-old', { spec: { rules: [{ to: [{ operation: { paths: ['/kubectl'] } }] }] } });
    const version = a.col.policies.version;
    // a-new sorts first: it is created, then the update of b-old is refused (409) and a-new is deleted again.
    const both = writeFile(files, 'both.yaml', `${denyYaml('a-new', '/new')}---\n${denyYaml('b-old', '/two')}`);
    const r = await a.cli('policy', 'apply', '-f', both);
    refused(r, /conflict: AuthorizationPolicy default\/b-old was changed in the Kubernetes API since this collector read it .*the 1 object\(s\) written before it were rolled back: nothing changed: try again/);
    assert.equal(k8s.api.get(AP, 'default', 'a-new'), undefined, 'a-new rolled back');
    assert.deepEqual((k8s.api.get(AP, 'default', 'b-old')!.spec as { rules: unknown }).rules, [{ to: [{ operation: { paths: ['/kubectl'] } }] }], 'the other change stands');
    assert.deepEqual(policyWrites().slice(-3).map((w) => w.split(' ')[0]), ['POST', 'PUT', 'DELETE'], 'create, refused update, roll back');
    assert.equal(a.col.policies.version, version, 'nothing applied here');
    heal();
    k8s.api.dropWatches();
    await waitFor(() => (a.col.policies.get('AuthorizationPolicy/default/b-old').manifest as { spec: { rules: unknown[] } }).spec.rules.length === 1 && JSON.stringify(a.col.policies.get('AuthorizationPolicy/default/b-old').manifest).includes('/kubectl'), 10_000, 'A hears the change again');
    assert.equal((await a.cli('policy', 'apply', '-f', both)).code, 0, 'on a fresh view the same apply goes through');
  });

  it('two replicas updating one object at the same moment: one wins, the other is answered 409 in one line', async function () {
    const [a, b] = await Promise.all([start('replica-a'), start('replica-b')]);
    const files = dirs.make();
    assert.equal((await a.cli('policy', 'apply', '-f', writeFile(files, 's.yaml', denyYaml('shared', '/zero')))).code, 0);
    await waitFor(() => b.col.policies.list().policies.length === 1, BOUND_MS, 'B has it');
    // Neither hears the other's write before making its own: both update at the resourceVersion they read.
    const heal = k8s.api.addFault({ watch: true, hang: true });
    k8s.api.dropWatches();
    const puts = policyWrites().filter((w) => w.startsWith('PUT')).length;
    const racing = Promise.all([a.cli('policy', 'apply', '-f', writeFile(files, 'a.yaml', denyYaml('shared', '/from-a'))), b.cli('policy', 'apply', '-f', writeFile(files, 'b.yaml', denyYaml('shared', '/from-b')))]);
    await waitFor(() => policyWrites().filter((w) => w.startsWith('PUT')).length === puts + 2, 10_000, 'both updates sent');
    heal();
    k8s.api.dropWatches();
    const results = await racing;
    const won = results.filter((r) => r.code === 0);
    assert.equal(won.length, 1, results.map((r) => r.stderr).join(' | '));
    refused(results.find((r) => r.code !== 0)!, /^palisade: conflict: AuthorizationPolicy default\/shared was changed in the Kubernetes API since this collector read it .*nothing was written: try again\n$/);
    const paths = JSON.stringify(k8s.api.get(AP, 'default', 'shared')!.spec);
    const winner = results[0]!.code === 0 ? '/from-a' : '/from-b';
    assert.ok(paths.includes(winner), `the winner's version is in the API: ${paths}`);
    await waitFor(() => [a, b].every((r) => JSON.stringify(r.col.policies.get('AuthorizationPolicy/default/shared').manifest).includes(winner)), BOUND_MS, 'both replicas enforce the winner\'s');
  });

  it('a change written but not back through the watch within the bound: one line saying so', async function () {
    const a = await start('replica-a', dirs.make(), [], 1_000);
    const heal = k8s.api.addFault({ watch: true, hang: true });
    k8s.api.dropWatches();
    const r = await a.cli('policy', 'apply', '-f', writeFile(dirs.make(), 'late.yaml', denyYaml('late', '/late')));
    refused(r, /written to the Kubernetes API but not in force at this collector within 1000 ms \(its watch is behind\?\): AuthorizationPolicy default\/late; palisade policy list shows when it is/);
    assert.ok(k8s.api.get(AP, 'default', 'late'), 'it is in the API');
    heal();
    k8s.api.dropWatches();
    await waitFor(() => a.col.policies.list().policies.some((p) => p.name === 'late'), 10_000, 'in force once the watch is back');
  });

  it('the API away: the change is refused in one line and nothing is applied, here or at the agent', async function () {
    const a = await start('replica-a');
    const files = dirs.make();
    assert.equal((await a.cli('policy', 'apply', '-f', writeFile(files, 'x.yaml', denyYaml('x', '/x')))).code, 0);
    const version = a.col.policies.version;
    await waitFor(() => a.frames.some((f) => f.version === version), BOUND_MS, 'the agent at that version');
    const frames = a.frames.length;
    const heal = k8s.api.addFault({ watch: false, path: /authorizationpolicies/, status: 503, reason: 'ServiceUnavailable', message: 'etcd is down' });
    refused(await a.cli('policy', 'apply', '-f', writeFile(files, 'y.yaml', denyYaml('y', '/y'))), /create AuthorizationPolicy default\/y: the Kubernetes API answered 503 ServiceUnavailable: etcd is down; nothing was written/);
    refused(await a.cli('policy', 'delete', 'AuthorizationPolicy/default/x'), /delete AuthorizationPolicy default\/x: the Kubernetes API answered 503 .*nothing was written/);
    heal();
    assert.equal(a.col.policies.version, version, 'no new version');
    assert.deepEqual(await stored(a), ['AuthorizationPolicy default/x kubernetes']);
    assert.equal(a.frames.length, frames, 'nothing pushed');
    assert.deepEqual(k8s.api.list(AP, 'default').map((o) => o.metadata.name), ['x']);
    const failed = a.col.audit.list({ kind: 'policy-change' }).filter((r) => typeof r.data.failed === 'string');
    assert.equal(failed.length, 2, 'each refused change is recorded with why');
  });

  it('bad input is one line with nothing written to the API; a kind the cluster does not serve stays at this replica, with a warning, and is never mixed with a shared change', async function () {
    const a = await start('replica-a');
    const files = dirs.make();
    const before = policyWrites().length;
    refused(await a.cli('policy', 'apply', '-f', writeFile(files, 'bad.yaml', `${denyYaml('ok', '/ok')}---\n${denyYaml('bad', '7').replace('paths: [7]', 'paths: 7')}`)), /AuthorizationPolicy default\/bad: spec\.rules\[0\]\.to\[0\]\.operation\.paths: must be a list of strings, got 7/);
    // The cluster serves AuthorizationPolicy, EgressPolicy and FaultInjection here, not the Gateway API's routes nor DestinationRule.
    k8s.api.create('v1/services', { metadata: { name: 'web', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80 }] } });
    await waitFor(() => (a.col.snapshot().services ?? []).some((v) => v.name === 'web'), 5_000, 'the Service known');
    const route = `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{kind: Service, name: web}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]\n`;
    const kept = await a.cli('policy', 'apply', '-f', writeFile(files, 'route.yaml', route));
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout + kept.stderr, /the cluster serves no HTTPRoute \(its CRD is not installed\): kept at this collector only, not shared with other replicas/);
    assert.deepEqual(a.col.policies.list().policies.map((p) => `${p.kind} ${p.name} ${p.origin}`), ['HTTPRoute r api'], 'as with one collector');
    // With a policy the cluster could store: refused whole, nothing written.
    const dr = 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: default}\nspec:\n  host: web.default.svc.cluster.local\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n';
    const mixed = writeFile(files, 'mixed.yaml', `${egressYaml('e1', 'a.example.com')}---\n${dr}`);
    refused(await a.cli('policy', 'apply', '-f', mixed), /DestinationRule default\/web: kept at this collector only \(the cluster serves no DestinationRule: its CRD is not installed\), while the rest of the change goes to the Kubernetes API: apply them apart, or install the CRD/);
    assert.equal(policyWrites().length, before, 'nothing written to the API');
    // A dry run stays local; so does an object kubectl made that the watch refused (not the collector's to overwrite).
    const dry = await a.cli('policy', 'apply', '--dry-run', '-f', writeFile(files, 'dry.yaml', denyYaml('dry', '/dry')));
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(policyWrites().length, before, 'a dry run writes nothing to the API');
    k8s.api.create(AP, { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'theirs', namespace: 'default' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: 7 } }] }] } });
    await waitFor(() => a.col.kubernetes!.status().refused.length === 1, 5_000, 'the kubectl object refused by the watch');
    const writesBefore = policyWrites().length;
    refused(await a.cli('policy', 'apply', '-f', writeFile(files, 'theirs.yaml', denyYaml('theirs', '/t'))), /AuthorizationPolicy default\/theirs is managed by the Kubernetes API: change it there/);
    assert.equal(policyWrites().length, writesBefore, 'nothing written to the API');
    assert.equal(k8s.api.list(AP, 'default').length, 1);
    assert.equal(a.col.policies.list().policies.length, 1, 'only the route kept here');
  });

  it('a policy stored by a collector before Kubernetes mode is published to the API when it starts in it, and then shared', async function () {
    const data = dirs.make();
    const alone = await collector(stack, { dataDir: data, log: new LogCapture().logger });
    const cli = cliFor(alone, data, dirs.make('palisade-home-'));
    assert.equal((await cli('policy', 'apply', '-f', writeFile(dirs.make(), 'old.yaml', denyYaml('old', '/old')))).code, 0);
    const author = adminAuthor(alone);
    await alone.stop();
    const a = await start('replica-a', data);
    const b = await start('replica-b');
    await waitFor(() => k8s.api.get(AP, 'default', 'old'), 10_000, 'the old policy published');
    assert.equal((k8s.api.get(AP, 'default', 'old')!.metadata as { annotations: Record<string, string> }).annotations[APPLIED_BY], `${author} via replica-a`);
    await waitFor(() => a.col.policies.list().policies.some((p) => p.name === 'old' && p.origin === 'kubernetes'), BOUND_MS, 'owned by the API at A');
    await waitFor(() => atAgent(b).includes('AuthorizationPolicy default/old'), BOUND_MS, 'B\'s agent enforcing it');
    const deleted = await b.cli('policy', 'delete', 'AuthorizationPolicy/default/old');
    assert.equal(deleted.code, 0, `and changed through any replica: ${deleted.stderr}`);
    await waitFor(() => a.col.policies.list().policies.length === 0, BOUND_MS, 'gone at A');
  });
});
