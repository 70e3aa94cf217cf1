/**
 * Outbound listener (PROXY_IP:15001): every TCP connection an enrolled pod opens
 * lands here. The source pod and its original destination come from the kernel
 * (palisade_conns, keyed by the pod's address and source port): a connection the
 * kernel has no record of is refused, never guessed at.
 *
 * Until the mesh tunnel exists, an accepted connection is passed through to its
 * original destination.
 */
import * as net from 'node:net';
import type { ProxyInputs } from './inputs';
import { splice } from './pipe';

export type Refusal = 'no-original-destination' | 'unknown-source-pod' | 'source-address-mismatch';

export class OutboundProxy {
  private readonly inputs: ProxyInputs;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
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
    const sourceInfo = { ...source, workload: workload.name, namespace: workload.namespace, identity: workload.identity };
    const target = this.inputs.workloads.byIp(destination.ip);
    this.log.info(
      { event: 'redirect', source: sourceInfo, destination: { ...destination, workload: target?.name } },
      'outbound connection',
    );

    this.sockets.add(client);
    // A local pod is reached from PROXY_IP so strict pods accept it; anything else
    // leaves from the node's own address.
    const upstream = net.connect({
      host: destination.ip,
      port: destination.port,
      allowHalfOpen: true,
      noDelay: true,
      timeout: this.inputs.connectTimeoutMs,
      ...(target ? { localAddress: this.inputs.proxyIp } : {}),
    });
    this.sockets.add(upstream);
    client.pause();
    const onTimeout = (): void => {
      upstream.destroy(Object.assign(new Error('upstream connect timed out'), { code: 'ETIMEDOUT' }));
    };
    upstream.once('timeout', onTimeout);
    upstream.once('connect', () => {
      upstream.off('timeout', onTimeout);
      upstream.setTimeout(0);
      client.resume();
    });
    splice(client, upstream, (r) => {
      this.sockets.delete(client);
      this.sockets.delete(upstream);
      const fields = {
        event: 'close',
        source: sourceInfo,
        destination,
        bytesSent: r.bytesSent,
        bytesReceived: r.bytesReceived,
        durationMs: Date.now() - started,
      };
      if (r.error) this.log.info({ ...fields, error: (r.error as NodeJS.ErrnoException).code ?? r.error.message }, 'connection failed');
      else this.log.info(fields, 'connection closed');
    });
  }
}

function stripMapped(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
