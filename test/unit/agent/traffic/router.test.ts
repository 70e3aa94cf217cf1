import { strict as assert } from 'node:assert';
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
function routedBy(rules: string, o: { flows?: FlowRecord[]; service?: (name: string) => RegistryService | undefined; deliver?: () => void }): TrafficRouter {
  const set = compilePolicyFiles([{ source: 'r.yaml', text: `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: default}\nspec:\n  parentRefs: [{kind: Service, name: web}]\n  rules:\n${rules}` }]);
  return new TrafficRouter({
    node: 'n1',
    log: silentLogger(),
    flows: { record: (f) => o.flows?.push(f) },
    policies: { index: { routes: new RouteTable(set.routes ?? []), destinations: DestinationTable.EMPTY } as unknown as PolicyIndex },
    local: { byIp: () => undefined },
    registry: { byIp: () => undefined, service: (_ns, name) => o.service?.(name) },
    pool: { connect: () => Promise.reject(new Error('no remote endpoint here')) as Promise<never> },
    authz: { deliver: () => o.deliver?.() } as unknown as DestinationAuthz,
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
