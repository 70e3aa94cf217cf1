import { strict as assert } from 'node:assert';
import { duplexPair } from 'node:stream';
import type { FlowRecord } from '../../../../common/flow';
import { silentLogger } from '../../../../common/log';
import type { RegistryService } from '../../../../common/mesh-protocol';
import type { PolicyIndex } from '../../../../common/policy';
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
