/**
 * Outbound listener (PROXY_IP:15001): every TCP connection an enrolled pod opens
 * lands here. The source pod and its original destination come from the kernel
 * (palisade_conns, keyed by the pod's address and source port): a connection the
 * kernel has no record of is refused, never guessed at.
 *
 * Then, by route(): a pod on another node → HBONE tunnel as the source workload's
 * identity; a pod on this node → delivered from PROXY_IP; anything else → passed
 * through from the node's own address (egress policy comes later).
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Workload } from '../workloads';
import type { ProxyInputs } from './inputs';
import { splice } from './pipe';
import { route, type Route } from './route';

export type Refusal = 'no-original-destination' | 'unknown-source-pod' | 'source-address-mismatch' | 'tunnel-failed';

export class OutboundProxy {
  private readonly inputs: ProxyInputs;
  private readonly server: net.Server;
  private readonly sockets = new Set<Duplex>();
  private readonly log: ProxyInputs['log'];

  constructor(inputs: ProxyInputs) {
    this.inputs = inputs;
    this.log = inputs.log.child({ component: 'outbound' });
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.onConnection(s));
  }

  listen(port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.inputs.proxyIp, port, backlog: 1024 }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private refuse(socket: net.Socket, reason: Refusal, fields: Record<string, unknown>): void {
    this.log.warn({ event: 'refused', reason, ...fields }, 'outbound connection refused');
    socket.resetAndDestroy();
  }

  private onConnection(client: net.Socket): void {
    const started = Date.now();
    const peerIp = stripMapped(client.remoteAddress ?? '');
    const peerPort = client.remotePort ?? 0;
    const source = { ip: peerIp, port: peerPort };
    client.on('error', () => undefined);
    let orig;
    try {
      orig = this.inputs.datapath.lookupOriginal(peerIp, peerPort);
    } catch (err) {
      this.log.error({ err, source }, 'original destination lookup failed');
      client.resetAndDestroy();
      return;
    }
    if (!orig) return this.refuse(client, 'no-original-destination', { source });
    const workload = this.inputs.workloads.byNetnsCookie(orig.netnsCookie);
    if (!workload) {
      return this.refuse(client, 'unknown-source-pod', { source, netnsCookie: orig.netnsCookie.toString() });
    }
    if (workload.ip !== peerIp) {
      return this.refuse(client, 'source-address-mismatch', { source, workload: workload.name, expected: workload.ip });
    }
    const destination = orig.dst;
    const r = route(destination.ip, { node: this.inputs.node, local: this.inputs.workloads, mesh: this.inputs.mesh?.registry });
    const sourceInfo = { ...source, workload: workload.name, namespace: workload.namespace, identity: workload.identity };
    const dstInfo = { ...destination, ...describeRoute(r) };
    this.log.info({ event: 'redirect', route: r.kind, source: sourceInfo, destination: dstInfo }, 'outbound connection');

    this.sockets.add(client);
    client.pause();
    this.openUpstream(r, workload, destination).then(
      (upstream) => {
        this.sockets.add(upstream);
        client.resume();
        splice(client, upstream, (res) => {
          this.sockets.delete(client);
          this.sockets.delete(upstream);
          const fields = {
            event: 'close',
            route: r.kind,
            source: sourceInfo,
            destination: dstInfo,
            mtls: r.kind === 'hbone',
            bytesSent: res.bytesSent,
            bytesReceived: res.bytesReceived,
            durationMs: Date.now() - started,
          };
          if (res.error) this.log.info({ ...fields, error: errorCode(res.error) }, 'connection failed');
          else this.log.info(fields, 'connection closed');
        });
      },
      (err: Error) => {
        this.sockets.delete(client);
        this.refuse(client, 'tunnel-failed', { route: r.kind, source: sourceInfo, destination: dstInfo, error: err.message });
      },
    );
  }

  /** Resolves with a connected upstream stream, or rejects; nothing is spliced before that. */
  private openUpstream(r: Route, src: Workload, dst: { ip: string; port: number }): Promise<Duplex> {
    if (r.kind === 'hbone') {
      const mesh = this.inputs.mesh!;
      return mesh.pool.connect({
        srcIdentity: src.identity,
        srcIp: src.ip,
        nodeAddress: r.workload.nodeAddress,
        dstIdentity: r.workload.identity,
        dst,
      });
    }
    // A local pod is reached from PROXY_IP so strict pods accept it; anything
    // else leaves from the node's own address.
    return new Promise((resolve, reject) => {
      const upstream = net.connect({
        host: dst.ip,
        port: dst.port,
        allowHalfOpen: true,
        noDelay: true,
        timeout: this.inputs.connectTimeoutMs,
        ...(r.kind === 'local' ? { localAddress: this.inputs.proxyIp } : {}),
      });
      const fail = (err: Error): void => {
        upstream.destroy();
        reject(err);
      };
      upstream.once('error', fail);
      upstream.once('timeout', () => fail(Object.assign(new Error('upstream connect timed out'), { code: 'ETIMEDOUT' })));
      upstream.once('connect', () => {
        upstream.off('error', fail);
        upstream.removeAllListeners('timeout');
        upstream.setTimeout(0);
        resolve(upstream);
      });
    });
  }
}

function describeRoute(r: Route): Record<string, string> {
  if (r.kind === 'passthrough') return {};
  return { workload: r.workload.name, namespace: r.workload.namespace, identity: r.workload.identity };
}

function errorCode(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? err.message;
}

function stripMapped(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
