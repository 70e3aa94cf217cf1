import { strict as assert } from 'node:assert';
import type { CollectorClient } from '../../../agent/mesh/collector-client';
import type { RunningCollector } from '../../../collector/collector';
import type { PalisadeError } from '../../../common/errors';
import type { RegistrySnapshot } from '../../../common/mesh-protocol';
import { CaTemplate, client, collector, joinedNodeDir, LogCapture, snapshotWhere, Stack, TempDirs, workload } from './helpers';

const ips = (s: RegistrySnapshot): string[] => s.workloads.map((w) => `${w.node}:${w.ip}`);

describe('collector: workload registry', () => {
  const suiteDirs = new TempDirs();
  const suite = new Stack();
  const stack = new Stack();
  let logs: LogCapture;
  let col: RunningCollector;
  let dirA: string;
  let dirB: string;

  before(async () => {
    logs = new LogCapture();
    const data = new CaTemplate(suiteDirs).dataDir(suiteDirs);
    col = await collector(suite, { dataDir: data, log: logs.logger });
    [dirA, dirB] = await Promise.all([joinedNodeDir(suiteDirs, col, data, 'node-a'), joinedNodeDir(suiteDirs, col, data, 'node-b')]);
  });
  after(async () => {
    await suite.unwind();
    suiteDirs.cleanup();
  });
  afterEach(() => stack.unwind());

  function node(name: 'node-a' | 'node-b', nodeAddress: string): CollectorClient {
    return client(stack, { url: col.url, caPem: col.ca.certPem, node: name, nodeAddress, dataDir: name === 'node-a' ? dirA : dirB });
  }

  it('pushes a snapshot with both nodes\' workloads to both agents', async () => {
    const a = node('node-a', '192.168.50.1');
    const b = node('node-b', '192.168.50.2');
    a.setWorkloads([workload('web', '10.1.0.1')]);
    b.setWorkloads([workload('db', '10.1.0.2')]);
    await Promise.all([a.start(), b.start()]);
    const both = (s: RegistrySnapshot): boolean => ips(s).join() === 'node-a:10.1.0.1,node-b:10.1.0.2';
    const [sa, sb] = await Promise.all([snapshotWhere(a, both), snapshotWhere(b, both)]);
    for (const s of [sa, sb]) {
      assert.deepEqual(s.workloads[0], {
        node: 'node-a',
        nodeAddress: '192.168.50.1',
        name: 'web',
        namespace: 'default',
        serviceAccount: 'web',
        identity: 'spiffe://cluster.local/ns/default/sa/web',
        ip: '10.1.0.1',
        labels: { app: 'web' },
      });
      assert.deepEqual(
        s.nodes.map((n) => [n.node, n.nodeAddress, n.online]),
        [
          ['node-a', '192.168.50.1', true],
          ['node-b', '192.168.50.2', true],
        ],
      );
    }
  });

  it('refuses an IP another node registered, with an error, and changes nothing', async () => {
    const a = node('node-a', '192.168.50.1');
    const b = node('node-b', '192.168.50.2');
    a.setWorkloads([workload('web', '10.1.0.1')]);
    b.setWorkloads([workload('db', '10.1.0.2')]);
    await Promise.all([a.start(), b.start()]);
    await snapshotWhere(b, (s) => ips(s).join() === 'node-a:10.1.0.1,node-b:10.1.0.2');
    const before = col.snapshot();
    const refused = new Promise<PalisadeError>((resolve) => b.once('collector-error', resolve));
    b.setWorkloads([workload('db', '10.1.0.2'), workload('evil', '10.1.0.1')]);
    const err = await refused;
    assert.equal(err.code, 'PALISADE_ERR_REGISTRATION_REFUSED');
    assert.match(err.message, /default\/evil: ip 10\.1\.0\.1 is already registered by node node-a/);
    assert.deepEqual(col.snapshot().workloads, before.workloads);
    assert.equal(col.snapshot().version, before.version);
    assert.ok(logs.find('workloads refused', { node: 'node-b' }));
  });

  it('replaces a node\'s set on every register and bumps the version', async () => {
    const a = node('node-a', '192.168.50.1');
    a.setWorkloads([workload('web', '10.1.0.1'), workload('api', '10.1.0.3')]);
    await a.start();
    await snapshotWhere(a, (s) => ips(s).includes('node-a:10.1.0.3'));
    const v = a.latest()!.version;
    a.setWorkloads([workload('api', '10.1.0.4')]);
    const s = await snapshotWhere(a, (x) => ips(x).includes('node-a:10.1.0.4'));
    assert.ok(s.version > v);
    assert.ok(!ips(s).includes('node-a:10.1.0.1') && !ips(s).includes('node-a:10.1.0.3'));
  });

  it('keeps a disconnected node\'s workloads and marks it offline', async () => {
    const a = node('node-a', '192.168.50.1');
    const b = node('node-b', '192.168.50.2');
    a.setWorkloads([workload('web', '10.1.0.1')]);
    await Promise.all([a.start(), b.start()]);
    await snapshotWhere(b, (s) => ips(s).includes('node-a:10.1.0.1') && s.nodes.some((n) => n.node === 'node-a' && n.online));
    await a.close();
    const s = await snapshotWhere(b, (x) => x.nodes.some((n) => n.node === 'node-a' && !n.online));
    assert.ok(ips(s).includes('node-a:10.1.0.1'), 'workloads stay for established traffic');
    assert.ok(!Number.isNaN(Date.parse(s.nodes.find((n) => n.node === 'node-a')!.lastSeen)));
  });

  it('refuses a workload whose identity is in another trust domain', async () => {
    const a = node('node-a', '192.168.50.1');
    await a.start();
    const refused = new Promise<PalisadeError>((resolve) => a.once('collector-error', resolve));
    a.setWorkloads([{ ...workload('web', '10.1.0.1'), identity: 'spiffe://evil.org/ns/default/sa/web' }]);
    assert.match((await refused).message, /identity spiffe:\/\/evil\.org\/ns\/default\/sa\/web is not spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/);
  });

  it('pushes a service a node declares with the endpoints its selector picks on every node, ready while their node is online', async () => {
    const a = node('node-a', '192.168.50.1');
    const b = node('node-b', '192.168.50.2');
    const web = { namespace: 'default', name: 'web', vips: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }], selector: { app: 'web' } };
    a.setWorkloads([workload('web', '10.1.0.1')], [web]);
    b.setWorkloads([{ ...workload('web-b', '10.1.0.2'), labels: { app: 'web' } }, workload('db', '10.1.0.3')]);
    await Promise.all([a.start(), b.start()]);
    const endpoints = (s: RegistrySnapshot): string => (s.services ?? []).flatMap((x) => x.endpoints.map((e) => `${e.ip}:${e.targetPorts[0]}:${e.ready}`)).join();
    await snapshotWhere(b, (s) => endpoints(s) === '10.1.0.1:8080:true,10.1.0.2:8080:true');
    await b.close();
    await snapshotWhere(a, (s) => endpoints(s) === '10.1.0.1:8080:true,10.1.0.2:8080:false');
    const refused = new Promise<PalisadeError>((resolve) => a.once('collector-error', resolve));
    a.setWorkloads([workload('web', '10.1.0.1')], [web, { ...web, name: 'web-2' }]);
    assert.match((await refused).message, /service default\/web-2: 10\.96\.0\.10:80 is already the address of service default\/web/);
  });

  it('refuses malformed workloads before they reach the wire', async () => {
    const a = node('node-a', '192.168.50.1');
    assert.throws(() => a.setWorkloads([workload('web', '10.1.0.300')]), /workloads\[0\]\.ip: must be an IPv4 address/);
  });
});
