import { strict as assert } from 'assert';
import * as fs from 'fs';
import { listNetnsSync, requirePrivileges, runClient, startEchoServer, sweepStale, Topology } from '../harness';

describe('Topology', function () {
  this.timeout(20_000);

  before(function () {
    requirePrivileges();
    sweepStale();
  });

  describe('create', function () {
    let topo: Topology | undefined;

    after(async function () {
      await topo?.destroy();
    });

    it('routes a 64 KiB echo between pods on two nodes and cleans up completely', async function () {
      topo = await Topology.create({ label: 'selftest', nodes: 2 });
      const [nodeA, nodeB] = topo.nodes;
      assert.ok(nodeA && nodeB);
      assert.equal(nodeA.underlayIp, '172.31.0.1');
      assert.equal(nodeB.proxyIp, '10.0.2.1');
      assert.notEqual(nodeA.name, nodeB.name);

      const podA = await topo.addPod(nodeA, 'a');
      const podB = await topo.addPod(nodeB, 'b');
      assert.equal(podA.ip, '10.0.1.10');
      assert.equal(podB.ip, '10.0.2.10');

      const server = await startEchoServer(topo, podB, podB.ip, 7000);
      // Processes land in their pod's cgroup.
      const procs = fs.readFileSync(`${podB.cgroupPath}/cgroup.procs`, 'utf8').split('\n');
      assert.ok(procs.includes(String(server.child.pid)), `server pid ${server.child.pid} not in ${podB.cgroupPath}`);

      const res = await runClient(topo, podA, podB.ip, 7000, 64 * 1024);
      assert.equal(res.error, undefined);
      assert.ok(res.ok, JSON.stringify(res));
      assert.equal(res.received, 64 * 1024);
      assert.ok(res.sha256Match);
      assert.equal(res.remoteAddress, podB.ip);
      assert.equal(res.localAddress, podA.ip);

      const accepts = server.accepts();
      assert.equal(accepts.length, 1, JSON.stringify(accepts));
      assert.equal(accepts[0]!.remoteAddress, podA.ip);
      assert.equal(accepts[0]!.remotePort, res.localPort);

      const refused = await runClient(topo, podA, podB.ip, 7001, 16, 2000);
      assert.equal(refused.ok, false);
      assert.equal(refused.error, 'ECONNREFUSED');

      const { nsPrefix, cgroupPath } = topo;
      await topo.destroy();
      await topo.destroy(); // idempotent
      assert.deepEqual(listNetnsSync().filter((n) => n.startsWith(nsPrefix)), []);
      assert.equal(fs.existsSync(cgroupPath), false, `${cgroupPath} still exists`);
    });
  });
});
