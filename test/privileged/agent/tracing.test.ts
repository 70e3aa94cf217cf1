/**
 * Distributed tracing across the mesh (real eBPF, real HBONE): a client pod on node-1 calls web-2
 * on node-2 with trace headers, through the Service `web` (its virtual IP, an HTTPRoute attached:
 * node-1's proxy serves the request as HTTP) and straight to the pod's address (node-1 tunnels
 * TCP, node-2 parses HTTP); the proxies' spans arrive at an OTLP/HTTP endpoint in the test's own
 * namespace (test/fixtures/otlp-relay.js) and are decoded with the official OTLP definitions;
 * web-2 gets the trace continued, and the flow records carry the trace id.
 */
import { strict as assert } from 'node:assert';
import { spiffeId } from '../../../common/identity';
import {
  fixturePath,
  JsonLines,
  requirePrivileges,
  startFixture,
  startMeshAgent,
  startTestCollector,
  startWebApp,
  sweepStale,
  tearDown,
  Topology,
  waitFor,
  type AgentProcess,
  type NodeNs,
  type PodNs,
  type TestCollector,
} from '../../harness';
import { decodeSpans, type ReceivedSpan } from '../../harness/otlp-receiver';

const CLIENT_ID = spiffeId('cluster.local', 'default', 'client');
const WEB_ID = spiffeId('cluster.local', 'default', 'web');
const SERVER = 2;
const CLIENT = 3;
const VIP = '10.96.0.40';

const SERVICES = `services:
  - {name: web, namespace: default, vips: [${VIP}], ports: [{port: 80, targetPort: 8080}], selector: {app: web}}
`;

const WEB_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{kind: Service, name: web, port: 80}]
  rules:
  - backendRefs: [{name: web, port: 80}]
`;

/** What every span of the allowed GET /echo from client to web-2 says, whichever hop made it. */
function assertEchoSpan(s: ReceivedSpan): void {
  assert.equal(s.name, 'GET');
  assert.equal(s.resource['service.name'], 'palisade-proxy');
  assert.equal(s.attributes['palisade.source.principal'], CLIENT_ID);
  assert.equal(s.attributes['palisade.destination.principal'], WEB_ID);
  assert.equal(s.attributes['palisade.source.workload'], 'client');
  assert.equal(s.attributes['palisade.destination.workload'], 'web2');
  assert.equal(s.attributes['palisade.verdict'], 'allowed');
  assert.equal(s.attributes['palisade.mtls'], true);
  assert.equal(s.attributes['http.request.method'], 'GET');
  assert.equal(s.attributes['url.path'], '/echo');
  assert.equal(s.attributes['http.response.status_code'], 200);
  assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
}

describe('Tracing: spans per hop across nodes, W3C and B3 (real eBPF, real HBONE)', function () {
  this.timeout(180_000);

  let topo: Topology;
  let collector: TestCollector;
  let node1: NodeNs;
  let node2: NodeNs;
  let client: PodNs;
  let web2: PodNs;
  let agent1: AgentProcess;
  let agent2: AgentProcess;
  let relay: JsonLines;

  const spans = (): ReceivedSpan[] =>
    (relay.lines as Array<{ path?: string; body?: string }>).filter((l) => l.path === '/v1/traces').flatMap((l) => decodeSpans(Buffer.from(l.body!, 'base64')));

  async function spansOf(traceId: string, count: number): Promise<ReceivedSpan[]> {
    return waitFor(() => {
      const s = spans().filter((x) => x.traceId === traceId);
      return s.length >= count ? s : undefined;
    }, 15_000, { what: `${count} spans of trace ${traceId}` });
  }

  async function curl(headers: string[], url: string): Promise<{ code: number; body: any; status: string }> {
    const args = ['-s', '-m', '10', '-o', '-', '-w', '\n%{http_code}', ...headers.flatMap((h) => ['-H', h]), url];
    const r = await topo.exec(client, 'curl', args);
    const lines = r.stdout.trimEnd().split('\n');
    const status = lines.pop()!;
    let body: any;
    try {
      body = JSON.parse(lines.join('\n'));
    } catch {
      body = lines.join('\n');
    }
    return { code: r.code ?? -1, body, status };
  }

  before(async function () {
    requirePrivileges();
    sweepStale();
    collector = await startTestCollector();
    topo = await Topology.create({ label: 'tracing', nodes: 2 });
    [node1, node2] = topo.nodes as [NodeNs, NodeNs];
    client = await topo.addPod(node1, 'client');
    web2 = await topo.addPod(node2, 'web2');
    const otel = await topo.addExternalHost('otel');
    relay = (await startFixture(topo, otel, process.execPath, [fixturePath('otlp-relay.js'), otel.ip, '4318'], { ready: (l) => l?.listening === true, name: 'the OTLP relay' })).lines;
    await startWebApp(topo, web2, 'web-2');
    const trace = ['--trace-otlp', `http://${otel.ip}:4318`, '--trace-sample-rate', '0'];
    agent1 = startMeshAgent(topo, node1, collector, { pods: [{ pod: client, serviceAccount: 'client' }], servicesYaml: SERVICES, extraArgs: trace });
    agent2 = startMeshAgent(topo, node2, collector, { pods: [{ pod: web2, serviceAccount: 'web', strict: true, labels: { app: 'web' } }], extraArgs: trace });
    await Promise.all([agent1.ready, agent2.ready]);
    await waitFor(async () => (await curl([], `http://${web2.ip}:8080/`)).status === '200' || undefined, 20_000, { what: 'web-2 through the mesh' });
    await waitFor(() => collector.running.snapshot().services?.find((x) => x.name === 'web')?.endpoints.some((e) => e.ready) || undefined, 20_000, { what: 'the Service web with its endpoint' });
    const applied = await collector.running.policies.apply([{ source: 'route.yaml', text: WEB_ROUTE }], false, 'test');
    assert.equal(applied.applied, true, JSON.stringify(applied));
    // the route reaches node-1: a request to the Service's address is routed (its flow names the route)
    await waitFor(
      async () => (await curl([], `http://${VIP}/`)).status === '200' && collector.running.flows.query({}).some((f) => f.traffic?.route === 'default/web') || undefined,
      30_000,
      { what: 'requests to the Service routed by node-1' },
    );
  });

  after(() => tearDown({ agents: [agent1, agent2], topo, collector }));

  it('continues a W3C trace through a routed Service: node-1 server span under the client\'s, node-1 client span under it, node-2 server span under that, web-2 gets node-2\'s client span as parent', async function () {
    const traceId = '5bf92f3577b34da6a3ce929d0e0e4737';
    const parent = '00f067aa0ba902b8';
    const r = await curl([`traceparent: 00-${traceId}-${parent}-01`, 'tracestate: vendor=abc'], `http://${VIP}/echo?x=1`);
    assert.equal(r.status, '200', JSON.stringify(r));
    const got = await spansOf(traceId, 4);
    const on = (node: NodeNs, kind: number): ReceivedSpan => {
      const s = got.filter((x) => x.resource['palisade.node'] === node.name && x.kind === kind);
      assert.equal(s.length, 1, `one ${kind === SERVER ? 'server' : 'client'} span from ${node.name}: ${JSON.stringify(got)}`);
      return s[0]!;
    };
    const [server1, client1, server2, client2] = [on(node1, SERVER), on(node1, CLIENT), on(node2, SERVER), on(node2, CLIENT)];
    assert.equal(server1.parentSpanId, parent, "node-1's server span continues the client's span");
    assert.equal(client1.parentSpanId, server1.spanId);
    assert.equal(server2.parentSpanId, client1.spanId, "node-2's server span is the child of node-1's client span");
    assert.equal(client2.parentSpanId, server2.spanId);
    assert.equal(new Set([server1, client1, server2, client2].map((s) => s.spanId)).size, 4);
    assert.equal(r.body.headers.traceparent, `00-${traceId}-${client2.spanId}-01`);
    assert.equal(r.body.headers.tracestate, 'vendor=abc');
    for (const s of [server1, client1, server2, client2]) assertEchoSpan(s);
    // node-1's spans say how it routed the request; node-2's how it admitted it
    for (const s of [server1, client1]) {
      assert.equal(s.attributes['palisade.direction'], 'outbound');
      assert.equal(s.attributes['palisade.reason'], 'routed');
      assert.equal(s.attributes['palisade.route'], 'default/web');
      assert.equal(s.attributes['palisade.route.backend'], 'default/web');
      assert.equal(s.attributes['palisade.route.attempts'], 1);
      assert.equal(s.attributes['destination.address'], web2.ip);
    }
    for (const s of [server2, client2]) {
      assert.equal(s.attributes['palisade.direction'], 'inbound');
      assert.equal(s.attributes['palisade.reason'], 'no-policy');
    }
    // the hops nest in time: node-1's client span holds node-2's server span
    assert.ok(BigInt(client1.startTimeUnixNano) >= BigInt(server1.startTimeUnixNano));
    assert.ok(BigInt(server2.startTimeUnixNano) + 50_000_000n >= BigInt(client1.startTimeUnixNano), 'node-2 received after node-1 sent (clocks of one machine, 50 ms slack for rounding to ms)');
    // both nodes' flow records carry the trace id
    await waitFor(() => {
      const traced = collector.running.flows.query({}).filter((f) => f.traceId === traceId);
      return new Set(traced.map((f) => f.node)).size === 2 || undefined;
    }, 15_000, { what: 'the traced flows of both nodes at the collector' });
  });

  it('continues a W3C trace to a pod\'s address: node-1 tunnels TCP (no spans), node-2 server span under the client\'s span, its client span under that', async function () {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const r = await curl([`traceparent: 00-${traceId}-${parent}-01`, 'tracestate: vendor=abc'], `http://${web2.ip}:8080/echo?x=1`);
    assert.equal(r.status, '200', JSON.stringify(r));
    const got = await spansOf(traceId, 2);
    const server = got.find((s) => s.kind === SERVER)!;
    const clientSpan = got.find((s) => s.kind === CLIENT)!;
    assert.ok(server && clientSpan, JSON.stringify(got));
    assert.equal(server.parentSpanId, parent);
    assert.equal(clientSpan.parentSpanId, server.spanId);
    assert.notEqual(clientSpan.spanId, server.spanId);
    // web-2 sees the trace continued from node-2's client span, sampled, tracestate kept
    assert.equal(r.body.headers.traceparent, `00-${traceId}-${clientSpan.spanId}-01`);
    assert.equal(r.body.headers.tracestate, 'vendor=abc');
    for (const s of [server, clientSpan]) {
      assertEchoSpan(s);
      assert.equal(s.resource['palisade.node'], node2.name, 'node-1 tunnels TCP to a pod address: no span of its own');
      assert.equal(s.attributes['palisade.reason'], 'no-policy');
    }
    assert.ok(BigInt(clientSpan.startTimeUnixNano) >= BigInt(server.startTimeUnixNano));
    // the flow record carries the trace id
    await waitFor(() => collector.running.flows.query({}).find((f) => f.traceId === traceId) || undefined, 15_000, { what: 'the traced flow at the collector' });
    // by now node-1 would have exported any span it made for this request (it reported the flow): none, of either kind
    const fromNode1 = spans().filter((x) => x.traceId === traceId && x.resource['palisade.node'] === node1.name);
    assert.deepEqual(fromNode1, [], 'node-1 tunnels TCP to a pod address: no span of its own, whenever it came');
  });

  it('interoperates with B3 multi-header: the same trace continues, in B3 and W3C, to web-2', async function () {
    const traceId = '463ac35c9f6413ad48485a3953bb6124';
    const parent = 'a2fb4a1d1a96d312';
    const r = await curl([`X-B3-TraceId: ${traceId}`, `X-B3-SpanId: ${parent}`, 'X-B3-Sampled: 1'], `http://${web2.ip}:8080/echo`);
    assert.equal(r.status, '200', JSON.stringify(r));
    const got = await spansOf(traceId, 2);
    const server = got.find((s) => s.kind === SERVER)!;
    const clientSpan = got.find((s) => s.kind === CLIENT)!;
    assert.equal(server.parentSpanId, parent);
    assert.equal(clientSpan.parentSpanId, server.spanId);
    assert.equal(r.body.headers['x-b3-traceid'], traceId);
    assert.equal(r.body.headers['x-b3-spanid'], clientSpan.spanId);
    assert.equal(r.body.headers['x-b3-sampled'], '1');
    assert.equal(r.body.headers.traceparent, `00-${traceId}-${clientSpan.spanId}-01`);
  });

  it('interoperates with B3 single-header', async function () {
    const traceId = '80f198ee56343ba864fe8b2a57d3eff7';
    const parent = 'e457b5a2e4d86bd1';
    const r = await curl([`b3: ${traceId}-${parent}-1`], `http://${web2.ip}:8080/echo`);
    assert.equal(r.status, '200', JSON.stringify(r));
    const got = await spansOf(traceId, 2);
    const clientSpan = got.find((s) => s.kind === CLIENT)!;
    assert.equal(got.find((s) => s.kind === SERVER)!.parentSpanId, parent);
    assert.equal(r.body.headers.b3, `${traceId}-${clientSpan.spanId}-1`);
  });

  it('at sampling 0 starts no trace for a plain request, but always traces a 5xx, as a new trace', async function () {
    const before = spans().length;
    const ok = await curl([], `http://${web2.ip}:8080/echo?plain=1`);
    assert.equal(ok.status, '200');
    assert.match(ok.body.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, 'an unsampled trace still propagates');
    const failed = await curl([], `http://${web2.ip}:8081/nothing-listens`);
    assert.equal(failed.status, '503', JSON.stringify(failed));
    const got = await waitFor(() => {
      const s = spans().slice(before).filter((x) => x.attributes['http.response.status_code'] === 503);
      return s.length >= 1 ? s : undefined;
    }, 15_000, { what: 'the 503 span' });
    assert.equal(got[0]!.kind, SERVER);
    assert.equal(got[0]!.parentSpanId, '');
    assert.equal(got[0]!.status.code, 2);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(spans().slice(before).filter((x) => x.attributes['url.path'] === '/echo').length, 0, 'the unsampled request exported nothing');
  });
});
