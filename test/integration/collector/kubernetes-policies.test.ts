/**
 * Policies from the Kubernetes API: the collector watches AuthorizationPolicy (security.istio.io)
 * and EgressPolicy (palisade.dev) objects in the API double, through the real client-node, and
 * keeps them as versions of its store authored `kubernetes`. A refused object is reported as an
 * Event (and, for EgressPolicy, its status) with the file:line-style problem, and its previous
 * version stays. The same Istio YAML applied as objects gives exactly the verdicts it gives as files.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import type { RunningCollector } from '../../../collector/collector';
import type { StatusResponse } from '../../../common/control-api';
import type { PoliciesMessage } from '../../../common/mesh-protocol';
import { authorize, compilePolicyFiles, PolicyIndex, type AuthzRequest, type PolicySet } from '../../../common/policy';
import { tempDir } from '../../harness/agent';
import { runCli } from '../../harness/cli';
import { fixturePath } from '../../harness/fixtures';
import type { KubeApiDouble } from '../../harness/kube-api-double';
import { waitFor } from '../../harness/wait';
import { KubeCollector } from './kube-collector';

const AP = 'security.istio.io/v1/authorizationpolicies';
const EGP = 'palisade.dev/v1/egresspolicies';

const denyAdmin = (paths: unknown): Record<string, unknown> => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny-admin', namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { paths } }] }] },
});

describe('collector: policies from the Kubernetes API (double)', function () {
  this.timeout(60_000);
  const k8s = new KubeCollector('k8s-policies');
  let api: KubeApiDouble;
  let collector: RunningCollector;

  async function start(opts: { istio?: boolean | { versions: string[] }; policyDir?: string } = {}): Promise<void> {
    await k8s.start({ namespaces: ['shop', 'foo', 'bar', 'ns1', 'istio-system'], crds: { istio: opts.istio ?? true }, ...(opts.policyDir ? { policyDir: opts.policyDir } : {}) });
    ({ api, collector } = k8s);
  }

  afterEach(() => k8s.stop());

  const stored = (): string[] => k8s.stored();
  const events = (): Array<{ reason: string; message: string; type: string; involvedObject: { kind: string; name: string } }> => api.list('v1/events', 'shop') as never;

  it('keeps AuthorizationPolicy and EgressPolicy objects as versions authored kubernetes; a delete removes the policy', async function () {
    await start();
    api.create(AP, denyAdmin(['/admin']));
    api.create(EGP, { apiVersion: 'palisade.dev/v1', kind: 'EgressPolicy', metadata: { name: 'client-out', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'client' } }, allow: [{ hosts: ['api.example.com'], ports: [443] }] } });
    await waitFor(() => stored().length === 2, 5000, { what: 'both policies stored' });
    assert.deepEqual(stored(), ['AuthorizationPolicy shop/deny-admin kubernetes kubernetes', 'EgressPolicy shop/client-out kubernetes kubernetes']);
    await waitFor(() => (api.get(EGP, 'shop', 'client-out') as { status?: { conditions?: Array<{ status: string }> } }).status?.conditions?.[0]?.status === 'True', 5000, { what: 'the EgressPolicy accepted in its status' });
    assert.throws(() => collector.policies.delete('AuthorizationPolicy/shop/deny-admin', false, 'admin:x'), /managed by the Kubernetes API: delete it there \(kubectl edit authorizationpolicy -n shop deny-admin\)/);
    api.delete(AP, 'shop', 'deny-admin');
    await waitFor(() => stored().length === 1, 5000, { what: 'the deleted policy gone' });
    assert.ok(collector.policies.history().versions.every((v) => v.author === 'kubernetes'));
  });

  it('refuses a bad object with the file:line-style problem as an Event and in its status; the previous version stays', async function () {
    await start();
    api.create(AP, denyAdmin(['/admin']));
    await waitFor(() => stored().length === 1, 5000, { what: 'the policy stored' });
    const version = collector.policies.version;
    api.patch(AP, 'shop', 'deny-admin', { spec: { rules: [{ to: [{ operation: { paths: 7 } }] }] } });
    await waitFor(() => events().some((e) => e.reason === 'PolicyRejected'), 5000, { what: 'the Warning Event' });
    const event = events().find((e) => e.reason === 'PolicyRejected')!;
    assert.equal(event.type, 'Warning');
    assert.deepEqual([event.involvedObject.kind, event.involvedObject.name], ['AuthorizationPolicy', 'deny-admin']);
    assert.match(event.message, /^AuthorizationPolicy shop\/deny-admin:\d+: AuthorizationPolicy shop\/deny-admin: spec\.rules\[0\]\.to\[0\]\.operation\.paths: must be a list of strings, got 7/);
    assert.equal(collector.policies.version, version, 'no new version');
    assert.deepEqual((collector.policies.get('AuthorizationPolicy/shop/deny-admin').manifest as { spec: { rules: unknown } }).spec.rules, [{ to: [{ operation: { paths: ['/admin'] } }] }], 'the previous version stays');

    api.create(EGP, { apiVersion: 'palisade.dev/v1', kind: 'EgressPolicy', metadata: { name: 'bad', namespace: 'shop' }, spec: { allow: [{ hosts: ['*'], cidrs: ['nope'] }] } });
    await waitFor(() => (api.get(EGP, 'shop', 'bad') as { status?: { conditions?: Array<{ status: string; message: string }> } }).status?.conditions?.[0]?.status === 'False', 5000, { what: 'the EgressPolicy refused in its status' });
    const cond = (api.get(EGP, 'shop', 'bad') as unknown as { status: { conditions: Array<{ message: string; reason: string }> } }).status.conditions[0]!;
    assert.equal(cond.reason, 'Invalid');
    assert.match(cond.message, /^EgressPolicy shop\/bad:\d+: /);
    assert.ok(!stored().some((s) => s.includes('shop/bad')), 'never in force');

    // What `palisade status` says of it.
    const env = k8s.cliEnv();
    const json = await runCli(['status', '-o', 'json'], { env } as never);
    assert.equal(json.code, 0, json.stderr);
    const k = (JSON.parse(json.stdout) as StatusResponse).kubernetes!;
    assert.deepEqual(
      { synced: k.synced, kinds: k.policyKinds, inForce: k.policyObjects, refused: k.refused.map((r) => [r.object, r.previousInForce]) },
      {
        synced: true,
        kinds: { AuthorizationPolicy: 'security.istio.io/v1', EgressPolicy: 'palisade.dev/v1', HTTPRoute: 'not installed', GRPCRoute: 'not installed', FaultInjection: 'palisade.dev/v1', DestinationRule: 'not installed' },
        inForce: 1,
        refused: [['AuthorizationPolicy shop/deny-admin', true], ['EgressPolicy shop/bad', false]],
      },
    );
    const table = await runCli(['status'], { env } as never);
    assert.match(table.stdout, /^kubernetes: synced; 0 services; 0 pods; 1 policy objects in force, 2 refused/m);
    assert.match(table.stdout, /^ {2}refused AuthorizationPolicy shop\/deny-admin: AuthorizationPolicy shop\/deny-admin:\d+: .*; its previous version stays in force$/m);
  });

  it('a name the policy directory defines stays the directory\'s; once the file goes, the object applies', async function () {
    const policyDir = path.join(tempDir('k8s-policy-dir'));
    fs.writeFileSync(path.join(policyDir, 'deny-admin.yaml'), stringify(denyAdmin(['/from-dir'])));
    try {
      await start({ policyDir });
      api.create(AP, denyAdmin(['/from-api']));
      await waitFor(() => collector.policies.history().versions.length >= 1, 5000, { what: 'the directory version' });
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(stored(), ['AuthorizationPolicy shop/deny-admin dir policy-dir']);
      fs.rmSync(path.join(policyDir, 'deny-admin.yaml'));
      await waitFor(() => stored()[0]?.includes(' kubernetes ') === true, 5000, { what: 'the object in force once the file is gone' });
      assert.deepEqual((collector.policies.get('AuthorizationPolicy/shop/deny-admin').manifest as { spec: { rules: unknown } }).spec.rules, [{ to: [{ operation: { paths: ['/from-api'] } }] }]);
    } finally {
      fs.rmSync(policyDir, { recursive: true, force: true });
    }
  });

  it('watches v1beta1 where that is all the cluster serves', async function () {
    await start({ istio: { versions: ['v1beta1'] } });
    api.create('security.istio.io/v1beta1/authorizationpolicies', { ...denyAdmin(['/admin']), apiVersion: 'security.istio.io/v1beta1' });
    await waitFor(() => stored().length === 1, 5000, { what: 'the v1beta1 policy stored' });
  });

  it('an Istio file applied as objects gives exactly the verdicts it gives as a file', async function () {
    await start();
    const text = fs.readFileSync(fixturePath('policies/istio-examples.yaml'), 'utf8');
    const docs = parseAllDocuments(text).map((d) => d.toJS() as { apiVersion: string; metadata: { namespace?: string } } | null).filter((d): d is { apiVersion: string; metadata: { namespace?: string } } => d !== null);
    for (const d of docs) {
      const ns = d.metadata.namespace ?? 'default';
      if (!api.namespaceExists(ns)) api.create('v1/namespaces', { metadata: { name: ns } });
      const version = d.apiVersion.split('/')[1]!;
      api.create(`security.istio.io/${version}/authorizationpolicies`, d as never);
    }
    await waitFor(() => stored().length === docs.length, 10_000, { what: `all ${docs.length} objects stored` });
    const frame = JSON.parse(collector.policies.frame()) as PoliciesMessage;
    const fromApi = compilePolicyFiles(frame.files);
    const fromFile = compilePolicyFiles([{ source: 'istio-examples.yaml', text }]);
    const matrix = requests();
    let compared = 0;
    for (const req of matrix) {
      for (const stage of ['request', 'tcp', 'connection'] as const) {
        assert.deepEqual(verdict(fromApi, req, stage), verdict(fromFile, req, stage), `${stage} ${JSON.stringify(req)}`);
        compared++;
      }
    }
    assert.ok(compared > 1000, `${compared} verdicts compared`);
    assert.ok(matrix.some((r) => !verdict(fromFile, r, 'request').allowed) && matrix.some((r) => verdict(fromFile, r, 'request').allowed), 'the matrix has both outcomes');
  });
});

function verdict(set: PolicySet, req: AuthzRequest, stage: 'request' | 'tcp' | 'connection'): { allowed: boolean; [k: string]: unknown } {
  const v = authorize(req, new PolicyIndex(set), stage);
  return { allowed: v.allowed, reason: v.reason, policy: v.policy, rule: v.rule, audit: v.audit };
}

/** Requests across the namespaces, labels, callers, methods, paths and ports the examples talk about. */
function requests(): AuthzRequest[] {
  const out: AuthzRequest[] = [];
  const workloads: Array<{ namespace: string; labels: Record<string, string> }> = [
    { namespace: 'foo', labels: { app: 'httpbin', version: 'v1' } },
    { namespace: 'foo', labels: { app: 'httpbin' } },
    { namespace: 'bar', labels: { app: 'web' } },
    { namespace: 'ns1', labels: { app: 'products' } },
    { namespace: 'default', labels: { app: 'products' } },
    { namespace: 'baz', labels: { app: 'x' } },
    { namespace: 'istio-system', labels: {} },
  ];
  const callers = [undefined, 'spiffe://cluster.local/ns/default/sa/sleep', 'spiffe://cluster.local/ns/test/sa/x', 'spiffe://cluster.local/ns/foo/sa/y', 'spiffe://cluster.local/ns/dev/sa/z'];
  const http = [undefined, ['GET', '/info/x'], ['POST', '/data'], ['GET', '/admin'], ['DELETE', '/'], ['GET', '/healthz'], ['HEAD', '/public/a']] as const;
  for (const workload of workloads) {
    for (const principal of callers) {
      for (const h of http) {
        for (const port of [80, 8080, 9000]) {
          out.push({
            source: { ip: '10.0.9.9', ...(principal ? { principal, namespace: principal.split('/')[4] } : {}) },
            destination: { ip: '10.0.1.11', port, workload },
            ...(h ? { http: { method: h[0], path: h[1], host: 'web.example.com', headers: { 'x-token': ['admin'], 'user-agent': ['curl'] } } } : {}),
          });
        }
      }
    }
  }
  return out;
}
