/**
 * The destination side's HBONE keepalive: the real inbound listener (InboundProxy, real mTLS,
 * real destination authorization) on loopback, a tunnel to a "pod" (a TCP echo server), and a
 * source that reaches it through a relay that stops carrying bytes (no FIN, no RST) — a source
 * node powered off. The listener's PING goes unanswered and the tunnel and its connection to the
 * pod end; a quiet tunnel to a source that answers stays open.
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import { silentLogger } from '../../../common/log';
import { PolicyIndex } from '../../../common/policy';
import { HbonePool, type TunnelTarget } from '../../../agent/proxy/hbone-pool';
import { InboundProxy } from '../../../agent/proxy/inbound';
import { DestinationAuthz } from '../../../agent/proxy/destination-authz';
import { ConnectionTracker } from '../../../agent/proxy/tracker';
import { createProxyLimits, proxyLimitSettings } from '../../../agent/proxy/limits';
import type { IdentityCert } from '../../../agent/identity/manager';
import type { Workload } from '../../../agent/workloads';
import type { MeshWorkload } from '../../../agent/mesh/mesh-registry';
import { closeServer, listenLoopback, stallingRelay } from '../../harness/loopback';
import { workloadIdentity } from '../../harness/tls-identity';
import { tempDir } from '../../harness/agent';
import { waitFor } from '../../harness/wait';

const SRC = 'spiffe://cluster.local/ns/default/sa/client';
const DST = 'spiffe://cluster.local/ns/default/sa/web';
const SRC_IP = '10.0.1.10';
/** the source pool's keepalive: long, so only the destination's PING can end the tunnel */
const SOURCE_QUIET = { intervalMs: 60_000, timeoutMs: 60_000 };

describe('InboundProxy: keepalive towards a source node that vanished', function () {
  this.timeout(20_000);
  let identities: Map<string, IdentityCert>;
  let pod: net.Server;
  let podPort = 0;
  /** the pod's side of each connection it was given */
  const podConns: net.Socket[] = [];

  before(async function () {
    const ca = CertificateAuthority.loadOrCreate(tempDir('inbound-keepalive'), 'cluster.local');
    const [src, dst] = await Promise.all([workloadIdentity(ca, SRC), workloadIdentity(ca, DST)]);
    identities = new Map([
      [SRC, src],
      [DST, dst],
    ]);
    pod = net.createServer((c) => {
      podConns.push(c);
      c.on('error', () => undefined);
      c.pipe(c);
    });
    podPort = await listenLoopback(pod);
  });

  after(async function () {
    for (const c of podConns) c.destroy();
    await closeServer(pod);
  });

  /** A destination node: the listener on loopback, serving the pod at 127.0.0.1. */
  async function destination(keepalive: { intervalMs: number; timeoutMs: number }): Promise<{ inbound: InboundProxy; port: number }> {
    const log = silentLogger();
    const web: Workload = { name: 'web', namespace: 'default', serviceAccount: 'web', netns: '/proc/1/ns/net', ip: '127.0.0.1', strict: false, labels: {}, identity: DST };
    const client: MeshWorkload = { node: 'node-1', nodeAddress: '127.0.0.1', name: 'client', namespace: 'default', serviceAccount: 'client', identity: SRC, ip: SRC_IP, labels: {} };
    const limits = createProxyLimits(proxyLimitSettings({}), { node: 'node-2', flows: { record: () => undefined }, log });
    const authz = new DestinationAuthz({
      node: 'node-2',
      proxyIp: '127.0.0.1',
      policies: { index: new PolicyIndex({ authorization: [], egress: [] }) },
      flows: { record: () => undefined },
      tracker: new ConnectionTracker(),
      log,
      connectTimeoutMs: 2000,
      sniffTimeoutMs: 2000,
      limits,
    });
    const inbound = new InboundProxy({
      node: 'node-2',
      listenAddress: '127.0.0.1',
      proxyIp: '127.0.0.1',
      identities: { get: (id) => identities.get(id) },
      local: { byIp: (ip) => (ip === web.ip ? web : undefined), all: () => [web] },
      mesh: { byIp: (ip) => (ip === SRC_IP ? client : undefined) },
      log,
      authz,
      limits,
      keepalive,
    });
    const a = await inbound.listen(0);
    return { inbound, port: a.port };
  }

  function target(): TunnelTarget {
    return { srcIdentity: SRC, srcIp: SRC_IP, nodeAddress: '127.0.0.1', dstIdentity: DST, dst: { ip: '127.0.0.1', port: podPort } };
  }

  /** Open a tunnel to the pod and see one echo through it; resolves with the pod's side of it. */
  async function tunnel(pool: HbonePool): Promise<{ podSide: net.Socket; stream: import('node:http2').ClientHttp2Stream }> {
    const before = podConns.length;
    const stream = await pool.connect(target());
    stream.on('error', () => undefined);
    stream.write('ping\n');
    const echoed = await new Promise<string>((resolve) => stream.once('data', (b: Buffer) => resolve(b.toString())));
    assert.equal(echoed, 'ping\n', 'the tunnel reaches the pod');
    assert.equal(podConns.length, before + 1);
    return { podSide: podConns[podConns.length - 1]!, stream };
  }

  it('a source node that stops answering (no FIN, no RST): the PING goes unanswered, the tunnel and its connection to the pod end', async function () {
    const { inbound, port } = await destination({ intervalMs: 200, timeoutMs: 400 });
    const relay = await stallingRelay(port);
    const pool = new HbonePool({ get: (id) => identities.get(id) }, silentLogger(), relay.port, 5000, SOURCE_QUIET);
    try {
      const { podSide } = await tunnel(pool);
      assert.equal(inbound.live, 1);
      let closed = false;
      podSide.once('close', () => (closed = true));
      const t0 = performance.now();
      relay.stall();
      await waitFor(() => closed, 5000, { what: "the pod's connection to end" });
      const ms = performance.now() - t0;
      assert.ok(ms < 3000, `the pod's connection ended after ${ms.toFixed(0)} ms (PING every 200 ms, answer within 400 ms)`);
      assert.equal(inbound.counters.keepaliveFailures, 1, 'counted');
      await waitFor(() => inbound.live === 0, 1000, { what: 'the session gone' });
      assert.equal(pool.keepaliveFailures, 0, 'ended by the destination side, not the source');
    } finally {
      pool.close();
      await relay.close();
      await inbound.close();
    }
  });

  it('a quiet tunnel from a source that answers PINGs stays open, its pod connection too', async function () {
    const { inbound, port } = await destination({ intervalMs: 100, timeoutMs: 400 });
    const pool = new HbonePool({ get: (id) => identities.get(id) }, silentLogger(), port, 5000, SOURCE_QUIET);
    try {
      const { podSide, stream } = await tunnel(pool);
      let ended = false;
      podSide.once('close', () => (ended = true));
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(ended, false, 'the pod connection is still open');
      assert.equal(inbound.counters.keepaliveFailures, 0);
      stream.write('again\n');
      const echoed = await new Promise<string>((resolve) => stream.once('data', (b: Buffer) => resolve(b.toString())));
      assert.equal(echoed, 'again\n', 'and still carries bytes');
    } finally {
      pool.close();
      await inbound.close();
    }
  });
});
