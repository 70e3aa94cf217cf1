import { strict as assert } from 'node:assert';
import * as http2 from 'node:http2';
import { duplexPair } from 'node:stream';
import type { FlowRecord } from '../../../../common/flow';
import { silentLogger } from '../../../../common/log';
import type { RegistryService } from '../../../../common/mesh-protocol';
import { compilePolicyFiles, type PolicyIndex } from '../../../../common/policy';
import { DestinationTable, RouteTable } from '../../../../common/routes';
import type { ClientSide, DestinationAuthz } from '../../../../agent/proxy/destination-authz';
import { TrafficRouter } from '../../../../agent/traffic/router';
import type { Workload } from '../../../../agent/workloads';

const workload = (name: string, ip: string): Workload =>
  ({ name, namespace: 'default', serviceAccount: name, netns: '', ip, strict: false, labels: {}, identity: `spiffe://cluster.local/ns/default/sa/${name}` }) as Workload;
const service = (name: string, ip: string): RegistryService => ({ namespace: 'default', name, vips: [], ports: [{ name: 'http', port: 80 }], endpoints: [{ ip, ready: true, targetPorts: [8080] }] });

/** One request on a new connection to the router; the response's status line. */
async function request(router: TrafficRouter, client: Workload, name: string): Promise<string> {
  const [ours, theirs] = duplexPair();
  router.handle(theirs, client, { ip: client.ip, workload: client.name, namespace: 'default', identity: client.identity }, { namespace: 'default', name, port: 80 });
  ours.write(`GET / HTTP/1.1\r\nHost: ${name}\r\n\r\n`);
  const head = await new Promise<string>((resolve) => {
    let got = '';
    ours.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) resolve(got.split('\r\n')[0]!);
    });
  });
  ours.destroy();
  return head;
}

describe('TrafficRouter (agent/traffic/router.ts), with this node\'s destination authorization faked', () => {
  const client = workload('intruder', '10.0.0.9');
  const services = new Map([['default/web', service('web', '10.0.0.5')], ['default/api', service('api', '10.0.0.6')]]);
  const flows: FlowRecord[] = [];
  let delivered = 0;
  const authz = {
    deliver(_ctx: unknown, _t: number, c: ClientSide): void {
      delivered++;
      c.refuse({ reason: 'denied-by-policy', verdict: { allowed: false, reason: 'denied-by-policy' } });
    },
  } as unknown as DestinationAuthz;
  const router = new TrafficRouter({
    node: 'n1',
    log: silentLogger(),
    flows: { record: (f) => flows.push(f) },
    policies: { index: { routes: { lookup: () => undefined }, destinations: { lookup: () => undefined } } as unknown as PolicyIndex },
    local: { byIp: (ip) => (ip === '10.0.0.5' || ip === '10.0.0.6' ? workload(`pod-${ip}`, ip) : undefined) },
    registry: { byIp: () => undefined, service: (ns, name) => services.get(`${ns}/${name}`) },
    pool: { connect: () => Promise.reject(new Error('no remote endpoint here')) as Promise<never> },
    authz,
  });
  after(() => router.closeAll());

  it('a same-node endpoint whose policy denies the client: 403 at once, a denied flow with the reason, one attempt, nothing ejected', async () => {
    assert.equal(await request(router, client, 'web'), 'HTTP/1.1 403 Forbidden');
    assert.equal(delivered, 1, 'tried once: not retried');
    const f = flows.at(-1)!;
    assert.deepEqual([f.verdict, f.reason, f.http?.status], ['denied', 'denied-by-policy', 403]);
    assert.equal(f.mtls, false, 'handed over inside the node: no mTLS on its way, and the flow must not say there was');
    assert.equal((router as unknown as { ejections: { anyEjected(): boolean } }).ejections.anyEjected(), false);
  });

  it('the retry budget of a Service gone from the registry is dropped when another one is made', async () => {
    const budgets = (router as unknown as { budgets: Map<string, unknown> }).budgets;
    assert.deepEqual([...budgets.keys()], ['default/web']);
    services.delete('default/web');
    await request(router, client, 'api');
    assert.deepEqual([...budgets.keys()], ['default/api']);
  });
});

/** A router whose one route is the HTTPRoute `rules` (YAML, indented) of Service default/web; no endpoint is in the mesh. */
function routedBy(rules: string, o: { flows?: FlowRecord[]; service?: (name: string) => RegistryService | undefined; deliver?: (c: ClientSide) => void; local?: (ip: string) => Workload | undefined }): TrafficRouter {
  const set = compilePolicyFiles([{ source: 'r.yaml', text: `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: default}\nspec:\n  parentRefs: [{kind: Service, name: web}]\n  rules:\n${rules}` }]);
  return new TrafficRouter({
    node: 'n1',
    log: silentLogger(),
    flows: { record: (f) => o.flows?.push(f) },
    policies: { index: { routes: new RouteTable(set.routes ?? [], set.faults), destinations: new DestinationTable(set.destinationRules ?? []) } as unknown as PolicyIndex },
    local: { byIp: (ip) => o.local?.(ip) },
    registry: { byIp: () => undefined, service: (_ns, name) => o.service?.(name) },
    pool: { connect: () => Promise.reject(new Error('no remote endpoint here')) as Promise<never> },
    authz: { deliver: (_ctx: unknown, _t: number, c: ClientSide) => o.deliver?.(c) } as unknown as DestinationAuthz,
  });
}

describe('TrafficRouter: a route\'s RequestRedirect is the proxy\'s own answer, whatever the request', () => {
  const client = workload('client', '10.0.0.9');
  const flows: FlowRecord[] = [];
  let delivered = 0;
  const router = routedBy('  - filters: [{type: RequestRedirect, requestRedirect: {hostname: new.example, statusCode: 308}}]\n', { flows, deliver: () => void delivered++ });
  after(() => router.closeAll());

  async function raw(text: string): Promise<string> {
    const [ours, theirs] = duplexPair();
    router.handle(theirs, client, { ip: client.ip, workload: client.name, namespace: 'default', identity: client.identity }, { namespace: 'default', name: 'web', port: 8080 });
    ours.write(text);
    const got = await new Promise<string>((resolve) => {
      let s = '';
      ours.on('data', (d: Buffer) => {
        s += d.toString('latin1');
        if (s.includes('\r\n\r\n')) setTimeout(() => resolve(s), 20);
      });
    });
    ours.destroy();
    return got;
  }

  const CASES: [string, string, RegExp][] = [
    ['GET', 'GET /a/b?c=1 HTTP/1.1\r\nHost: web:8080\r\n\r\n', /^HTTP\/1\.1 308 Permanent Redirect\r\nlocation: http:\/\/new\.example:8080\/a\/b\?c=1\r\n/],
    ['HEAD (no body)', 'HEAD /x HTTP/1.1\r\nHost: web\r\n\r\n', /^HTTP\/1\.1 308 [^]*location: http:\/\/new\.example:8080\/x\r\n[^]*\r\n\r\n$/],
    ['a WebSocket upgrade (its own raw answer, then the close)', 'GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', /^HTTP\/1\.1 308 [^]*location: http:\/\/new\.example:8080\/ws\r\n[^]*Connection: close\r\n/],
  ];
  for (const [what, text, want] of CASES) {
    it(`${what}: the redirect with its Location (the listener port kept), no endpoint asked, a flow reason redirect`, async () => {
      assert.match(await raw(text), want);
      assert.equal(delivered, 0);
      const f = flows.at(-1)!;
      assert.deepEqual([f.verdict, f.reason, f.http?.status, f.traffic?.route], ['allowed', 'redirect', 308, 'default/web']);
    });
  }
});

describe('TrafficRouter: RequestMirror copies are counted, and a WebSocket upgrade is not mirrored', () => {
  const client = workload('client', '10.0.0.9');
  const empty = (name: string): RegistryService => ({ namespace: 'default', name, vips: [], ports: [{ name: 'http', port: 80 }], endpoints: [] });
  const router = routedBy('  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: nowhere, port: 80}}}]\n    backendRefs: [{name: web, port: 80}]\n', { service: empty });
  after(() => router.closeAll());

  it('each request\'s copy that cannot go is counted by why; an upgrade makes none', async () => {
    const status = async (text: string): Promise<string> => {
      const [ours, theirs] = duplexPair();
      router.handle(theirs, client, { ip: client.ip, workload: client.name, namespace: 'default', identity: client.identity }, { namespace: 'default', name: 'web', port: 80 });
      ours.write(text);
      const line = await new Promise<string>((resolve) => ours.on('data', (d: Buffer) => resolve(d.toString('latin1').split('\r\n')[0]!)));
      ours.destroy();
      return line;
    };
    assert.equal(await status('GET / HTTP/1.1\r\nHost: web\r\n\r\n'), 'HTTP/1.1 503 Service Unavailable', 'the original: no endpoint of web');
    assert.equal(router.stats().mirrors['dropped-no-endpoint'], 1);
    const ws = 'GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    assert.match(await status(ws), /^HTTP\/1\.1 503 /);
    assert.equal(router.stats().mirrors['dropped-no-endpoint'], 1, 'no copy of the upgrade');
  });
});

describe('TrafficRouter: a route\'s ResponseHeaderModifier applies to the proxy\'s own answers too (not to the headers they keep, not to a destination\'s refusal)', () => {
  const client = workload('client', '10.0.0.9');
  const flows: FlowRecord[] = [];
  const HEADERS = '{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: a}], set: [{name: location, value: /evil}, {name: grpc-status, value: "0"}]}}';
  const RULES = `  - matches: [{path: {type: PathPrefix, value: /abort}}]
    filters: [${HEADERS}, {type: ExtensionRef, extensionRef: {group: palisade.dev, kind: FaultInjection, name: boom}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [${HEADERS}, {type: RequestRedirect, requestRedirect: {hostname: new.example, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /denied}}]
    filters: [${HEADERS}]
    backendRefs: [{name: local, port: 80}]
  - filters: [${HEADERS}]
    backendRefs: [{name: web, port: 80, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-backend, value: web}]}}]}]
---
apiVersion: palisade.dev/v1
kind: FaultInjection
metadata: {name: boom, namespace: default}
spec: {abort: {httpStatus: 503, percentage: {value: 100}}}
`;
  const router = routedBy(RULES, {
    flows,
    // web's endpoint is not a workload of the mesh (every attempt fails: the proxy's 503); local's denies the client
    service: (name) => (name === 'web' ? service('web', '10.0.0.5') : name === 'local' ? service('local', '10.0.0.7') : undefined),
    local: (ip) => (ip === '10.0.0.7' ? workload('local', ip) : undefined),
    deliver: (c) => c.refuse({ reason: 'denied-by-policy', verdict: { allowed: false, reason: 'denied-by-policy' } }),
  });
  after(() => router.closeAll());
  const connection = (): ReturnType<typeof duplexPair>[0] => {
    const [ours, theirs] = duplexPair();
    router.handle(theirs, client, { ip: client.ip, workload: client.name, namespace: 'default', identity: client.identity }, { namespace: 'default', name: 'web', port: 80 });
    return ours;
  };

  async function h1(path: string): Promise<string> {
    const ours = connection();
    ours.write(`GET ${path} HTTP/1.1\r\nHost: web\r\n\r\n`);
    const head = await new Promise<string>((resolve) => {
      let got = '';
      ours.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('\r\n\r\n')) resolve(got.slice(0, got.indexOf('\r\n\r\n') + 2));
      });
    });
    ours.destroy();
    return head;
  }

  async function h2(path: string, grpc: boolean): Promise<http2.IncomingHttpHeaders> {
    const ours = connection();
    const session = http2.connect('http://web', { createConnection: () => ours });
    try {
      const req = session.request({ ':method': 'POST', ':path': path, ...(grpc && { 'content-type': 'application/grpc', te: 'trailers' }) });
      req.end();
      const [headers] = (await new Promise((resolve, reject) => {
        req.once('response', (h) => resolve([h]));
        req.once('error', reject);
      })) as [http2.IncomingHttpHeaders];
      req.resume();
      return headers;
    } finally {
      session.destroy();
    }
  }

  const CASES: [string, string, RegExp, RegExp[]][] = [
    ['a fault\'s abort', '/abort/x', /^HTTP\/1\.1 503 /, [/\r\nx-route: a\r\n/]],
    ['a redirect (its Location kept)', '/old/x', /^HTTP\/1\.1 301 [^]*\r\nlocation: http:\/\/new\.example\/old\/x\r\n/, [/\r\nx-route: a\r\n/]],
    ['every attempt failed (the backendRef\'s headers too: a backend was chosen)', '/', /^HTTP\/1\.1 503 /, [/\r\nx-route: a\r\n/, /\r\nx-backend: web\r\n/]],
  ];
  for (const [what, path, status, want] of CASES) {
    it(`HTTP/1.1, ${what}: the route's response headers on the proxy's answer`, async () => {
      const head = await h1(path);
      assert.match(head, status);
      for (const w of want) assert.match(head, w);
      assert.equal(head.match(/\r\nlocation:/gi)?.length ?? 0, path === '/old/x' ? 1 : 0, `no Location of the route's own: ${head}`);
    });
  }

  it('HTTP/1.1, the destination\'s refusal: its 403 as it is, none of the route\'s headers', async () => {
    const head = await h1('/denied');
    assert.match(head, /^HTTP\/1\.1 403 /);
    assert.doesNotMatch(head, /x-route/i);
    assert.equal(flows.at(-1)?.reason, 'denied-by-policy');
  });

  it('HTTP/2: a fault\'s abort and a redirect carry the route\'s headers; a gRPC call\'s trailers-only status is kept', async () => {
    const abort = await h2('/abort/x', false);
    assert.deepEqual([abort[':status'], abort['x-route'], abort.location], [503, 'a', undefined]);
    const redirect = await h2('/old/y', false);
    assert.deepEqual([redirect[':status'], redirect['x-route'], redirect.location], [301, 'a', 'http://new.example/old/y']);
    const call = await h2('/abort/demo.Greeter/Say', true);
    assert.deepEqual([call[':status'], call['grpc-status'], call['x-route']], [200, '14', 'a'], 'UNAVAILABLE, not the route\'s "0"');
    const failed = await h2('/', false);
    assert.deepEqual([failed[':status'], failed['x-route'], failed['x-backend']], [503, 'a', 'web']);
    const denied = await h2('/denied', false);
    assert.deepEqual([denied[':status'], denied['x-route']], [403, undefined]);
  });
});

describe('TrafficRouter: each mirrored copy that goes gets a flow record of its own (reason mirror)', () => {
  const client = workload('client', '10.0.0.9');
  const flows: FlowRecord[] = [];
  // the mirror's endpoint is not a workload of the mesh: its copy fails; the primary's backend has none (503)
  const router = routedBy('  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]\n    backendRefs: [{name: web, port: 80}]\n', {
    flows,
    service: (name) => (name === 'shadow' ? service('shadow', '10.0.0.8') : undefined),
  });
  after(() => router.closeAll());

  it('a copy that failed: an error flow, reason mirror, to the mirror\'s endpoint, status 0, naming the route and the mirror\'s Service', async () => {
    const [ours, theirs] = duplexPair();
    router.handle(theirs, client, { ip: client.ip, workload: client.name, namespace: 'default', identity: client.identity }, { namespace: 'default', name: 'web', port: 80 });
    ours.write('GET /a?q=1 HTTP/1.1\r\nHost: web\r\n\r\n');
    await new Promise((resolve) => ours.once('data', resolve));
    ours.destroy();
    for (let i = 0; i < 100 && flows.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const copy = flows.find((f) => f.reason === 'mirror');
    const primary = flows.find((f) => f.reason !== 'mirror');
    assert.ok(copy && primary, JSON.stringify(flows));
    assert.deepEqual([copy.direction, copy.verdict, copy.destination.ip, copy.destination.port, copy.destination.host, copy.http], ['outbound', 'error', '10.0.0.8', 8080, 'web', { method: 'GET', path: '/a', status: 0 }]);
    assert.deepEqual(copy.traffic, { route: 'default/web', rule: 0, backend: 'default/shadow', attempts: 1 });
    assert.deepEqual([primary.http?.status, primary.traffic?.backend], [503, 'default/web']);
    assert.equal(router.stats().mirrors.failed, 1);
  });
});

describe('TrafficRouter: a bulkhead\'s 503 carries the rule\'s and the chosen backendRef\'s response headers', () => {
  const client = workload('client', '10.0.0.9');
  const flows: FlowRecord[] = [];
  const add = (name: string): string => `{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: ${name}, value: a}]}}`;
  const rules = `  - filters: [${add('x-route')}]
    backendRefs: [{name: web, port: 80, filters: [${add('x-backend')}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1, http1MaxPendingRequests: 0}}}
`;
  // web's one endpoint is on this node and never answers: the first request holds the one place
  const router = routedBy(rules, { flows, service: (name) => (name === 'web' ? service('web', '10.0.0.7') : undefined), local: (ip) => (ip === '10.0.0.7' ? workload('web', ip) : undefined), deliver: () => undefined });
  after(() => router.closeAll());

  it('HTTP/1.1: the second request at once is refused 503 (upstream-overflow) with both headers', async () => {
    const open = (): ReturnType<typeof duplexPair>[0] => {
      const [ours, theirs] = duplexPair();
      router.handle(theirs, client, { ip: client.ip, workload: client.name, namespace: 'default', identity: client.identity }, { namespace: 'default', name: 'web', port: 80 });
      ours.write('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
      return ours;
    };
    const first = open();
    await new Promise((r) => setTimeout(r, 50));
    const second = open();
    const head = await new Promise<string>((resolve) => {
      let got = '';
      second.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('\r\n\r\n')) resolve(got);
      });
    });
    second.destroy();
    first.destroy();
    assert.match(head, /^HTTP\/1\.1 503 /);
    assert.match(head, /\r\nx-route: a\r\n/);
    assert.match(head, /\r\nx-backend: a\r\n/);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(flows.some((f) => f.reason === 'upstream-overflow'), JSON.stringify(flows.map((f) => f.reason)));
  });
});
