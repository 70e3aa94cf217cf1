import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { FlowRecord } from '../../../../common/flow';
import { silentLogger } from '../../../../common/log';
import type { RegistryService } from '../../../../common/mesh-protocol';
import { compilePolicyFiles, type PolicyIndex } from '../../../../common/policy';
import { DestinationTable, RouteTable } from '../../../../common/routes';
import type { ClientSide, DestinationAuthz } from '../../../../agent/proxy/destination-authz';
import { splice } from '../../../../agent/proxy/pipe';
import { routedHeadKind } from '../../../../agent/traffic/passthrough';
import { TrafficRouter } from '../../../../agent/traffic/router';
import type { Workload } from '../../../../agent/workloads';
import { tlsIdentity, type TlsIdentity } from '../../../harness/tls-identity';
import { waitFor } from '../../../harness/wait';

const workload = (name: string, ip: string): Workload =>
  ({ name, namespace: 'default', serviceAccount: name, netns: '', ip, strict: false, labels: {}, identity: `spiffe://cluster.local/ns/default/sa/${name}` }) as Workload;
const service = (name: string, ...ips: string[]): RegistryService => ({ namespace: 'default', name, vips: [], ports: [{ name: 'https', port: 443 }], endpoints: ips.map((ip) => ({ ip, ready: true, targetPorts: [8443] })) });

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: secure, namespace: default}
spec:
  parentRefs: [{kind: Service, name: secure}]
  rules:
  - matches: [{headers: [{name: x-group, value: beta}]}]
    backendRefs: [{name: gone, port: 443}]
  - backendRefs: [{name: secure-a, port: 443, weight: 80}, {name: secure-b, port: 443, weight: 20}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: paths, namespace: default}
spec:
  parentRefs: [{kind: Service, name: paths}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: secure-a, port: 443}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: flaky, namespace: default}
spec:
  parentRefs: [{kind: Service, name: flaky}]
  rules:
  - backendRefs: [{name: flaky, port: 443}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sticky, namespace: default}
spec:
  parentRefs: [{kind: Service, name: sticky}]
  rules:
  - backendRefs: [{name: sticky, port: 443}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: sticky, namespace: default}
spec:
  host: sticky
  trafficPolicy:
    loadBalancer: {consistentHash: {useSourceIp: true}}
`;

describe('L4 pass-through of routed Services\' connections that are not HTTP (agent/traffic/passthrough.ts)', function () {
  this.timeout(60_000);

  describe('routedHeadKind: which front a routed connection\'s first bytes go to', () => {
    const CASES: [string, string][] = [
      ['GET / HTTP/1.1\r\n', 'http'],
      ['PROPFIND /x HTTP/1.1', 'http'],
      ['PRI * HTTP/1.1\r\n', 'http'],
      ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'h2'],
      ['PRI * HTTP/2.0\r\n', 'more'],
      ['P', 'more'],
      ['\x16\x03\x01\x02\x00', 'other'],
      ['SSH-2.0-OpenSSH', 'other'],
      ['get / HTTP/1.1', 'other'],
      ['\x00\x00', 'other'],
    ];
    for (const [input, want] of CASES) it(`${JSON.stringify(input)} → ${want}`, () => assert.equal(routedHeadKind(Buffer.from(input, 'latin1')), want));
  });

  describe('through the TrafficRouter, a real TLS handshake to pods faked behind this node\'s destination authorization', () => {
    const client = workload('client', '10.0.0.9');
    const pods = new Map([['10.0.0.1', workload('secure-a', '10.0.0.1')], ['10.0.0.2', workload('secure-b', '10.0.0.2')], ['10.0.0.3', workload('flaky-1', '10.0.0.3')], ['10.0.0.4', workload('flaky-2', '10.0.0.4')], ['10.0.0.5', workload('sticky-1', '10.0.0.5')], ['10.0.0.6', workload('sticky-2', '10.0.0.6')], ['10.0.0.7', workload('sticky-3', '10.0.0.7')]]);
    const services = new Map([
      ['default/secure-a', service('secure-a', '10.0.0.1')],
      ['default/secure-b', service('secure-b', '10.0.0.2')],
      ['default/flaky', service('flaky', '10.0.0.3', '10.0.0.4')],
      ['default/sticky', service('sticky', '10.0.0.5', '10.0.0.6', '10.0.0.7')],
    ]);
    const flows: FlowRecord[] = [];
    /** what the fake destination does per pod IP */
    const behaviour = new Map<string, 'serve' | 'refused' | 'denied'>();
    let id: TlsIdentity;
    let router: TrafficRouter;
    /** the pods: a loopback TLS server each, answering its name */
    const servers: tls.Server[] = [];

    before(async () => {
      id = await tlsIdentity('secure.default.svc');
      const ports = new Map<string, number>();
      for (const [ip, w] of pods) {
        const server = tls.createServer({ key: id.key, cert: id.cert }, (s) => s.end(w.name));
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        ports.set(ip, (server.address() as net.AddressInfo).port);
        servers.push(server);
      }
      const authz = {
        deliver(ctx: { destination: { ip: string } }, _t: number, c: ClientSide): void {
          const b = behaviour.get(ctx.destination.ip) ?? 'serve';
          if (b === 'refused') return c.refuse({ reason: 'upstream-failed', error: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
          if (b === 'denied') return c.refuse({ reason: 'denied-by-policy', verdict: { allowed: false, reason: 'denied-by-policy' } });
          // as this node's authorization does: the pod's connection, then the two spliced
          const pod = net.connect(ports.get(ctx.destination.ip)!, '127.0.0.1', () => c.accept() && splice(c.conn, pod, () => undefined));
        },
      } as unknown as DestinationAuthz;
      const set = compilePolicyFiles([{ source: 'routes.yaml', text: ROUTES }]);
      router = new TrafficRouter({
        node: 'n1',
        log: silentLogger(),
        flows: { record: (f) => flows.push(f) },
        policies: { index: { routes: new RouteTable(set.routes!), destinations: new DestinationTable(set.destinationRules ?? []) } as unknown as PolicyIndex },
        local: { byIp: (ip) => pods.get(ip) },
        registry: { byIp: () => undefined, service: (ns, name) => services.get(`${ns}/${name}`) },
        pool: { connect: () => Promise.reject(new Error('no remote endpoint here')) as Promise<never> },
        authz,
      });
    });
    after(() => {
      router.closeAll();
      for (const s of servers) s.close();
    });

    /** One TLS connection from the client pod to service `name` port 443 (through a loopback listener standing for the outbound one), once its flow is recorded: the name its server answered, or how it failed. */
    async function handshake(name: string): Promise<string> {
      const before = flows.length;
      const listener = net.createServer({ allowHalfOpen: true }, (conn) => {
        router.handle(conn, client, { ip: client.ip, workload: client.name, namespace: 'default', identity: client.identity }, { namespace: 'default', name, port: 443 });
      });
      await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
      const answer = await new Promise<string>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port: (listener.address() as net.AddressInfo).port, servername: 'secure.default.svc', ca: id.ca });
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString()));
        s.on('error', (err) => resolve(`error: ${err.message}`));
        s.on('close', () => resolve(got === '' ? 'closed' : got));
      });
      listener.close();
      await waitFor(() => flows.length > before, 5000, { what: 'the connection\'s flow record' });
      return answer;
    }

    it('each connection completes its handshake with an endpoint of the catch-all rule, the backend chosen by weight per connection; a flow says so', async () => {
      const n = 60;
      const answers: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const a = await handshake('secure');
        answers[a] = (answers[a] ?? 0) + 1;
      }
      assert.deepEqual(Object.keys(answers).sort(), ['secure-a', 'secure-b'], JSON.stringify(answers));
      assert.ok(answers['secure-a']! > answers['secure-b']!, `80/20: ${JSON.stringify(answers)}`);
      const recorded = flows.slice(-n);
      assert.equal(recorded.length, n);
      assert.ok(recorded.every((f) => f.protocol === 'tls' && f.verdict === 'allowed' && f.reason === 'routed-l4' && f.traffic?.route === 'default/secure' && f.traffic.rule === 1 && f.traffic.attempts === 1));
      assert.ok(recorded.every((f) => f.destination.host === 'secure.default.svc' && `default/${f.destination.workload}` === f.traffic!.backend), 'the SNI and the endpoint chosen');
      assert.ok(recorded.every((f) => f.bytesSent > 0 && f.bytesReceived > 0));
    });

    it('an endpoint that cannot be reached is ejected and the next one tried; a destination\'s denial is final', async () => {
      behaviour.set('10.0.0.3', 'refused');
      for (let i = 0; i < 4; i++) assert.equal(await handshake('flaky'), 'flaky-2');
      const retried = flows.slice(-4);
      assert.ok(retried.some((f) => f.traffic?.attempts === 2), 'the refused endpoint was tried, then the other');
      assert.ok(retried.every((f) => f.destination.workload === 'flaky-2' && f.verdict === 'allowed'));
      behaviour.set('10.0.0.3', 'denied');
      behaviour.set('10.0.0.4', 'denied');
      assert.match(await handshake('flaky'), /^(closed|error: .*)$/);
      const f = flows.at(-1)!;
      assert.deepEqual([f.verdict, f.reason, f.traffic?.attempts, f.protocol], ['denied', 'denied-by-policy', 1, 'tls']);
    });

    it('the backend\'s DestinationRule picks each connection\'s endpoint: a source-IP hash keeps the client pod on one of 3', async () => {
      const answers = new Set<string>();
      for (let i = 0; i < 6; i++) answers.add(await handshake('sticky'));
      assert.equal(answers.size, 1, [...answers].join(','));
      assert.match([...answers][0]!, /^sticky-[123]$/);
    });

    it('a route with no catch-all rule refuses the connection, as an unmatched request is', async () => {
      assert.match(await handshake('paths'), /^(closed|error: .*)$/, 'no server answered');
      const f = flows.at(-1)!;
      assert.deepEqual([f.verdict, f.reason, f.protocol, f.traffic?.route], ['error', 'no-route-match', 'tls', 'default/paths']);
    });
  });
});
