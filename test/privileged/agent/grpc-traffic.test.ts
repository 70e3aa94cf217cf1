/**
 * HTTP/2 and gRPC on the routed path (issue #18), end to end: real pods on two nodes, real agents
 * joined to a real collector, GRPCRoutes and an AuthorizationPolicy applied through the collector's
 * store, real gRPC (@grpc/grpc-js) in the pods. The client pod calls a Service's virtual IP over
 * one channel (one HTTP/2 connection); its node's proxy terminates HTTP/2 and routes each call
 * (stream) on its own, as a stream of an HTTP/2 session to the chosen endpoint — over HBONE to the
 * other node or through this node's destination authorization.
 */
import { strict as assert } from 'node:assert';
import {
  fixturePath,
  JsonLines,
  requirePrivileges,
  startFixture,
  startMeshAgent,
  startTestCollector,
  sweepStale,
  tearDown,
  Topology,
  waitFor,
  type AgentProcess,
  type NodeNs,
  type PodNs,
  type TestCollector,
} from '../../harness';

interface UnarySummary {
  ok: boolean;
  bodies: Record<string, number>;
  codes: Record<string, number>;
  ms: number;
}

interface FlowLine {
  event: 'flow';
  direction: string;
  verdict: string;
  reason: string;
  durationMs: number;
  source: { ip: string };
  destination: { ip: string; workload?: string };
  http?: { method: string; path: string; status: number; grpcStatus?: number };
  traffic?: { route: string; rule: number; backend: string; attempts: number };
}

const PORT = 50051;
const VIPS = { greeter: '10.96.0.30', canary: '10.96.0.31', v1: '10.96.0.32', v2: '10.96.0.33', slow: '10.96.0.34', empty: '10.96.0.35', flaky: '10.96.0.36' };

const svc = (name: string, vip: string, selector: string): string => `  - {name: ${name}, namespace: default, vips: [${vip}], ports: [{name: grpc, port: ${PORT}, targetPort: ${PORT}}], selector: {${selector}}}\n`;
const SERVICES = `services:
${svc('greeter', VIPS.greeter, 'app: greeter, pool: main')}${svc('greeter-canary', VIPS.canary, 'app: greeter')}${svc('greeter-v1', VIPS.v1, 'app: greeter, version: v1')}${svc('greeter-v2', VIPS.v2, 'app: greeter, version: v2')}${svc('slow', VIPS.slow, 'app: slow')}${svc('empty', VIPS.empty, 'app: nobody')}${svc('flaky', VIPS.flaky, 'app: flaky')}`;

const grpcRoute = (name: string, spec: string): string => `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: ${name}, namespace: default}
spec:
${spec}`;

const GREETER_ROUTE = grpcRoute('greeter', `  parentRefs: [{kind: Service, name: greeter, port: ${PORT}}]
  rules:
  - matches: [{method: {service: demo.Greeter}}, {method: {service: demo.Admin}}]
    backendRefs: [{name: greeter, port: ${PORT}}]
`);

const CANARY_ROUTE = (v1: number, v2: number): string => grpcRoute('greeter-canary', `  parentRefs: [{kind: Service, name: greeter-canary}]
  rules:
  - matches: [{method: {service: demo.Greeter, method: Say}}]
    backendRefs: [{name: greeter-v1, port: ${PORT}, weight: ${v1}}, {name: greeter-v2, port: ${PORT}, weight: ${v2}}]
`);

const SLOW_ROUTE = grpcRoute('slow', `  parentRefs: [{kind: Service, name: slow}]
  rules:
  - backendRefs: [{name: slow, port: ${PORT}}]
`);

const EMPTY_ROUTE = grpcRoute('empty', `  parentRefs: [{kind: Service, name: empty}]
  rules:
  - backendRefs: [{name: empty, port: ${PORT}}]
`);

/** GRPCRoute has no retry field: gRPC calls get explicit retries from an HTTPRoute's (a trailers-only UNAVAILABLE is its 503). */
const FLAKY_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: flaky, namespace: default}
spec:
  parentRefs: [{kind: Service, name: flaky}]
  rules:
  - backendRefs: [{name: flaky, port: ${PORT}}]
    retry: {codes: [503], attempts: 2, backoff: 25ms}
`;

/** 10 % of the calls to greeter-v1 are aborted by the proxy with UNAVAILABLE (Istio's HTTPFaultInjection.Abort grpcStatus). */
const GRPC_CHAOS = `apiVersion: palisade.dev/v1
kind: FaultInjection
metadata: {name: grpc-chaos, namespace: default}
spec:
  abort: {grpcStatus: UNAVAILABLE, percentage: {value: 10}}
---
${grpcRoute('greeter-v1', `  parentRefs: [{kind: Service, name: greeter-v1}]
  rules:
  - backendRefs: [{name: greeter-v1, port: ${PORT}}]
    filters: [{type: ExtensionRef, extensionRef: {group: palisade.dev, kind: FaultInjection, name: grpc-chaos}}]
`)}`;

/** demo.Admin is denied at the greeter pods (their nodes' destination authorization, per stream). */
const DENY_ADMIN = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: default}
spec:
  selector: {matchLabels: {app: greeter}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/demo.Admin/*"]}}]
`;

describe('HTTP/2 and gRPC on the routed path (GRPCRoute; real agents, real pods, @grpc/grpc-js)', function () {
  this.timeout(300_000);

  let topo: Topology;
  let collector: TestCollector;
  let node1: NodeNs;
  let node2: NodeNs;
  let client: PodNs;
  let agent1: AgentProcess;
  let agent2: AgentProcess;
  const servers = new Map<string, JsonLines>();

  const flowsOf = (agent: AgentProcess): FlowLine[] => agent.logs.lines.filter((l): l is FlowLine => (l as FlowLine)?.event === 'flow');
  const flows = (): FlowLine[] => flowsOf(agent1).filter((f) => f.source?.ip === client.ip);
  const apply = async (yaml: string): Promise<void> => {
    const r = await collector.running.policies.apply([{ source: 'grpc.yaml', text: yaml }], false, 'test');
    assert.equal(r.applied, true, JSON.stringify(r));
  };
  async function grpc<T>(vip: string, args: string[], script = 'grpc-client.js'): Promise<T> {
    const r = await topo.exec(client, process.execPath, [fixturePath(script), vip, String(PORT), ...args], { timeoutMs: 120_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(last) as T;
    } catch {
      throw new Error(`${script}: no JSON (code ${r.code}): ${r.stdout.slice(-500)} ${r.stderr.slice(-1500)}`);
    }
  }
  async function server(pod: PodNs, name: string, slowMs = 2000, mode = 'ok'): Promise<void> {
    const { lines } = await startFixture(topo, pod, process.execPath, [fixturePath('grpc-server.js'), pod.ip, String(PORT), name, String(slowMs), mode], { timeoutMs: 30_000, name });
    servers.set(name, lines);
  }
  const calls = (name: string, method?: string): number => servers.get(name)!.lines.filter((l) => (l as { event?: string }).event === 'call' && (method === undefined || (l as { method?: string }).method === method)).length;

  before(async function () {
    requirePrivileges();
    sweepStale();
    collector = await startTestCollector();
    topo = await Topology.create({ label: 'grpc', nodes: 2 });
    [node1, node2] = topo.nodes as [NodeNs, NodeNs];
    client = await topo.addPod(node1, 'client');
    const a = await topo.addPod(node1, 'greeter-a');
    const b = await topo.addPod(node2, 'greeter-b');
    const c = await topo.addPod(node2, 'greeter-c');
    const d = await topo.addPod(node2, 'greeter-d');
    const slow = await topo.addPod(node2, 'slow');
    const flakyA = await topo.addPod(node2, 'flaky-a');
    const flakyB = await topo.addPod(node2, 'flaky-b');
    await Promise.all([
      server(a, 'greeter-a'),
      server(b, 'greeter-b'),
      server(c, 'greeter-c'),
      server(d, 'greeter-d'),
      server(slow, 'slow', 2000),
      server(flakyA, 'flaky-a', 0, 'flaky'),
      server(flakyB, 'flaky-b'),
    ]);
    agent1 = startMeshAgent(topo, node1, collector, {
      pods: [
        { pod: client, serviceAccount: 'client' },
        { pod: a, serviceAccount: 'greeter', labels: { app: 'greeter', version: 'v1' } },
      ],
      servicesYaml: SERVICES,
      extraArgs: ['--access-log', 'all'],
    });
    agent2 = startMeshAgent(topo, node2, collector, {
      pods: [
        { pod: b, serviceAccount: 'greeter', labels: { app: 'greeter', version: 'v1', pool: 'main' } },
        { pod: c, serviceAccount: 'greeter', labels: { app: 'greeter', version: 'v2', pool: 'main' } },
        { pod: d, serviceAccount: 'greeter', labels: { app: 'greeter', version: 'v1', pool: 'main' } },
        { pod: slow, serviceAccount: 'greeter', labels: { app: 'slow' } },
        { pod: flakyA, serviceAccount: 'greeter', labels: { app: 'flaky' } },
        { pod: flakyB, serviceAccount: 'greeter', labels: { app: 'flaky' } },
      ],
      extraArgs: ['--access-log', 'all'],
    });
    await Promise.all([agent1.ready, agent2.ready]);
    const ready = (name: string): number => collector.running.snapshot().services?.find((s) => s.name === name)?.endpoints.filter((e) => e.ready).length ?? 0;
    await waitFor(() => ready('greeter') === 3 && ready('greeter-v1') === 3 && ready('greeter-v2') === 1 && ready('slow') === 1 && ready('flaky') === 2, 20_000, { what: 'the services and their endpoints in the registry' });
    await apply(DENY_ADMIN);
    await apply(GREETER_ROUTE);
    await apply(CANARY_ROUTE(90, 10));
    await apply(SLOW_ROUTE);
    await apply(EMPTY_ROUTE);
    await apply(FLAKY_ROUTE);
    try {
      await waitFor(async () => (await grpc<{ code: number }>(VIPS.greeter, ['call', 'say'])).code === 0 && flows().some((f) => f.traffic?.route === 'default/greeter'), 20_000, { what: 'routed gRPC calls' });
    } catch (err) {
      console.log(agent1.logs.lines.slice(-30).map((l) => JSON.stringify(l)).join('\n'));
      throw err;
    }
  });

  after(() => tearDown({ agents: [agent1, agent2], topo, collector })); // the topology kills the servers it spawned

  // Service greeter's three endpoints are all on the other node: equal paths, so the spread shows the
  // per-request balancing. (With one of them on the client's node, peak-EWMA rightly prefers that
  // faster one: the canary test below has such a backend.)
  it('1,000 unary calls on one client channel spread over 3 endpoints (each above 15 %, none above 40 %)', async function () {
    const pods = ['greeter-b', 'greeter-c', 'greeter-d'];
    const before = pods.map((n) => calls(n, 'Say'));
    const r = await grpc<UnarySummary>(VIPS.greeter, ['unary', '1000', '16']);
    assert.deepEqual(r.codes, { 0: 1000 }, JSON.stringify(r));
    const shares = pods.map((n) => (r.bodies[n] ?? 0) / 1000);
    console.log(`      1,000 calls, 16 in flight on one channel: ${pods.map((x, i) => `${x} ${(shares[i]! * 100).toFixed(1)} %`).join(', ')} in ${r.ms} ms`);
    // Issue #18: none above 40 %. The balancing is latency-aware (P2C over peak-EWMA), so on this
    // loaded machine the three equal endpoints' shares move with their latencies; one outlier
    // answer (a GC pause) may at most double an endpoint's estimate, which a tenth of each answer
    // pulls back (agent/traffic/peak-ewma.ts): the busiest got 34.4–36.2 % (median 35.3) in 10 runs at
    // load 6–14, 35–48 % before (6 of 21 above 40 %). Per-connection balancing would send all 1,000 to one pod.
    assert.ok(shares.every((s) => s > 0.15 && s <= 0.4), `every endpoint served, none above 40 %: ${JSON.stringify(r.bodies)}`);
    pods.forEach((n, i) => assert.equal(calls(n, 'Say') - before[i]!, r.bodies[n], `${n} served what the client saw`));
    const routed = flows().filter((f) => f.traffic?.route === 'default/greeter' && f.http?.path === '/demo.Greeter/Say').slice(-1000);
    // each endpoint's call latency as the source node saw it: a busiest endpoint that was also the fastest is the balancer doing its job
    const median = (xs: number[]): number => xs.sort((x, y) => x - y)[xs.length >> 1] ?? 0;
    console.log(`      median call duration per endpoint: ${pods.map((n) => `${n} ${median(routed.filter((f) => f.destination.workload === n).map((f) => f.durationMs))} ms`).join(', ')}`);
    assert.equal(routed.length, 1000, 'one flow per call');
    assert.ok(routed.every((f) => f.verdict === 'allowed' && f.reason === 'routed' && f.http?.status === 200 && f.http.method === 'POST'));
    assert.ok(routed.every((f) => f.http?.grpcStatus === 0), 'each flow carries the call\'s grpc-status, from its trailers');
  });

  it('a streaming call\'s messages, trailers and grpc-status arrive intact', async function () {
    const r = await grpc<{ messages: string[]; code: number; trailers: Record<string, string> }>(VIPS.greeter, ['stream', '5']);
    const by = r.trailers['x-served-by'];
    console.log(`      stream: ${r.messages.length} messages from ${by}, status ${r.code}, trailers ${JSON.stringify(r.trailers)}`);
    assert.equal(r.code, 0);
    assert.deepEqual(r.messages, [0, 1, 2, 3, 4].map((i) => `${by}:${i}`));
    assert.equal(r.trailers['x-count'], '5');
    assert.match(by ?? '', /^greeter-[bcd]$/);
  });

  it('a method the destination\'s policy denies gets PERMISSION_DENIED (7, "RBAC: access denied") and never reaches a pod', async function () {
    const all = ['greeter-a', 'greeter-b', 'greeter-c', 'greeter-d'];
    const before = all.map((n) => calls(n, 'Wipe'));
    for (let i = 0; i < 6; i++) {
      const r = await grpc<{ code: number; details: string }>(VIPS.greeter, ['call', 'wipe']);
      assert.equal(r.code, 7, JSON.stringify(r));
      assert.equal(r.details, 'RBAC: access denied');
    }
    assert.deepEqual(all.map((n) => calls(n, 'Wipe')), before, 'no pod saw the call');
    const denied = [...flowsOf(agent1), ...flowsOf(agent2)].filter((f) => f.direction === 'inbound' && f.http?.path === '/demo.Admin/Wipe');
    console.log(`      denied: 6 calls, ${denied.length} inbound flows at the pods' nodes (${denied.map((f) => `${f.verdict} ${f.reason}`).filter((x, i, all) => all.indexOf(x) === i).join(', ')})`);
    assert.equal(denied.length, 6);
    assert.ok(denied.every((f) => f.verdict === 'denied' && f.reason === 'denied-by-policy'));
    assert.ok(denied.every((f) => f.http?.grpcStatus === 7), 'the trailers-only PERMISSION_DENIED is in the flow');
    const source = flows().filter((f) => f.http?.path === '/demo.Admin/Wipe').slice(-6);
    assert.ok(source.length === 6 && source.every((f) => f.http?.grpcStatus === 7), 'and in the source node\'s flow of the call');
  });

  it('grpc-timeout cuts a slow backend with DEADLINE_EXCEEDED (4), and the pod\'s call is cancelled', async function () {
    const cancelled0 = servers.get('slow')!.lines.filter((l) => (l as { event?: string }).event === 'cancelled').length;
    // a plain HTTP/2 client with no deadline of its own: only the grpc-timeout header can cut it
    const r = await grpc<{ status: string; grpcStatus: string; grpcMessage: string; trailersOnly: boolean; ms: number }>(VIPS.slow, ['/demo.Greeter/Slow', '300m'], 'h2-grpc-raw.js');
    const f = flows().filter((x) => x.traffic?.route === 'default/slow').at(-1);
    console.log(`      grpc-timeout 300m: grpc-status ${r.grpcStatus} (${r.grpcMessage}) after ${r.ms} ms, trailers-only ${r.trailersOnly}; flow ${f?.verdict} ${f?.reason} ${f?.durationMs} ms`);
    assert.equal(r.status, 200);
    assert.equal(r.grpcStatus, '4');
    assert.equal(r.trailersOnly, true);
    assert.ok(r.ms >= 290 && r.ms < 1500, `cut at about 300 ms, long before the backend's 2 s (${r.ms} ms)`);
    assert.equal(f?.verdict, 'error');
    assert.equal(f?.reason, 'grpc-timeout');
    assert.equal(f?.http?.grpcStatus, 4);
    await waitFor(() => servers.get('slow')!.lines.filter((l) => (l as { event?: string }).event === 'cancelled').length > cancelled0, 5000, { what: 'the pod to see its call cancelled' });
    // and a gRPC library's own deadline travels as grpc-timeout too
    const lib = await grpc<{ code: number }>(VIPS.slow, ['call', 'slow', '400']);
    assert.equal(lib.code, 4);
  });

  it('a Service without a ready endpoint answers UNAVAILABLE (14), with a flow saying why', async function () {
    const r = await grpc<{ code: number; details: string }>(VIPS.empty, ['call', 'say']);
    assert.equal(r.code, 14, JSON.stringify(r));
    const f = flows().filter((x) => x.traffic?.route === 'default/empty').at(-1);
    assert.equal(f?.verdict, 'error');
    assert.equal(f?.reason, 'no-healthy-endpoint');
  });

  it('a GRPCRoute weight split (90/10) holds within ±3 % over 2,000 calls on one channel', async function () {
    const r = await grpc<UnarySummary>(VIPS.canary, ['unary', '2000', '8']);
    assert.deepEqual(r.codes, { 0: 2000 }, JSON.stringify(r));
    const v2 = (r.bodies['greeter-c'] ?? 0) / 2000;
    console.log(`      GRPCRoute 90/10: v1 ${JSON.stringify({ a: r.bodies['greeter-a'], b: r.bodies['greeter-b'], d: r.bodies['greeter-d'] })}, v2 ${r.bodies['greeter-c'] ?? 0} (${(v2 * 100).toFixed(1)} %) in ${r.ms} ms`);
    assert.ok(Math.abs(v2 - 0.1) <= 0.03, `v2 got ${(v2 * 100).toFixed(1)} %`);
    const routed = flows().filter((f) => f.traffic?.route === 'default/greeter-canary').slice(-2000);
    assert.equal(routed.filter((f) => f.traffic!.backend === 'default/greeter-v2').length, r.bodies['greeter-c'], 'each flow names the backend Service chosen');
  });

  it('a FaultInjection\'s gRPC abort (grpcStatus UNAVAILABLE, 10 %) is answered trailers-only by the proxy, within ±3 % over 2,000 calls', async function () {
    await apply(GRPC_CHAOS);
    await waitFor(async () => {
      await grpc<{ code: number }>(VIPS.v1, ['call', 'say']);
      return flows().some((f) => f.traffic?.route === 'default/greeter-v1');
    }, 10_000, { what: 'the fault route' });
    const pods = ['greeter-a', 'greeter-b', 'greeter-d'];
    const before = pods.reduce((n, p) => n + calls(p, 'Say'), 0);
    const r = await grpc<UnarySummary>(VIPS.v1, ['unary', '2000', '8']);
    const aborted = flows().filter((f) => f.traffic?.route === 'default/greeter-v1').slice(-2000).filter((f) => f.reason === 'fault-abort');
    console.log(`      gRPC fault abort: client ${JSON.stringify(r.codes)} (${(((r.codes[14] ?? 0) / 2000) * 100).toFixed(1)} % UNAVAILABLE) in ${r.ms} ms; ${aborted.length} fault-abort flows`);
    assert.deepEqual(Object.keys(r.codes).sort(), ['0', '14'], JSON.stringify(r.codes));
    assert.ok(Math.abs((r.codes[14] ?? 0) / 2000 - 0.1) <= 0.03, `UNAVAILABLE for ${r.codes[14]} of 2,000`);
    assert.equal(aborted.length, r.codes[14], 'each abort a flow');
    assert.ok(aborted.every((f) => f.verdict === 'error' && f.http?.status === 200 && f.http.grpcStatus === 14), 'trailers-only UNAVAILABLE (HTTP 200), an error in its flow');
    assert.equal(pods.reduce((n, p) => n + calls(p, 'Say'), 0) - before, r.codes[0], 'an aborted call never reached a pod');
  });

  it('an endpoint answering UNAVAILABLE every other call: with an HTTPRoute\'s retry the client sees no error, the flows show the retries', async function () {
    const a0 = calls('flaky-a', 'Say');
    // Both endpoints on the other node (equal paths) and four calls in flight: peak-EWMA keeps
    // choosing both (with one much faster endpoint it would rightly leave the other, and nothing
    // would be retried: the test is of the retries, not of the balancer).
    const r = await grpc<UnarySummary>(VIPS.flaky, ['unary', '200', '4']);
    const unavailableAtA = Math.floor((calls('flaky-a', 'Say') - a0 + (a0 % 2)) / 2);
    const routed = flows().filter((f) => f.traffic?.route === 'default/flaky').slice(-200);
    const retried = routed.filter((f) => f.traffic!.attempts === 2);
    console.log(`      flaky gRPC: client ${JSON.stringify(r.codes)}; flaky-a (UNAVAILABLE every other call) served ${calls('flaky-a', 'Say') - a0}; ${retried.length} calls retried`);
    assert.deepEqual(r.codes, { 0: 200 }, 'no error reached the client');
    assert.ok(retried.length > 0, 'some calls needed a retry');
    assert.ok(Math.abs(retried.length - unavailableAtA) <= 1, `each UNAVAILABLE of flaky-a (~${unavailableAtA}) was retried once (${retried.length})`);
    assert.ok(retried.every((f) => f.destination.workload === 'flaky-b'), 'retried on the other endpoint');
  });

  it('plain HTTP/2 on the routed path too: curl with prior knowledge and with Upgrade: h2c, each request routed', async function () {
    for (const flag of ['--http2-prior-knowledge', '--http2']) {
      const seen = flows().length; // this request's flow, not an earlier one's: only those logged after it was sent
      const r = await topo.exec(client, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', flag, `http://${VIPS.greeter}:${PORT}/demo.Greeter/Say`], { timeoutMs: 20_000 });
      const [version, code] = r.stdout.trim().split(' ');
      const f = await waitFor(() => flows().slice(seen).find((x) => x.traffic?.route === 'default/greeter' && x.http?.method === 'GET'), 5000, {
        what: `the flow of curl ${flag}'s GET (HTTP/${version} ${code}): ${r.stderr}`,
      });
      console.log(`      curl ${flag}: HTTP/${version} ${code}; flow ${f?.verdict} ${f?.reason} ${f?.http?.status} to ${f?.destination.workload}`);
      assert.equal(version, '2', `${flag}: ${r.stdout} ${r.stderr}`);
      assert.equal(f?.reason, 'routed');
      assert.equal(String(f?.http?.status), code, 'the flow has the status curl got, from a pod of the Service');
      assert.match(f?.destination.workload ?? '', /^greeter-[bcd]$/);
    }
  });

  it('bad GRPCRoute input is refused whole with one line, nothing applied', async function () {
    const version = collector.running.policies.frame();
    const cases: [string, RegExp][] = [
      [CANARY_ROUTE(90, 10).replace('method: Say', 'method: "Say Hello"'), /^\S+:\d+: GRPCRoute default\/greeter-canary: spec\.rules\[0\]\.matches\[0\]\.method\.method: is not a gRPC method name: "Say Hello"$/],
      [CANARY_ROUTE(0, 0), /^\S+:\d+: GRPCRoute default\/greeter-canary: spec\.rules\[0\]\.backendRefs: weights sum to 0/],
      [CANARY_ROUTE(90, 10).replace('name: greeter-v2', 'name: greeter-v3'), /^\S+:\d+: GRPCRoute default\/greeter-canary: spec\.rules\[0\]\.backendRefs\[1\]: unknown Service default\/greeter-v3/],
      [SLOW_ROUTE.replace('  - backendRefs', '  - timeouts: {request: 1s}\n    backendRefs'), /^\S+:\d+: GRPCRoute default\/slow: spec\.rules\[0\]\.timeouts: unknown or unsupported field/],
    ];
    for (const [yaml, want] of cases) {
      await assert.rejects(apply(yaml), (e: Error) => {
        const lines = e.message.split('\n').filter((l) => / GRPCRoute default\//.test(l));
        assert.equal(lines.length, 1, e.message);
        assert.match(lines[0]!.trim(), want);
        return true;
      });
    }
    assert.equal(collector.running.policies.frame(), version, 'the version in force did not change');
  });
});
