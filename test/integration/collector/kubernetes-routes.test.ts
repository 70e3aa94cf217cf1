/**
 * Routes from the Kubernetes API (issue #18): the collector watches the Gateway API's HTTPRoute and
 * GRPCRoute and our FaultInjection in the API double, through the real client-node, and keeps them as
 * versions of its store authored `kubernetes`, pushed to agents like policies. The same YAML created
 * as objects compiles to exactly the route table it gives as a file; a refused object is reported
 * (an Event; for FaultInjection also its status) and its previous version stays.
 */
import { strict as assert } from 'node:assert';
import { parseAllDocuments } from 'yaml';
import type { RunningCollector } from '../../../collector/collector';
import type { StatusResponse } from '../../../common/control-api';
import type { PoliciesMessage } from '../../../common/mesh-protocol';
import { compilePolicyFiles } from '../../../common/policy';
import { RouteTable, type RouteRequest } from '../../../common/routes';
import { runCli } from '../../harness/cli';
import type { KubeApiDouble } from '../../harness/kube-api-double';
import { waitFor } from '../../harness/wait';
import { joinedNodeDir, Stack, TempDirs } from './helpers';
import { KubeCollector } from './kube-collector';
import { startAgent } from './policies-fixtures';

const HTTP = 'gateway.networking.k8s.io/v1/httproutes';
const FI = 'palisade.dev/v1/faultinjections';

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-canary, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{headers: [{name: x-user-group, value: beta}]}]
    backendRefs: [{name: web-v2, port: 80}]
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-canary, value: "yes"}], remove: [x-debug]}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: web-v1, port: 80}, fraction: {numerator: 1, denominator: 4}}}
  - matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
    backendRefs:
    - {name: web-v1, port: 80, weight: 90, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-served, value: v1}]}}]}
    - {name: web-v2, port: 80, weight: 10}
    filters: [{type: URLRewrite, urlRewrite: {hostname: api.shop, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]
    timeouts: {request: 2s}
    retry: {codes: [503], attempts: 3}
  - backendRefs: [{name: web-v1, port: 80}]
    filters: [{type: ExtensionRef, extensionRef: {group: palisade.dev, kind: FaultInjection, name: chaos}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: greeter}]
  rules:
  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
    backendRefs: [{name: greeter-v2, port: 50051}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-route, value: greeter}]}}]
  - backendRefs: [{name: greeter-v1, port: 50051}]
---
apiVersion: palisade.dev/v1
kind: FaultInjection
metadata: {name: chaos, namespace: shop}
spec:
  delay: {fixedDelay: 50ms, percentage: {value: 10}}
  abort: {httpStatus: 503, percentage: {value: 2.5}}
`;

describe('collector: routes from the Kubernetes API (double)', function () {
  this.timeout(60_000);
  const k8s = new KubeCollector('k8s-routes');
  let api: KubeApiDouble;
  let collector: RunningCollector;

  async function start(opts: { gatewayApi?: boolean; destinationRules?: boolean } = {}): Promise<void> {
    await k8s.start({ namespaces: ['shop'], crds: { istio: true, gatewayApi: opts.gatewayApi ?? true, destinationRules: opts.destinationRules ?? false } });
    ({ api, collector } = k8s);
  }

  afterEach(() => k8s.stop());

  const stored = (): string[] => k8s.stored();
  const docs = (): Array<{ apiVersion: string; kind: string; metadata: { name: string } }> => parseAllDocuments(ROUTES).map((d) => d.toJS() as never);
  const plural: Record<string, string> = { HTTPRoute: HTTP, GRPCRoute: 'gateway.networking.k8s.io/v1/grpcroutes', FaultInjection: FI };

  it('keeps HTTPRoute, GRPCRoute and FaultInjection objects as versions authored kubernetes; the pushed set gives the route table the same YAML gives as a file', async function () {
    await start();
    for (const d of docs()) api.create(plural[d.kind]!, d as never);
    await waitFor(() => stored().length === 3, 5000, { what: 'the three objects stored' });
    assert.deepEqual(stored().sort(), ['FaultInjection shop/chaos kubernetes kubernetes', 'GRPCRoute shop/greeter kubernetes kubernetes', 'HTTPRoute shop/web-canary kubernetes kubernetes']);
    await waitFor(() => (api.get(FI, 'shop', 'chaos') as { status?: { conditions?: Array<{ status: string }> } }).status?.conditions?.[0]?.status === 'True', 5000, { what: 'the FaultInjection accepted in its status' });

    // What agents are sent, compiled as they compile it, against the same YAML as a file.
    const frame = JSON.parse(collector.policies.frame()) as PoliciesMessage;
    const fromApi = compilePolicyFiles(frame.files);
    const fromFile = compilePolicyFiles([{ source: 'routes.yaml', text: ROUTES }]);
    const strip = (set: typeof fromApi): unknown => ({
      routes: [...(set.routes ?? [])].map((r) => ({ kind: r.kind, id: r.id, parents: r.parents, rules: r.rules })).sort((a, b) => (a.id < b.id ? -1 : 1)),
      faults: (set.faults ?? []).map((f) => ({ id: f.id, delay: f.delay, abort: f.abort })),
    });
    assert.deepEqual(strip(fromApi), strip(fromFile));
    assert.ok(fromApi.routes!.some((r) => r.rules.some((x) => x.filters?.rewrite !== undefined && x.backends[0]?.filters !== undefined)), 'the filters came through the API (rule and backendRef)');
    const tables = [fromApi, fromFile].map((s) => new RouteTable(s.routes ?? [], s.faults ?? []));
    let compared = 0;
    for (const [service, port] of [['web', 80], ['greeter', 50051], ['other', 80]] as const) {
      for (const client of ['shop', 'elsewhere']) {
        for (const req of requests()) {
          const [a, b] = tables.map((t) => choice(t, service, port, client, req));
          assert.deepEqual(a, b, `${service}:${port} from ${client} ${JSON.stringify(req)}`);
          compared++;
        }
      }
    }
    assert.ok(compared >= 100, `${compared} requests compared`);
    const web = choice(tables[0]!, 'web', 80, 'shop', { method: 'GET', path: '/', query: '', headers: {} });
    assert.deepEqual(web, { route: 'shop/web-canary', rule: 2, backends: ['shop/web-v1:80=1'], fault: { ms: 50, percent: 10, status: 503, abortPercent: 2.5 } }, 'the matrix reaches the fault rule');

    // `palisade status`: the routes in force, their parents, rules and version (no agent connected here).
    const env = k8s.cliEnv();
    const json = await runCli(['status', '-o', 'json'], { env } as never);
    assert.equal(json.code, 0, json.stderr);
    const routes = (JSON.parse(json.stdout) as StatusResponse).routes!;
    const v = collector.policies.version;
    assert.deepEqual(routes.map((r) => [r.kind, `${r.namespace}/${r.name}`, r.parents, r.rules, r.version <= v && r.version > 0, r.enforcedBy, r.agents]), [
      ['GRPCRoute', 'shop/greeter', ['shop/greeter'], 2, true, 0, 0],
      ['HTTPRoute', 'shop/web-canary', ['shop/web:80'], 3, true, 0, 0],
    ]);
    const table = await runCli(['status'], { env } as never);
    assert.match(table.stdout, /^HTTPRoute +shop\/web-canary +shop\/web:80 +3 +v\d+ +0\/0$/m);

    // A delete takes the route out of the next version.
    api.delete(HTTP, 'shop', 'web-canary');
    await waitFor(() => stored().length === 2, 5000, { what: 'the deleted route gone' });
    assert.ok(collector.policies.history().versions.every((v) => v.author === 'kubernetes'));
  });

  it('an agent is sent the routes; once it reports that version, status counts it as enforcing them', async function () {
    await start();
    const dirs = new TempDirs();
    const stack = new Stack();
    try {
      // In Kubernetes mode the collector is the node authorizer: the agent's workloads are pods on its node.
      for (const name of ['client', 'web']) api.create('v1/pods', { metadata: { name, namespace: 'default' }, spec: { nodeName: 'node-a', serviceAccountName: name, containers: [{ name, image: name }] } });
      const agent = await startAgent(stack, collector, await joinedNodeDir(dirs, collector, k8s.dataDir(), 'node-a'), 'node-a');
      for (const d of docs()) api.create(plural[d.kind]!, d as never);
      const frame = await waitFor(() => agent.frames.find((f) => (compilePolicyFiles(f.files).routes ?? []).length === 2), 5000, { what: 'a policies frame with both routes' });
      assert.deepEqual(compilePolicyFiles(frame.files).faults!.map((f) => f.id), ['shop/chaos']);
      const status = (): StatusResponse => collector.policies.status({ flowsStored: 0, auditRecords: 0 });
      await waitFor(() => status().routes?.every((r) => r.enforcedBy === 1), 5000, { what: 'the agent counted as enforcing both routes' });
      assert.deepEqual(status().routes!.map((r) => [r.name, r.version <= frame.version, r.enforcedBy, r.agents]), [['greeter', true, 1, 1], ['web-canary', true, 1, 1]]);
    } finally {
      await stack.unwind();
      dirs.cleanup();
    }
  });

  it('keeps DestinationRule objects (networking.istio.io) like routes; one with subsets is refused with the hint in an Event, nothing of it applied', async function () {
    await start({ destinationRules: true });
    const DR = 'networking.istio.io/v1/destinationrules';
    const manifest = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name, namespace: 'shop' },
      spec: { host: 'web.shop.svc.cluster.local', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } }, connectionPool: { http: { http2MaxRequests: 2 } } }, ...extra },
    });
    api.create(DR, manifest('web'));
    await waitFor(() => stored().length === 1, 5000, { what: 'the DestinationRule stored' });
    assert.deepEqual(stored(), ['DestinationRule shop/web kubernetes kubernetes']);
    const set = compilePolicyFiles((JSON.parse(collector.policies.frame()) as PoliciesMessage).files);
    const dr = set.destinationRules![0]!;
    assert.deepEqual([dr.id, dr.host, dr.policy.loadBalancer, dr.policy.connectionPool?.maxRequests], ['shop/web', { namespace: 'shop', name: 'web' }, { kind: 'HASH', by: 'header', name: 'x-user' }, 2]);
    assert.equal(collector.kubernetes!.status().policyKinds.DestinationRule, 'networking.istio.io/v1');
    const version = collector.policies.version;
    api.create(DR, manifest('canary', { subsets: [{ name: 'v1', labels: { version: 'v1' } }] }));
    const events = (): Array<{ reason: string; message: string; involvedObject: { kind: string; name: string } }> => api.list('v1/events', 'shop') as never;
    await waitFor(() => events().some((e) => e.reason === 'PolicyRejected'), 5000, { what: 'the Warning Event' });
    const event = events().find((e) => e.reason === 'PolicyRejected')!;
    assert.deepEqual([event.involvedObject.kind, event.involvedObject.name], ['DestinationRule', 'canary']);
    assert.match(event.message, /spec\.subsets: subsets are not supported: use one Service per version \(Istio ambient's own advice\)/);
    assert.equal(collector.policies.version, version, 'nothing applied');
    assert.deepEqual(stored(), ['DestinationRule shop/web kubernetes kubernetes']);
  });

  it('refuses a bad route with an Event naming the problem; the previous version stays in force', async function () {
    await start();
    for (const d of docs()) api.create(plural[d.kind]!, d as never);
    await waitFor(() => stored().length === 3, 5000, { what: 'the three objects stored' });
    const version = collector.policies.version;
    api.patch(HTTP, 'shop', 'web-canary', { spec: { rules: [{ backendRefs: [{ name: 'web-v1', port: 80, weight: 0 }] }] } });
    const events = (): Array<{ reason: string; message: string; involvedObject: { kind: string; name: string } }> => api.list('v1/events', 'shop') as never;
    await waitFor(() => events().some((e) => e.reason === 'PolicyRejected'), 5000, { what: 'the Warning Event' });
    const event = events().find((e) => e.reason === 'PolicyRejected')!;
    assert.deepEqual([event.involvedObject.kind, event.involvedObject.name], ['HTTPRoute', 'web-canary']);
    assert.match(event.message, /^HTTPRoute shop\/web-canary:\d+: HTTPRoute shop\/web-canary: spec\.rules\[0\]\.backendRefs: .*weight/);
    assert.equal(collector.policies.version, version, 'no new version');
    const rules = (collector.policies.get('HTTPRoute/shop/web-canary').manifest as { spec: { rules: unknown[] } }).spec.rules;
    assert.equal(rules.length, 3, 'the previous version stays');

    api.create(FI, { apiVersion: 'palisade.dev/v1', kind: 'FaultInjection', metadata: { name: 'bad', namespace: 'shop' }, spec: { abort: { httpStatus: 503, percentage: { value: 101 } } } });
    await waitFor(() => (api.get(FI, 'shop', 'bad') as { status?: { conditions?: Array<{ status: string }> } }).status?.conditions?.[0]?.status === 'False', 5000, { what: 'the FaultInjection refused in its status' });
    const status = collector.kubernetes!.status();
    assert.deepEqual(status.refused.map((r) => [r.object, r.previousInForce]), [['FaultInjection shop/bad', false], ['HTTPRoute shop/web-canary', true]]);
    assert.equal(status.policyKinds.HTTPRoute, 'gateway.networking.k8s.io/v1');
  });

  it('a route attached only to a Gateway is the gateway controller\'s: not refused, not reported, counted as left alone; of a mixed one the Service parent applies', async function () {
    await start();
    const gatewayRoute = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'ingress-web', namespace: 'shop' }, spec: { parentRefs: [{ name: 'public' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } };
    const mixed = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'both', namespace: 'shop' }, spec: { parentRefs: [{ name: 'public' }, { kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web-v2', port: 80 }] }] } };
    api.create(HTTP, gatewayRoute as never);
    api.create(HTTP, mixed as never);
    await waitFor(() => stored().length === 1, 5000, { what: 'the mixed route stored' });
    assert.deepEqual(stored(), ['HTTPRoute shop/both kubernetes kubernetes']);
    const route = (compilePolicyFiles(JSON.parse(collector.policies.frame()).files).routes ?? []).find((r) => r.id === 'shop/both')!;
    assert.deepEqual(route.parents, [{ namespace: 'shop', name: 'web', port: 80 }]);
    // A route that was the mesh's and now names only a Gateway leaves the set, also unreported.
    api.patch(HTTP, 'shop', 'both', { spec: { parentRefs: [{ name: 'public' }] } });
    await waitFor(() => stored().length === 0, 5000, { what: 'the route out of the set' });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(api.list('v1/events', 'shop'), [], 'no Event');
    const k = collector.kubernetes!.status();
    assert.deepEqual([k.refused, k.policyObjects, k.ignoredRoutes], [[], 0, 2]);
    const table = await runCli(['status'], { env: k8s.cliEnv() } as never);
    assert.match(table.stdout, /^kubernetes: synced; .*0 policy objects in force, 0 refused, 2 gateway routes left alone \(/m);
  });

  it('a cluster without the Gateway API: the route kinds are "not installed", the rest is watched', async function () {
    await start({ gatewayApi: false });
    const k = collector.kubernetes!.status();
    assert.deepEqual([k.synced, k.policyKinds.HTTPRoute, k.policyKinds.GRPCRoute, k.policyKinds.FaultInjection], [true, 'not installed', 'not installed', 'palisade.dev/v1']);
  });
});

/** What the table chooses, by name (compiled objects differ only in their source and line). */
function choice(table: RouteTable, service: string, port: number, client: string, req: RouteRequest): unknown {
  const c = table.lookup('shop', service, port, client)?.select(req);
  if (!c) return undefined;
  const f = c.rule.fault === undefined ? undefined : table.fault(c.rule.fault);
  return {
    route: c.route.id,
    rule: c.rule.index,
    backends: c.rule.backends.map((b) => `${b.namespace}/${b.name}:${b.port}=${b.weight}`),
    ...(f ? { fault: { ms: f.delay?.ms, percent: f.delay?.percent, status: f.abort?.status, abortPercent: f.abort?.percent } } : {}),
  };
}

function requests(): RouteRequest[] {
  const out: RouteRequest[] = [];
  for (const method of ['GET', 'POST']) {
    for (const p of ['/', '/api', '/api/x', '/apix', '/helloworld.Greeter/SayHello', '/helloworld.Greeter/Other']) {
      const headerSets: Array<Record<string, string[]>> = [{}, { 'x-user-group': ['beta'] }, { 'x-user-group': ['alpha'] }, { 'content-type': ['application/grpc'] }];
      for (const headers of headerSets) out.push({ method, path: p, query: '', headers });
    }
  }
  return out;
}
