/**
 * Connections into an enrolled pod leave the kernel's record when they close (bpf/pod.bpf.c,
 * palisade_tcp_in): real agent, real eBPF, real sockets. Before, every connection ever opened to a
 * pod stayed in the LRU map, so a burst of short connections (the data-plane bench's no-keep-alive
 * round: ~20,000 to one nginx) evicted the record of an idle connection pooled into the pod, and
 * the pod's replies on it were dropped (fail closed): haproxy's and the agent's pooled upstream
 * connections hung without an error, and the agent held its clients in CLOSE-WAIT meanwhile.
 */
import { strict as assert } from 'node:assert';
import { Datapath } from '../../../agent/datapath/datapath';
import {
  fixturePath,
  requirePrivileges,
  startAgentProcess,
  startEchoServer,
  startFixture,
  sweepStale,
  tearDown,
  Topology,
  type AgentProcess,
  type NodeNs,
  type PodNs,
} from '../../harness';

/** The connection maps' size for this agent: the churn below is several times it. */
const MAP_SIZE = 256;
const CHURN = 1200;
const ECHO_PORT = 7000;
const CLOSE_PORT = 7001;
const RESET_PORT = 7002;

/** A server that writes and closes first (an HTTP server answering "Connection: close"), or resets once the client has read what it wrote (argv[3] 'reset'). */
const SERVER_FIRST = `const net = require('net');
const reset = process.argv[3] === 'reset';
net.createServer((s) => { s.on('error', () => s.destroy()); if (reset) { s.write('bye'); s.once('data', () => s.resetAndDestroy()); } else s.end('bye'); })
  .listen({ host: process.argv[1], port: Number(process.argv[2]) }, () => console.log(JSON.stringify({ event: 'listening' })));`;

interface Churn {
  served: number;
  failed: number;
  errors: Record<string, number>;
  held: boolean;
  heldError?: string;
}

describe('Connections into a pod leave the kernel\'s record when they close (real eBPF)', function () {
  this.timeout(120_000);

  let topo: Topology;
  let node: NodeNs;
  let server: PodNs; // enrolled, not strict: takes connections from outside the mesh
  let stranger: PodNs; // not enrolled: the short connections' client
  let agent: AgentProcess;

  before(async function () {
    requirePrivileges();
    sweepStale();
    topo = await Topology.create({ label: 'podclose', nodes: 1 });
    [node] = topo.nodes as [NodeNs];
    server = await topo.addPod(node, 'server');
    stranger = await topo.addPod(node, 'stranger');
    await startEchoServer(topo, server, server.ip, ECHO_PORT);
    await startFixture(topo, server, process.execPath, ['-e', SERVER_FIRST, server.ip, String(CLOSE_PORT), 'close'], { name: 'close-first server' });
    await startFixture(topo, server, process.execPath, ['-e', SERVER_FIRST, server.ip, String(RESET_PORT), 'reset'], { name: 'reset-first server' });
    agent = startAgentProcess(topo, node, { pods: [{ pod: server, serviceAccount: 'server' }], extraArgs: ['--kernel-connections', String(MAP_SIZE)] });
    await agent.ready;
  });

  after(() => tearDown({ agents: [agent], topo })); // the topology kills the servers it spawned

  const tcpIn = (): { entries: number; capacity: number } => {
    const dp = Datapath.open(node.name);
    try {
      const u = dp.usage().find((m) => m.map === 'palisade_tcp_in');
      assert.ok(u, 'palisade_tcp_in has a usage');
      return u;
    } finally {
      dp.close();
    }
  };

  it('regression (an idle connection into a pod hung after many short ones): it still answers, and the closed ones (client, server or reset first) are gone from the map', async function () {
    assert.equal(tcpIn().capacity, MAP_SIZE, 'the map has the size asked for');
    const r = await topo.exec(stranger, process.execPath, [fixturePath('tcp-churn.js'), server.ip, String(ECHO_PORT), `${CLOSE_PORT},${RESET_PORT}`, String(CHURN)], { timeoutMs: 90_000 });
    const churn = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Churn;
    assert.deepEqual({ served: churn.served, failed: churn.failed }, { served: CHURN, failed: 0 }, `every short connection was served (${JSON.stringify(churn.errors)})`);
    assert.ok(churn.held, `the idle connection answers after ${CHURN} short ones through a map of ${MAP_SIZE} (${churn.heldError})`);
    // the held one, and at most a few whose last packets are still on their way
    const left = tcpIn().entries;
    assert.ok(left <= 8, `${left} entries left in palisade_tcp_in after ${CHURN} closed connections`);
  });
});
