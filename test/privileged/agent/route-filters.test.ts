/**
 * Route filters end to end (issue #18): real pods on two nodes, real agents joined to a real
 * collector, an HTTPRoute and a GRPCRoute with filters applied through the collector's store. The
 * client pod talks to a Service's virtual IP; its node's proxy applies the filters, and the tests
 * look at what the apps saw: the headers and path the server received, the headers the client got,
 * the redirect the client got (no server asked), the copies the mirror's pod received while the
 * client got the primary's answer — over HTTP/1.1, h2c and gRPC (@grpc/grpc-js).
 */
import { strict as assert } from 'node:assert';
import {
  fixturePath,
  nodeMetric,
  requirePrivileges,
  startFixture,
  startMeshAgent,
  startTestCollector,
  sweepStale,
  tearDown,
  Topology,
  waitFor,
  type AgentProcess,
  type JsonLines,
  type NodeNs,
  type PodNs,
  type TestCollector,
} from '../../harness';
import { FLOW_COLUMNS, flowCells } from '../../../cli/flow-format';
import type { FlowRecord } from '../../../common/flow';

interface Response {
  status: number;
  headers: Record<string, string | string[]>;
  body: string;
}
interface Seen {
  event: 'request';
  name: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  bytes: number;
}
interface FlowLine {
  event: 'flow';
  verdict: string;
  reason: string;
  source: { ip: string };
  destination: { ip: string; workload?: string };
  durationMs: number;
  http?: { method: string; path: string; status: number; grpcStatus?: number };
  traffic?: { route: string; rule: number; backend: string; attempts: number };
}

const GRPC_PORT = 50051;
const VIPS = { echo: '10.96.0.40', shadow: '10.96.0.41', greeter: '10.96.0.42', grpcShadow: '10.96.0.43', nowhere: '10.96.0.44' };
const SERVICES = `services:
  - {name: echo, namespace: default, vips: [${VIPS.echo}], ports: [{port: 80, targetPort: 8080}], selector: {app: echo}}
  - {name: shadow, namespace: default, vips: [${VIPS.shadow}], ports: [{port: 80, targetPort: 8080}], selector: {app: shadow}}
  - {name: greeter, namespace: default, vips: [${VIPS.greeter}], ports: [{name: grpc, port: ${GRPC_PORT}, targetPort: ${GRPC_PORT}}], selector: {app: greeter}}
  - {name: greeter-shadow, namespace: default, vips: [${VIPS.grpcShadow}], ports: [{name: grpc, port: ${GRPC_PORT}, targetPort: ${GRPC_PORT}}], selector: {app: grpc-shadow}}
  - {name: nowhere, namespace: default, vips: [${VIPS.nowhere}], ports: [{port: 80, targetPort: 8080}], selector: {app: nobody}}
`;

/** The route's own response header, on the proxy's own answers too (a fault's abort, a redirect, a timeout). */
const X_ROUTE = '{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: a}]}}';
const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Env, value: canary}]
        add: [{name: X-Tag, value: added}]
        remove: [X-Debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: X-Frame-Options, value: DENY}], remove: [x-upstream-secret]}
    - type: URLRewrite
      urlRewrite: {hostname: echo.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    backendRefs:
    - name: echo
      port: 80
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-backend, value: echo}]}}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {scheme: https, hostname: www.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}}
    - ${X_ROUTE}
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /lost}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: nowhere, port: 80}}}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /abort}}]
    filters: [${X_ROUTE}, {type: ExtensionRef, extensionRef: {group: palisade.dev, kind: FaultInjection, name: abort-all}}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    filters: [${X_ROUTE}]
    timeouts: {request: 300ms}
    backendRefs: [{name: shadow, port: 80}]
  - backendRefs: [{name: echo, port: 80}]
---
apiVersion: palisade.dev/v1
kind: FaultInjection
metadata: {name: abort-all, namespace: default}
spec: {abort: {httpStatus: 503, percentage: {value: 100}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: default}
spec:
  parentRefs: [{kind: Service, name: greeter}]
  rules:
  - matches: [{method: {service: demo.Greeter}}]
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-env, value: canary}]}}
    - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: greeter}]}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: greeter-shadow, port: ${GRPC_PORT}}}}
    backendRefs: [{name: greeter, port: ${GRPC_PORT}}]
`;

describe('Route filters in the source node proxy (HTTPRoute, GRPCRoute; real agents, real pods)', function () {
  this.timeout(300_000);

  let topo: Topology;
  let collector: TestCollector;
  let client: PodNs;
  let node1: NodeNs;
  let agent1: AgentProcess;
  let agent2: AgentProcess;
  const servers = new Map<string, JsonLines>();

  const flows = (): FlowLine[] => agent1.logs.lines.filter((l): l is FlowLine => (l as FlowLine)?.event === 'flow' && (l as FlowLine).source?.ip === client.ip);
  const seen = (name: string): Seen[] => servers.get(name)!.lines.filter((l): l is Seen => (l as Seen).event === 'request');
  const grpcCalls = (name: string): { method: string; metadata: Record<string, string> }[] =>
    servers.get(name)!.lines.filter((l) => (l as { event?: string }).event === 'call') as { method: string; metadata: Record<string, string> }[];

  async function request(count: number, method: string, path: string, extra: string[] = []): Promise<{ responses: Response[]; ms: number }> {
    const r = await topo.exec(client, process.execPath, [fixturePath('http-request.js'), VIPS.echo, '80', String(count), method, path, ...extra], { timeoutMs: 60_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(last) as { responses: Response[]; ms: number };
    } catch {
      throw new Error(`http-request: no JSON (code ${r.code}): ${r.stdout.slice(-500)} ${r.stderr}`);
    }
  }
  async function grpc<T>(args: string[]): Promise<T> {
    const r = await topo.exec(client, process.execPath, [fixturePath('grpc-client.js'), VIPS.greeter, String(GRPC_PORT), ...args], { timeoutMs: 60_000 });
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as T;
  }

  before(async function () {
    requirePrivileges();
    sweepStale();
    collector = await startTestCollector();
    topo = await Topology.create({ label: 'filters', nodes: 2 });
    const node2 = topo.nodes[1] as NodeNs;
    node1 = topo.nodes[0] as NodeNs;
    client = await topo.addPod(node1, 'client');
    const echo = await topo.addPod(node1, 'echo');
    const shadow = await topo.addPod(node2, 'shadow');
    const greeter = await topo.addPod(node2, 'greeter');
    const grpcShadow = await topo.addPod(node1, 'grpc-shadow');
    const http = async (pod: PodNs, name: string, mode = ''): Promise<void> => {
      servers.set(name, (await startFixture(topo, pod, process.execPath, [fixturePath('http-echo-server.js'), pod.ip, '8080', name, mode], { name })).lines);
    };
    const grpcServer = async (pod: PodNs, name: string): Promise<void> => {
      servers.set(name, (await startFixture(topo, pod, process.execPath, [fixturePath('grpc-server.js'), pod.ip, String(GRPC_PORT), name], { timeoutMs: 30_000, name })).lines);
    };
    // the mirror's pod answers after 1.5 s: a copy never holds up the original
    await Promise.all([http(echo, 'echo'), http(shadow, 'shadow', 'slow:1500'), grpcServer(greeter, 'greeter'), grpcServer(grpcShadow, 'grpc-shadow')]);
    agent1 = startMeshAgent(topo, node1, collector, {
      pods: [
        { pod: client, serviceAccount: 'client' },
        { pod: echo, serviceAccount: 'web', labels: { app: 'echo' } },
        { pod: grpcShadow, serviceAccount: 'web', labels: { app: 'grpc-shadow' } },
      ],
      servicesYaml: SERVICES,
      extraArgs: ['--access-log', 'all', '--metrics-address', '0.0.0.0:15020'],
    });
    agent2 = startMeshAgent(topo, node2, collector, {
      pods: [
        { pod: shadow, serviceAccount: 'web', labels: { app: 'shadow' } },
        { pod: greeter, serviceAccount: 'web', labels: { app: 'greeter' } },
      ],
    });
    await Promise.all([agent1.ready, agent2.ready]);
    const ready = (name: string): number => collector.running.snapshot().services?.find((s) => s.name === name)?.endpoints.filter((e) => e.ready).length ?? 0;
    await waitFor(() => ['echo', 'shadow', 'greeter', 'greeter-shadow'].every((n) => ready(n) === 1), 20_000, { what: 'the services and their endpoints in the registry' });
    const r = await collector.running.policies.apply([{ source: 'filters.yaml', text: ROUTES }], false, 'test');
    assert.equal(r.applied, true, JSON.stringify(r));
    try {
      await waitFor(async () => (await request(1, 'GET', '/')).responses[0]?.status === 200 && flows().some((f) => f.traffic?.route === 'default/echo'), 20_000, { what: 'routed requests' });
    } catch (err) {
      console.log(agent1.logs.lines.slice(-30).map((l) => JSON.stringify(l)).join('\n'));
      throw err;
    }
  });

  after(() => tearDown({ agents: [agent1, agent2], topo, collector }));

  for (const proto of ['HTTP/1.1', 'h2c'] as const) {
    it(`${proto}: the app receives the rewritten path and Host and the modified headers (rule, then backendRef); the client gets the modified response headers`, async function () {
      const n0 = seen('echo').length;
      const r = await request(1, 'GET', '/api/users?id=7', ['x-env:prod', 'x-debug:1', 'x-tag:mine', ...(proto === 'h2c' ? ['--h2'] : [])]);
      const res = r.responses[0]!;
      const got = seen('echo').slice(n0);
      console.log(`      ${proto}: the app saw ${got[0]?.method} ${got[0]?.url} host ${got[0]?.headers[':authority'] ?? got[0]?.headers.host}, x-env ${got[0]?.headers['x-env']}, x-tag ${got[0]?.headers['x-tag']}; the client got ${res.status} x-frame-options ${String(res.headers['x-frame-options'])}`);
      assert.equal(res.status, 200);
      assert.equal(got.length, 1);
      const h = got[0]!.headers;
      assert.equal(got[0]!.url, '/v2/users?id=7', 'the PathPrefix /api replaced by /v2, the query kept');
      assert.equal(proto === 'h2c' ? h[':authority'] ?? h.host : h.host, 'echo.internal', 'URLRewrite hostname');
      assert.equal(h['x-env'], 'canary', 'set replaced the client\'s value');
      assert.equal(h['x-tag'], 'mine, added', 'add kept the client\'s value and added one');
      assert.equal(h['x-debug'], undefined, 'removed');
      assert.equal(h['x-backend'], 'echo', 'the backendRef\'s own filter');
      assert.equal(res.headers['x-frame-options'], 'DENY', 'a response header set');
      assert.equal(res.headers['x-upstream-secret'], undefined, 'a response header removed');
      assert.equal(res.headers['x-served-by'], 'echo', 'the others relayed as sent');
      const f = flows().filter((x) => x.http?.path === '/api/users').at(-1);
      assert.equal(f?.reason, 'routed');
    });
  }

  it('RequestRedirect: the client gets the 301 and its Location from its node\'s proxy, no backend is asked, the flow says redirect', async function () {
    const n0 = seen('echo').length;
    const r = await request(2, 'GET', '/old/page?q=1');
    const h2 = await request(1, 'GET', '/old', ['--h2']);
    console.log(`      redirect: ${r.responses[0]!.status} ${String(r.responses[0]!.headers.location)}; h2c: ${h2.responses[0]!.status} ${String(h2.responses[0]!.headers.location)}`);
    for (const res of r.responses) {
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, 'https://www.example.com/new/page?q=1', 'scheme, hostname and the prefix replaced; the well-known port left out; the query kept');
    }
    assert.equal(h2.responses[0]!.status, 301);
    assert.equal(h2.responses[0]!.headers.location, 'https://www.example.com/new');
    assert.equal(seen('echo').length, n0, 'no request reached the app');
    const f = flows().filter((x) => x.http?.path === '/old/page').slice(-2);
    assert.equal(f.length, 2, 'one flow per redirected request (on one keep-alive connection)');
    assert.ok(f.every((x) => x.verdict === 'allowed' && x.reason === 'redirect' && x.http?.status === 301 && x.traffic?.route === 'default/echo' && x.traffic.rule === 1));
    assert.ok(!agent1.logs.lines.some((l) => (l as { event?: string; path?: string }).event === 'denied' && (l as { path?: string }).path === '/old/page'), 'a redirect is no denial');
  });

  it('RequestMirror: the mirror\'s pod gets a copy of each request, body included, while the client gets the primary\'s answer without waiting for the mirror', async function () {
    const [e0, s0] = [seen('echo').length, seen('shadow').length];
    const r = await request(10, 'POST', '/mirror/orders', ['x-order:1', '--body=2048']);
    await waitFor(() => seen('shadow').length - s0 === 10, 20_000, { what: 'the ten copies at the mirror' });
    const copies = seen('shadow').slice(s0);
    console.log(`      mirror: the client got ${r.responses.map((x) => x.status).join(',')} from ${[...new Set(r.responses.map((x) => (JSON.parse(x.body) as { name: string }).name))].join(',')} in ${r.ms} ms (the mirror answers after 1.5 s each); the mirror got ${copies.length} copies of ${copies[0]?.bytes} bytes`);
    assert.ok(r.responses.every((x) => x.status === 200 && (JSON.parse(x.body) as { name: string }).name === 'echo'), 'every answer is the primary\'s');
    assert.equal(seen('echo').length - e0, 10);
    assert.ok(r.ms < 5 * 1500, `the ten requests took ${r.ms} ms: they did not wait for their copies (1.5 s each)`);
    assert.ok(copies.every((c) => c.method === 'POST' && c.url === '/mirror/orders' && c.bytes === 2048 && c.headers['x-order'] === '1'), 'each copy is the request: method, path, headers, whole body');
  });

  it('RequestMirror: each copy has a flow record of its own (reason mirror: the mirror\'s pod, its status and duration), beside the primary\'s, at the agent and in the collector\'s store', async function () {
    const since = Date.now();
    const atAgent = (): FlowLine[] => flows().filter((f) => f.http?.path === '/mirror/flows');
    const r = await request(10, 'GET', '/mirror/flows');
    assert.ok(r.responses.every((x) => x.status === 200));
    await waitFor(() => atAgent().filter((f) => f.reason === 'mirror').length === 10 || undefined, 20_000, { what: 'the ten copies\' flows at the agent' });
    const stored = await waitFor(() => {
      const got = collector.running.flows.query({ node: node1.name, route: 'default/echo', httpPath: '/mirror/flows', since, limit: 100 });
      return got.filter((f) => f.reason === 'mirror').length === 10 && got.length === 20 ? got : undefined;
    }, 20_000, { what: 'the twenty flows in the collector\'s store' });
    const line = (f: FlowRecord): string => flowCells(f).join('  ');
    const primary = stored.filter((f) => f.reason === 'routed');
    const mirrored = stored.filter((f) => f.reason === 'mirror');
    console.log(`      flows: ${primary.length} primary, ${mirrored.length} mirror; as palisade observe prints them:\n        ${line(primary[0]!)}\n        ${line(mirrored[0]!)}`);
    assert.equal(primary.length, 10);
    assert.ok(primary.every((f) => f.destination.workload === 'echo' && f.http?.status === 200 && f.traffic?.backend === 'default/echo'));
    assert.ok(mirrored.every((f) => f.verdict === 'allowed' && f.destination.workload === 'shadow' && f.http?.status === 200 && f.traffic?.backend === 'default/shadow' && f.traffic.route === 'default/echo'), 'each copy: the mirror\'s pod and its answer');
    assert.ok(mirrored.every((f) => f.durationMs >= 1400), `each copy took the mirror's 1.5 s: ${mirrored.map((f) => f.durationMs).join(',')}`);
    assert.ok(primary.every((f) => f.durationMs < 1400), 'the primaries did not wait for it');
    assert.ok(mirrored.every((f) => flowCells(f)[FLOW_COLUMNS.indexOf('REASON/POLICY')] === 'mirror'), 'observe tells them apart');
  });

  it('a mirror that cannot be sent (its Service has no ready endpoint) never fails the original, and is counted, not lost', async function () {
    const metrics = `${node1.underlayIp}:15020`;
    const mirrors = (outcome: string): Promise<number> => nodeMetric(topo, node1, metrics, 'palisade_traffic_mirrors_total', { outcome });
    const before = await mirrors('dropped-no-endpoint');
    const r = await request(5, 'GET', '/lost/x');
    const after = await mirrors('dropped-no-endpoint');
    console.log(`      mirror to nowhere: the client got ${r.responses.map((x) => x.status).join(',')}; palisade_traffic_mirrors_total{outcome="dropped-no-endpoint"} ${before} -> ${after}`);
    assert.ok(r.responses.every((x) => x.status === 200), 'every original answered');
    assert.equal(after - before, 5, 'each copy that could not go counted by why');
    // the ten copies of the test before: answered by the slow mirror, their answers read and dropped
    await waitFor(async () => (await mirrors('answered')) >= 10, 15_000, { what: 'the mirror\'s answers counted' });
  });

  it('GRPCRoute: the server receives the modified metadata, the client gets the added response header, and the mirror gets a copy of each call', async function () {
    const [g0, m0] = [grpcCalls('greeter').length, grpcCalls('grpc-shadow').length];
    const calls: { code: number; body?: string; headers?: Record<string, string> }[] = [];
    for (let i = 0; i < 5; i++) calls.push(await grpc(['call', 'say']));
    await waitFor(() => grpcCalls('grpc-shadow').length - m0 === 5, 20_000, { what: 'the five copies at the gRPC mirror' });
    const atServer = grpcCalls('greeter').slice(g0);
    console.log(`      gRPC: codes ${calls.map((c) => c.code).join(',')}, answers from ${[...new Set(calls.map((c) => c.body))].join(',')}; x-route ${calls[0]?.headers?.['x-route']}; the server saw x-env ${atServer[0]?.metadata['x-env']}; the mirror got ${grpcCalls('grpc-shadow').length - m0} calls`);
    assert.ok(calls.every((c) => c.code === 0 && c.body === 'greeter'), 'every call answered by the primary');
    assert.ok(calls.every((c) => c.headers?.['x-route'] === 'greeter'), 'the response header added');
    assert.equal(atServer.length, 5);
    assert.ok(atServer.every((c) => c.metadata['x-env'] === 'canary'));
    assert.ok(grpcCalls('grpc-shadow').slice(m0).every((c) => c.method === 'Say' && c.metadata['x-env'] === 'canary'), 'each copy a Say call, with the rule\'s metadata');
    const copies = await waitFor(() => {
      const got = flows().filter((f) => f.reason === 'mirror' && f.traffic?.route === 'default/greeter');
      return got.length === 5 ? got : undefined;
    }, 15_000, { what: 'the five copies\' flows (HTTP/2)' });
    assert.ok(copies.every((f) => f.verdict === 'allowed' && f.destination.workload === 'grpc-shadow' && f.http?.status === 200 && f.http.grpcStatus === 0 && f.traffic?.backend === 'default/greeter-shadow'), JSON.stringify(copies[0]));
  });

  for (const proto of ['HTTP/1.1', 'h2c'] as const) {
    it(`${proto}: the route's ResponseHeaderModifier on the proxy's own answers — a fault's abort (503), a redirect (301), a timeout (504)`, async function () {
      const h2 = proto === 'h2c' ? ['--h2'] : [];
      const abort = (await request(1, 'GET', '/abort/x', h2)).responses[0]!;
      const redirect = (await request(1, 'GET', '/old/x', h2)).responses[0]!;
      const timeout = (await request(1, 'GET', '/slow/x', h2)).responses[0]!;
      console.log(`      ${proto}: abort ${abort.status} x-route ${String(abort.headers['x-route'])}; redirect ${redirect.status} x-route ${String(redirect.headers['x-route'])}; timeout ${timeout.status} x-route ${String(timeout.headers['x-route'])}`);
      assert.deepEqual([abort.status, abort.headers['x-route']], [503, 'a']);
      assert.deepEqual([redirect.status, redirect.headers['x-route'], redirect.headers.location], [301, 'a', 'https://www.example.com/new/x']);
      assert.deepEqual([timeout.status, timeout.headers['x-route']], [504, 'a']);
    });
  }

  it('a route with a filter touching the mesh\'s own headers is refused whole with one line, nothing applied', async function () {
    const version = collector.running.policies.frame();
    const bad = ROUTES.replace('remove: [X-Debug]', 'remove: [X-Debug, x-forwarded-client-cert]');
    await assert.rejects(collector.running.policies.apply([{ source: 'bad.yaml', text: bad }], false, 'test').then((r) => assert.equal(r.applied, true, JSON.stringify(r))), (e: Error) => /requestHeaderModifier\.remove\[1\]: "x-forwarded-client-cert" is the mesh's or the connection's own header/.test(e.message));
    assert.equal(collector.running.policies.frame(), version, 'the version in force did not change');
  });
});
