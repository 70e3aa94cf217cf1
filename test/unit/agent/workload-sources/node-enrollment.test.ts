import { strict as assert } from 'node:assert';
import { PalisadeError } from '../../../../common/errors';
import { silentLogger } from '../../../../common/log';
import { LocalWorkloads } from '../../../../agent/local-workloads';
import { NodeEnrollment } from '../../../../agent/workload-sources/node-enrollment';
import type { Workload } from '../../../../agent/workloads';
import { FakeDatapath, FakeMesh, FakeNetns } from '../../../harness/enrollment-fakes';

function workload(name: string, ip: string, sa = name): Workload {
  return { name, namespace: 'shop', serviceAccount: sa, netns: `/netns/${name}`, ip, strict: false, labels: { app: name }, identity: `spiffe://cluster.local/ns/shop/sa/${sa}` };
}

describe('NodeEnrollment', function () {
  let netns: FakeNetns;
  let cookies: Map<string, bigint>;
  let local: LocalWorkloads;
  let dp: FakeDatapath;
  let mesh: FakeMesh;
  let e: NodeEnrollment;
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

  beforeEach(function () {
    netns = new FakeNetns();
    cookies = netns.cookies;
    for (const [p, c] of [['/netns/a', 11n], ['/netns/b', 12n], ['/netns/c', 13n]] as const) cookies.set(p, c);
    local = new LocalWorkloads();
    dp = new FakeDatapath(netns, local);
    mesh = new FakeMesh();
    e = new NodeEnrollment({
      datapath: dp,
      local,
      mesh,
      log: silentLogger(),
      identityTimeoutMs: 50,
      identityLingerMs: 0,
      cookieOf: netns.cookieOf,
    });
  });
  afterEach(() => e.close());

  it('puts a workload in the proxy\'s index before the kernel redirects it, and takes it out of the kernel first', async function () {
    await e.put('k:a', { workload: workload('a', '10.0.0.1'), hostInterface: 'veth-a' });
    assert.deepEqual(dp.ops, ['enroll 11 (index has it: true)']);
    assert.equal(dp.map.get(11n)?.hostInterface, 'veth-a', 'the host interface reaches the data path');
    assert.equal(local.byIp('10.0.0.1')?.name, 'a');
    assert.ok(await e.remove('k:a'));
    assert.deepEqual(dp.ops.slice(1), ['unenroll 11 (index has it: true)']);
    assert.equal(local.size, 0);
    assert.equal(await e.remove('k:a'), false);
  });

  it('registers with the collector and keeps certificates of exactly the identities enrolled', async function () {
    await e.put('k:a', { workload: workload('a', '10.0.0.1', 'web') });
    assert.deepEqual(mesh.retained, ['spiffe://cluster.local/ns/shop/sa/web']);
    assert.deepEqual(mesh.registered.at(-1)?.map((w) => w.name), ['a'], 'a new identity is registered at once (its CSR follows)');
    await e.put('k:b', { workload: workload('b', '10.0.0.2', 'web') });
    await tick();
    assert.deepEqual(mesh.registered.at(-1)?.map((w) => w.name), ['a', 'b']);
    await e.remove('k:a');
    await e.remove('k:b');
    await tick();
    assert.deepEqual(mesh.retained, [], 'no certificate is kept for an identity no pod has');
    assert.deepEqual(mesh.registered.at(-1), []);
  });

  it('keeps the certificate of an identity whose last workload left for the linger time, then drops it', async function () {
    const lingering = new NodeEnrollment({ datapath: dp, local, mesh, log: silentLogger(), cookieOf: netns.cookieOf, identityLingerMs: 80 });
    await lingering.put('k:a', { workload: workload('a', '10.0.0.1', 'web') });
    await lingering.remove('k:a');
    await tick();
    assert.deepEqual(mesh.retained, ['spiffe://cluster.local/ns/shop/sa/web'], 'kept for the next pod of the service account');
    const registrations = mesh.registered.length;
    await lingering.put('k:b', { workload: workload('b', '10.0.0.2', 'web') });
    assert.equal(mesh.registered.length, registrations, 'a lingering identity needs no CSR: its registration is coalesced');
    await lingering.remove('k:b');
    await tick();
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(mesh.retained, []);
    lingering.close();
  });

  it('is idempotent: the same workload again changes nothing; a relabel updates the index in place', async function () {
    const w = workload('a', '10.0.0.1');
    const first = await e.put('k:a', { workload: w });
    await e.put('k:a', { workload: { ...w, labels: { ...w.labels } } });
    assert.equal(dp.ops.length, 1);
    const relabelled = await e.put('k:a', { workload: { ...w, labels: { app: 'other' } } });
    assert.equal(relabelled.podId, first.podId);
    assert.equal(local.byNetnsCookie(11n)?.labels.app, 'other');
  });

  it('refuses a second key for the same netns or a live IP, with one line', async function () {
    await e.put('k:a', { workload: workload('a', '10.0.0.1') });
    await assert.rejects(e.put('k:x', { workload: { ...workload('x', '10.0.0.9'), netns: '/netns/a' } }), /netns \/netns\/a is already enrolled as shop\/a/);
    await assert.rejects(e.put('k:b', { workload: workload('b', '10.0.0.1') }), /ip 10\.0\.0\.1 is already enrolled for shop\/a/);
    assert.equal(e.size, 1);
    assert.equal(local.byIp('10.0.0.1')?.name, 'a');
  });

  it('gives an IP to a new pod when the old holder\'s netns is gone (a missed delete)', async function () {
    await e.put('k:a', { workload: workload('a', '10.0.0.1') });
    cookies.delete('/netns/a');
    await e.put('k:b', { workload: workload('b', '10.0.0.1') });
    assert.deepEqual([...dp.map.keys()], [12n]);
    assert.equal(e.get('k:a'), undefined);
  });

  it('a missing netns is refused and changes nothing', async function () {
    await assert.rejects(e.put('k:z', { workload: { ...workload('z', '10.0.0.26'), netns: '/netns/z' } }), /netns \/netns\/z does not exist/);
    assert.equal(dp.map.size, 0);
    assert.equal(local.size, 0);
  });

  it('awaitIdentity: resolves once the certificate is there; without one in time, the pod is taken out again', async function () {
    mesh.certified.add('spiffe://cluster.local/ns/shop/sa/a');
    await e.put('k:a', { workload: workload('a', '10.0.0.1') }, { awaitIdentity: true });
    await assert.rejects(e.put('k:b', { workload: workload('b', '10.0.0.2') }, { awaitIdentity: true }), (err: PalisadeError) => {
      assert.equal(err.code, 'PALISADE_ERR_IDENTITY');
      assert.match(err.message, /no certificate for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/b within 50 ms/);
      return true;
    });
    assert.deepEqual([...dp.map.keys()], [11n], 'nothing half enrolled');
    assert.equal(local.byIp('10.0.0.2'), undefined);
  });

  it('a new sandbox of the same key replaces the old one (kernel entry moved, new pod id)', async function () {
    const a = await e.put('k:a', { workload: workload('a', '10.0.0.1') });
    const moved = await e.put('k:a', { workload: { ...workload('a', '10.0.0.1'), netns: '/netns/c' } });
    assert.deepEqual([...dp.map.keys()], [13n]);
    assert.notEqual(moved.podId, a.podId);
    assert.equal(local.byNetnsCookie(11n), undefined);
  });

  it('removeUnclaimed unenrolls the kernel\'s pods no key holds; a re-enrolled pod keeps its pod id', async function () {
    dp.map.set(12n, { podId: 40, strict: false });
    dp.map.set(99n, { podId: 41, strict: false });
    const again = new NodeEnrollment({ datapath: dp, local, log: silentLogger(), cookieOf: netns.cookieOf });
    const b = await again.put('k:b', { workload: workload('b', '10.0.0.2') });
    assert.equal(b.podId, 40);
    const a = await again.put('k:a', { workload: workload('a', '10.0.0.1') });
    assert.equal(a.podId, 42, 'new ids start above the ones the kernel has');
    assert.equal(again.removeUnclaimed(), 1);
    assert.deepEqual([...dp.map.keys()].sort(), [11n, 12n]);
  });

  it('runs the operations of one key in order', async function () {
    const w = workload('a', '10.0.0.1');
    const p1 = e.put('k:a', { workload: w });
    const p2 = e.remove('k:a');
    const p3 = e.put('k:a', { workload: { ...w, labels: { v: '3' } } });
    await Promise.all([p1, p2, p3]);
    assert.deepEqual(dp.ops.map((o) => o.split(' ')[0]), ['enroll', 'unenroll', 'enroll']);
    assert.equal(local.byIp('10.0.0.1')?.labels.v, '3');
  });

  describe('a node whose pod maps are full', function () {
    it('refuses the pod beyond them with one line, counts it, reports it, keeps nothing of it, and lets its interface go when it leaves', async function () {
      const refused: Array<{ name: string; reason: string; message: string }> = [];
      const full = new NodeEnrollment({ datapath: dp, local, mesh, log: silentLogger(), identityLingerMs: 0, cookieOf: netns.cookieOf, onRefused: (w, reason, message) => refused.push({ name: w.name, reason, message }) });
      dp.capacity = 2;
      await full.put('k:a', { workload: workload('a', '10.0.0.1') });
      await full.put('k:b', { workload: workload('b', '10.0.0.2') });
      await assert.rejects(full.put('k:c', { workload: workload('c', '10.0.0.3') }), (err: PalisadeError) => {
        assert.equal(err.code, 'PALISADE_ERR_NODE_FULL');
        assert.equal(err.message, 'not enrolled: the node is full: 2 of 2 pods enrolled (--max-pods 2); it has no network through this node until a pod leaves');
        assert.ok(!err.message.includes('\n'));
        return true;
      });
      assert.deepEqual(refused, [{ name: 'c', reason: 'node-pods-full', message: 'not enrolled: the node is full: 2 of 2 pods enrolled (--max-pods 2); it has no network through this node until a pod leaves' }]);
      assert.deepEqual(full.refusals(), [{ reason: 'node-pods-full', count: 1 }]);
      assert.equal(local.byIp('10.0.0.3'), undefined, 'the proxy does not know the refused pod');
      assert.equal(full.size, 2);
      // One leaves: the refused one fits now, and is no longer held once enrolled.
      await full.remove('k:a');
      const c = await full.put('k:c', { workload: workload('c', '10.0.0.3') });
      assert.equal(local.byIp('10.0.0.3')?.name, 'c');
      assert.ok(c.podId > 0);
      assert.deepEqual(dp.released, [], 'an enrolled pod is not released');
      // Refused again, then removed from its source: its held interface is let go.
      await assert.rejects(full.put('k:d', { workload: { ...workload('d', '10.0.0.4'), netns: '/netns/a' } }), /node is full/);
      assert.deepEqual(full.refusals(), [{ reason: 'node-pods-full', count: 2 }]);
      assert.equal(await full.remove('k:d'), false);
      assert.deepEqual(dp.released, [11]);
      full.close();
    });
  });
});
