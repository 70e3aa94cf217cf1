/**
 * DestinationRule traffic policies end to end (issue #18): real pods, a real agent joined to a real
 * collector, DestinationRules applied through the collector's policy store next to the HTTPRoutes
 * that make the Services' traffic HTTP in the source node's proxy. Consistent hashing by header and
 * by cookie, the bulkhead (queue, then 503 with flag UO), outlier detection with its configured
 * count and ejection time, upstream connection reuse (maxRequestsPerConnection, idleTimeout), the
 * hash cookie a ttl makes the proxy set, and a DestinationRule with subsets refused with nothing applied.
 */
import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
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

interface ClientSummary {
  ok: boolean;
  bodies: Record<string, number>;
  statuses: Record<string, number>;
  errors: Record<string, number>;
  ms: number;
  /** with --cookies: the cookies the answers set */
  cookies?: Record<string, string>;
}

interface FlowLine {
  event: 'flow';
  verdict: string;
  reason: string;
  source: { ip: string };
  http?: { status: number };
  traffic?: { route: string; backend: string };
}

const VIPS = { hash: '10.96.0.40', slow: '10.96.0.41', od: '10.96.0.42', sticky: '10.96.0.43', reuse: '10.96.0.44', idle: '10.96.0.45', crumb: '10.96.0.46', l4: '10.96.0.47' };

const SERVICES = `services:
  - {name: hash, namespace: default, vips: [${VIPS.hash}], ports: [{port: 80, targetPort: 8080}], selector: {app: hash}}
  - {name: slow, namespace: default, vips: [${VIPS.slow}], ports: [{port: 80, targetPort: 8080}], selector: {app: slow}}
  - {name: od, namespace: default, vips: [${VIPS.od}], ports: [{port: 80, targetPort: 8080}], selector: {app: od}}
  - {name: sticky, namespace: default, vips: [${VIPS.sticky}], ports: [{port: 80, targetPort: 8080}], selector: {app: hash}}
  - {name: reuse, namespace: default, vips: [${VIPS.reuse}], ports: [{port: 80, targetPort: 8080}], selector: {app: reuse}}
  - {name: idle, namespace: default, vips: [${VIPS.idle}], ports: [{port: 80, targetPort: 8080}], selector: {app: idle}}
  - {name: crumb, namespace: default, vips: [${VIPS.crumb}], ports: [{port: 80, targetPort: 8080}], selector: {app: hash}}
  - {name: l4, namespace: default, vips: [${VIPS.l4}], ports: [{port: 80, targetPort: 8080}], selector: {app: l4}}
`;


/** An HTTPRoute sending a Service's requests to itself: its traffic is HTTP in the proxy. */
const selfRoute = (name: string, extra = ''): string => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: default}
spec:
  parentRefs: [{kind: Service, name: ${name}}]
  rules:
  - backendRefs: [{name: ${name}, port: 80}]
${extra}---
`;

/** Sticky sessions (Gateway API sessionPersistence) over the three hash pods. */
const STICKY_ROUTE = selfRoute('sticky', '    sessionPersistence: {sessionName: web-session, type: Cookie, absoluteTimeout: 1h}\n');

const dr = (name: string, host: string, policy: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default}
spec:
  host: ${host}
  trafficPolicy:
${policy}`;

const HASH_BY_HEADER = dr('hash', 'hash.default.svc.cluster.local', '    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n');
const HASH_BY_COOKIE = dr('hash', 'hash', '    loadBalancer: {consistentHash: {httpCookie: {name: user}}}\n');
const BULKHEAD = dr('slow', 'slow', '    connectionPool:\n      http: {http2MaxRequests: 2, http1MaxPendingRequests: 2}\n');
const OUTLIERS = dr('od', 'od', '    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 100}\n');
const ONE_PER_CONNECTION = dr('reuse', 'reuse', '    connectionPool:\n      http: {maxRequestsPerConnection: 1}\n');
const IDLE_1S = dr('idle', 'idle', '    connectionPool:\n      http: {idleTimeout: 1s}\n');
const HASH_COOKIE_TTL = dr('crumb', 'crumb', '    loadBalancer: {consistentHash: {httpCookie: {name: route, ttl: 60s}}}\n');
/** no route for l4: its connections are balanced at L4 */
const L4_OUTLIERS = dr('l4', 'l4', '    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 2, baseEjectionTime: 30s}\n');
const WITH_SUBSETS = `${dr('hash-subsets', 'hash', '    loadBalancer: {simple: RANDOM}\n')}  subsets:
  - {name: v1, labels: {version: v1}}
`;

describe('DestinationRule traffic policies in the source node proxy (real agent, real pods)', function () {
  this.timeout(300_000);

  let topo: Topology;
  let collector: TestCollector;
  let node: NodeNs;
  let client: PodNs;
  let agent: AgentProcess;
  const servers = new Map<string, JsonLines>();
  const processes = new Map<string, ChildProcess>();

  const flows = (): FlowLine[] => agent.logs.lines.filter((l): l is FlowLine => (l as FlowLine)?.event === 'flow' && (l as FlowLine).source?.ip === client.ip);
  const apply = async (yaml: string): Promise<void> => {
    const r = await collector.running.policies.apply([{ source: 'dr.yaml', text: yaml }], false, 'test');
    assert.equal(r.applied, true, JSON.stringify(r));
  };
  async function run(vip: string, count: number, extra: string[] = []): Promise<ClientSummary> {
    const r = await topo.exec(client, process.execPath, [fixturePath('http-routed-client.js'), vip, '80', String(count), ...extra], { timeoutMs: 120_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(last) as ClientSummary;
    } catch {
      throw new Error(`http-routed-client: no JSON (code ${r.code}): ${r.stdout.slice(-500)} ${r.stderr}`);
    }
  }
  async function server(pod: PodNs, name: string, mode = 'ok'): Promise<void> {
    const { lines, child } = await startFixture(topo, pod, process.execPath, [fixturePath('http-named-server.js'), pod.ip, '8080', name, mode], { name });
    servers.set(name, lines);
    processes.set(name, child);
  }
  const served = (name: string): number => servers.get(name)!.lines.filter((l) => (l as { event?: string }).event === 'request').length;
  /** the policy version agent reports enforcing reaches the store's */
  const enforced = async (): Promise<void> => {
    await waitFor(() => {
      const s = collector.running.policies.status({ flowsStored: 0, auditRecords: 0 });
      return s.routes?.every((r) => r.enforcedBy === r.agents && r.agents === 1) === true;
    }, 10_000, { what: 'the agent enforcing the latest rules' });
  };

  before(async function () {
    requirePrivileges();
    sweepStale();
    collector = await startTestCollector();
    topo = await Topology.create({ label: 'destrule', nodes: 1 });
    [node] = topo.nodes as [NodeNs];
    client = await topo.addPod(node, 'client');
    const pods = {
      hashA: await topo.addPod(node, 'hash-a'),
      hashB: await topo.addPod(node, 'hash-b'),
      hashC: await topo.addPod(node, 'hash-c'),
      slow: await topo.addPod(node, 'slow'),
      odBad: await topo.addPod(node, 'od-bad'),
      odGood: await topo.addPod(node, 'od-good'),
      reuse: await topo.addPod(node, 'reuse'),
      idle: await topo.addPod(node, 'idle'),
      l4a: await topo.addPod(node, 'l4-a'),
      l4b: await topo.addPod(node, 'l4-b'),
      l4c: await topo.addPod(node, 'l4-c'),
    };
    await Promise.all([
      server(pods.hashA, 'hash-a'),
      server(pods.hashB, 'hash-b'),
      server(pods.hashC, 'hash-c'),
      server(pods.slow, 'slow', 'slow:1500'),
      server(pods.odBad, 'od-bad', 'fail'),
      server(pods.odGood, 'od-good'),
      server(pods.reuse, 'reuse'),
      server(pods.idle, 'idle'),
      server(pods.l4a, 'l4-a'),
      server(pods.l4b, 'l4-b'),
      server(pods.l4c, 'l4-c'),
    ]);
    agent = startMeshAgent(topo, node, collector, {
      pods: [
        { pod: client, serviceAccount: 'client' },
        { pod: pods.hashA, serviceAccount: 'web', labels: { app: 'hash' } },
        { pod: pods.hashB, serviceAccount: 'web', labels: { app: 'hash' } },
        { pod: pods.hashC, serviceAccount: 'web', labels: { app: 'hash' } },
        { pod: pods.slow, serviceAccount: 'web', labels: { app: 'slow' } },
        { pod: pods.odBad, serviceAccount: 'web', labels: { app: 'od' } },
        { pod: pods.odGood, serviceAccount: 'web', labels: { app: 'od' } },
        { pod: pods.reuse, serviceAccount: 'web', labels: { app: 'reuse' } },
        { pod: pods.idle, serviceAccount: 'web', labels: { app: 'idle' } },
        ...[pods.l4a, pods.l4b, pods.l4c].map((pod) => ({ pod, serviceAccount: 'web', labels: { app: 'l4' } })),
      ],
      servicesYaml: SERVICES,
      extraArgs: ['--access-log', 'all'],
    });
    await agent.ready;
    const ready = (name: string): number => collector.running.snapshot().services?.find((s) => s.name === name)?.endpoints.filter((e) => e.ready).length ?? 0;
    await waitFor(() => ready('hash') === 3 && ready('sticky') === 3 && ready('slow') === 1 && ready('od') === 2 && ready('reuse') === 1 && ready('idle') === 1 && ready('crumb') === 3 && ready('l4') === 3, 20_000, { what: 'the services and their endpoints in the registry' });
    const routes = ['hash', 'slow', 'od', 'reuse', 'idle', 'crumb'].map((n) => selfRoute(n)).join('');
    await apply(`${STICKY_ROUTE}${routes}${[HASH_BY_HEADER, BULKHEAD, OUTLIERS, ONE_PER_CONNECTION, IDLE_1S, HASH_COOKIE_TTL, L4_OUTLIERS].join('\n---\n')}`);
    await enforced();
    await waitFor(async () => (await run(VIPS.hash, 1)).ok && flows().some((f) => f.traffic?.route === 'default/hash'), 20_000, { what: 'routed requests' });
  });

  after(async function () {
    await tearDown({ agents: [agent], topo, collector });
  });

  it('palisade status lists each DestinationRule with what it sets', () => {
    const s = collector.running.policies.status({ flowsStored: 0, auditRecords: 0 });
    const rules = (s.routes ?? []).filter((r) => r.kind === 'DestinationRule');
    assert.deepEqual(rules.map((r) => [`${r.namespace}/${r.name}`, r.parents.join(','), r.summary]), [
      ['default/crumb', 'default/crumb', 'hash(cookie route)'],
      ['default/hash', 'default/hash', 'hash(header x-user)'],
      ['default/idle', 'default/idle', 'pool(idle 1s)'],
      ['default/l4', 'default/l4', 'round-robin outliers(5xx 2, gateway 0, eject 30s, max 10%)'],
      ['default/od', 'default/od', 'round-robin outliers(5xx 3, gateway 0, eject 3s, max 100%)'],
      ['default/reuse', 'default/reuse', 'pool(per connection 1)'],
      ['default/slow', 'default/slow', 'pool(requests 2, pending 2)'],
    ]);
  });

  it('consistent hash by header keeps a user on one endpoint; users spread over the endpoints', async function () {
    const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
    const home = new Map<string, string>();
    for (const u of users) {
      const r = await run(VIPS.hash, 30, ['/', `x-user:${u}`]);
      assert.deepEqual(r.statuses, { 200: 30 });
      assert.equal(Object.keys(r.bodies).length, 1, `${u} stays on one endpoint: ${JSON.stringify(r.bodies)}`);
      home.set(u, Object.keys(r.bodies)[0]!);
    }
    assert.ok(new Set(home.values()).size >= 2, `8 users over 3 endpoints land on more than one: ${JSON.stringify([...home])}`);
    const again = await run(VIPS.hash, 30, ['/', 'x-user:alice']);
    assert.deepEqual(again.bodies, { [home.get('alice')!]: 30 }, 'alice comes back to the same endpoint');
    const anonymous = await run(VIPS.hash, 60);
    assert.ok(Object.keys(anonymous.bodies).length >= 2, `without the header, requests are balanced: ${JSON.stringify(anonymous.bodies)}`);
  });

  it('a sticky cookie (consistentHash httpCookie) keeps a session on one endpoint', async function () {
    await apply(HASH_BY_COOKIE);
    await enforced();
    const homes = new Set<string>();
    for (const s of ['s1', 's2', 's3', 's4', 's5', 's6']) {
      const r = await run(VIPS.hash, 20, ['/', `cookie:theme=dark; user=${s}`]);
      assert.equal(Object.keys(r.bodies).length, 1, `session ${s} on one endpoint: ${JSON.stringify(r.bodies)}`);
      homes.add(Object.keys(r.bodies)[0]!);
    }
    assert.ok(homes.size >= 2, `sessions spread: ${[...homes].join(',')}`);
  });

  it('sticky sessions (sessionPersistence Cookie): the proxy sets the cookie on the first answer, and a client sending it back stays on that endpoint', async function () {
    for (let s = 0; s < 4; s++) {
      const r = await run(VIPS.sticky, 20, ['/', '--cookies']);
      assert.deepEqual(r.statuses, { 200: 20 });
      assert.equal(Object.keys(r.bodies).length, 1, `session ${s} on one endpoint: ${JSON.stringify(r.bodies)}`);
      assert.match(r.cookies?.['web-session'] ?? '', /^[A-Za-z0-9_-]+$/, 'the proxy set the session cookie');
      const decoded = Buffer.from(r.cookies!['web-session']!, 'base64url').toString('latin1');
      assert.doesNotMatch(decoded, /\d+\.\d+\.\d+\.\d+/, 'the cookie names its endpoint opaquely: no pod address in it');
    }
    const without = await run(VIPS.sticky, 60);
    assert.ok(Object.keys(without.bodies).length >= 2, `a client that does not send the cookie back is balanced per request: ${JSON.stringify(without.bodies)}`);
    const forged = await run(VIPS.sticky, 1, ['/', `cookie:web-session=${Buffer.from('10.250.0.1:8080|0|0').toString('base64url')}`]);
    assert.deepEqual(forged.statuses, { 200: 1 }, 'a cookie naming no endpoint of the Service picks one of its endpoints');
  });

  it('the bulkhead: 2 in progress, 2 waiting, the rest refused at once with 503 and flag UO, a flow each with its reason', async function () {
    const before = flows().length;
    const r = await run(VIPS.slow, 8, ['/', '--lanes=8']);
    assert.deepEqual(r.statuses, { 200: 4, 503: 4 }, JSON.stringify(r));
    assert.ok(r.ms >= 2800, `the 2 that waited were served after the first 2 (1.5 s each): ${r.ms} ms`);
    const refused = flows().slice(before).filter((f) => f.reason === 'upstream-overflow');
    assert.equal(refused.length, 4);
    assert.ok(refused.every((f) => f.verdict === 'error' && f.http?.status === 503));
    const metrics = (await topo.exec(node, 'curl', ['-s', '-m', '3', `http://${node.underlayIp}:15020/metrics`])).stdout;
    const uo = metrics.split('\n').filter((l) => l.startsWith('istio_requests_total{') && l.includes('response_flags="UO"') && l.includes('response_code="503"') && l.includes('reporter="source"'));
    assert.deepEqual(uo.map((l) => l.split(' ').pop()), ['4'], `istio_requests_total with flag UO: ${uo.join(' | ') || 'none'}`);
  });

  it('the agent exports HBONE connections ended by an unanswered keepalive PING, by side (none here)', async function () {
    const metrics = (await topo.exec(node, 'curl', ['-s', '-m', '3', `http://${node.underlayIp}:15020/metrics`])).stdout;
    const value = (side: string): string | undefined => metrics.split('\n').find((l) => l.startsWith(`palisade_hbone_keepalive_failures_total{side="${side}"} `))?.split(' ').pop();
    assert.deepEqual([value('source'), value('destination')], ['0', '0']);
  });

  it('outlier detection ejects a failing endpoint after its configured 3 5xx in a row and readmits it after baseEjectionTime (3 s)', async function () {
    const bad0 = served('od-bad');
    const first = await run(VIPS.od, 30);
    assert.equal(served('od-bad') - bad0, 3, 'the failing endpoint got 3 requests, then was ejected');
    assert.deepEqual(first.statuses, { 200: 27, 503: 3 });
    const ejectedAt = Date.now();
    const during = await run(VIPS.od, 10);
    if (Date.now() - ejectedAt < 3000) assert.deepEqual(during.bodies, { 'od-good': 10 }, 'while ejected, every request goes to the healthy endpoint');
    await new Promise((r) => setTimeout(r, Math.max(0, 3300 - (Date.now() - ejectedAt))));
    const bad1 = served('od-bad');
    await run(VIPS.od, 20);
    assert.equal(served('od-bad') - bad1, 3, 'readmitted after baseEjectionTime: 3 more 5xx, and ejected again');
  });

  interface ServerLine {
    event: string;
    conn?: number;
    requests?: number;
    idleMs?: number;
  }
  const lines = (name: string): ServerLine[] => servers.get(name)!.lines as ServerLine[];

  it('connectionPool.http.maxRequestsPerConnection 1: the pod sees every request of one keep-alive client connection on a connection of its own, each closed after its answer', async function () {
    const before = lines('reuse').length;
    const r = await run(VIPS.reuse, 10);
    assert.deepEqual(r.statuses, { 200: 10 });
    const requests = lines('reuse').slice(before).filter((l) => l.event === 'request');
    assert.equal(requests.length, 10);
    assert.equal(new Set(requests.map((l) => l.conn)).size, 10, `one request per upstream connection: ${requests.map((l) => l.conn).join(',')}`);
    await waitFor(() => lines('reuse').slice(before).filter((l) => l.event === 'close').length >= 10, 5_000, { what: 'the 10 upstream connections closed' });
    assert.ok(lines('reuse').slice(before).filter((l) => l.event === 'close').every((l) => l.requests === 1));
  });

  it('connectionPool.http.idleTimeout 1s: the proxy closes its idle upstream connection about a second after the last answer (30 s without)', async function () {
    const before = lines('idle').length;
    const r = await run(VIPS.idle, 3);
    assert.deepEqual(r.statuses, { 200: 3 });
    await waitFor(() => lines('idle').slice(before).some((l) => l.event === 'close'), 8_000, { what: 'the idle upstream connection closed' });
    const closed = lines('idle').slice(before).filter((l) => l.event === 'close');
    assert.equal(closed.length, 1, JSON.stringify(closed));
    assert.equal(closed[0]!.requests, 3, 'the three requests shared the kept-alive connection');
    assert.ok(closed[0]!.idleMs! >= 900 && closed[0]!.idleMs! <= 5_000, `closed after ${closed[0]!.idleMs} ms idle`);
  });

  it('consistentHash.httpCookie with a ttl: the first answer sets an opaque cookie (Max-Age, HttpOnly); 20 requests sending it back hit one pod; new clients spread', async function () {
    const head = (await topo.exec(client, 'curl', ['-s', '-D', '-', '-o', '/dev/null', '-m', '5', `http://${VIPS.crumb}/`])).stdout;
    const set = /^set-cookie: (.*)$/im.exec(head)?.[1]?.trim() ?? '';
    assert.match(set, /^route=[0-9a-f]{16}; Path=\/; Max-Age=60; HttpOnly$/, head);
    assert.ok(!/10\.\d+\.\d+\.\d+/.test(set), 'no pod address in the cookie');
    // a new client's cookie is random, so its pod is too: up to 12 clients (all on one of 3 pods by
    // chance: 3 × 3^-12, about 1 in 177,000), ending once 6 have run and two pods were seen
    const homes = new Set<string>();
    for (let s = 0; s < 12 && (s < 6 || homes.size < 2); s++) {
      const r = await run(VIPS.crumb, 20, ['/', '--cookies']);
      assert.deepEqual(r.statuses, { 200: 20 });
      assert.equal(Object.keys(r.bodies).length, 1, `session ${s} on one endpoint: ${JSON.stringify(r.bodies)}`);
      assert.match(r.cookies?.route ?? '', /^[0-9a-f]{16}$/);
      homes.add(Object.keys(r.bodies)[0]!);
    }
    assert.ok(homes.size >= 2, `clients spread: ${[...homes].join(',')}`);
  });

  it('at L4 (no route): round robin per connection, and an endpoint that refuses connections is ejected after the configured 2 failures — no new connection goes to it', async function () {
    const spread = await run(VIPS.l4, 30, ['/', '--close']);
    assert.deepEqual(spread.statuses, { 200: 30 });
    assert.deepEqual(spread.bodies, { 'l4-a': 10, 'l4-b': 10, 'l4-c': 10 }, 'ROUND_ROBIN over the 3 endpoints, one connection each');
    const stopped = processes.get('l4-c')!;
    const exited = new Promise((resolve) => stopped.once('exit', resolve));
    stopped.kill('SIGKILL');
    await exited;
    // Its first refused connect passes it over for the connect backoff (100 ms) only; it is tried
    // again after that and its second refusal, the configured count, ejects it for 30 s. Whether the
    // second comes in the same 30 connections depends on how fast they go: count over two runs.
    const first = await run(VIPS.l4, 30, ['/', '--close']);
    const second = await run(VIPS.l4, 30, ['/', '--close']);
    const failures = (r: typeof first): number => Object.values(r.errors).reduce((a, b) => a + b, 0);
    const failed = failures(first) + failures(second);
    assert.equal(failed, 2, `connections that reached the stopped endpoint: ${failed} (${JSON.stringify(first.errors)}, then ${JSON.stringify(second.errors)}), exactly the configured 2`);
    assert.ok(failures(first) >= 1, 'the first run reached the stopped endpoint');
    assert.equal((first.statuses[200] ?? 0) + (second.statuses[200] ?? 0) + failed, 60);
    const after = await run(VIPS.l4, 30, ['/', '--close']);
    assert.deepEqual(after.errors, {}, 'ejected for 30 s: no new connection goes to it');
    assert.deepEqual(Object.keys(after.bodies).sort(), ['l4-a', 'l4-b']);
  });

  it('a DestinationRule with subsets is refused with the hint; nothing is applied', async function () {
    const listed = collector.running.policies.list().policies.length;
    await assert.rejects(collector.running.policies.apply([{ source: 'subsets.yaml', text: WITH_SUBSETS }], false, 'test'), (err: Error & { problems?: string[] }) => {
      const text = [err.message, ...(err.problems ?? [])].join('\n');
      assert.match(text, /spec\.subsets: subsets are not supported: use one Service per version \(Istio ambient's own advice\)/);
      return true;
    });
    assert.equal(collector.running.policies.list().policies.length, listed);
    assert.ok(!collector.running.policies.list().policies.some((p) => p.name === 'hash-subsets'));
  });
});
