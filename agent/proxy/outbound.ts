/**
 * Outbound listener (PROXY_IP:15001): every TCP connection an enrolled pod opens
 * lands here. The source pod and its original destination come from the kernel
 * (palisade_conns, keyed by the pod's address and source port): a connection the
 * kernel has no record of is refused, never guessed at.
 *
 * Then, by route(): a pod on another node → HBONE tunnel as the source workload's
 * identity (the destination node authorizes); a pod on this node → DestinationAuthz, the same
 * authorization the inbound listener applies; anything else → Egress, the source's
 * allowlist (unchanged pass-through for a workload no EgressPolicy selects).
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { stripMapped } from '../ipv4-mapped';
import type { Workload } from '../workloads';
import type { ProxyInputs } from './inputs';
import type { FlowEndpoint, FlowRecord, FlowVerdict } from '../../common/flow';
import type { AuthzContext } from './destination-authz';
import { errorCode } from './connect';
import { splice } from './pipe';
import { nothingSent, proxyFlow } from './proxy-flow';
import { route, type Route } from './route';
import { isNodeLocalDestination, NodeAddresses } from './node-local';

export type Refusal = 'no-original-destination' | 'unknown-source-pod' | 'source-address-mismatch' | 'tunnel-failed' | 'node-local-destination';

export class OutboundProxy {
  private readonly inputs: ProxyInputs;
  private readonly server: net.Server;
  private readonly sockets = new Set<Duplex>();
  private readonly log: ProxyInputs['log'];
  private readonly nodeAddresses = new NodeAddresses();

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
    if (isNodeLocalDestination(destination.ip, this.nodeAddresses)) {
      const src = { ...source, workload: workload.name, namespace: workload.namespace, identity: workload.identity };
      const route = { direction: 'egress' as const, source: src, destination, protocol: 'tcp' as const, mtls: false };
      this.inputs.flows.record(proxyFlow(this.inputs.node, route, { verdict: 'denied', reason: 'node-local-destination' }, nothingSent(started)));
      return this.refuse(client, 'node-local-destination', { source: src, destination });
    }
    const r = route(destination.ip, { node: this.inputs.node, local: this.inputs.workloads, mesh: this.inputs.mesh?.registry });
    const sourceInfo = { ...source, workload: workload.name, namespace: workload.namespace, identity: workload.identity };
    const dstInfo = { ...destination, ...describeRoute(r) };
    // Per connection: debug only. The flow record (access log, collector) is the record of it.
    this.log.debug({ event: 'redirect', route: r.kind, source: sourceInfo, destination: dstInfo }, 'outbound connection');
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));

    if (r.kind === 'passthrough') {
      this.inputs.egress.handle(client, { source: sourceInfo, workload, destination }).catch((err: Error) => {
        this.log.error({ err }, 'egress failed');
        client.destroy();
      });
      return;
    }
    if (r.kind === 'local') return this.deliverLocal(client, sourceInfo, r.workload, destination, started);

    client.pause();
    this.inputs.mesh!.pool.connect({
      srcIdentity: workload.identity,
      srcIp: workload.ip,
      nodeAddress: r.workload.nodeAddress,
      dstIdentity: r.workload.identity,
      dst: destination,
    }).then(
      (upstream) => {
        this.sockets.add(upstream);
        client.resume();
        splice(client, upstream, (res) => {
          this.sockets.delete(upstream);
          this.inputs.flows.record(
            this.flow(sourceInfo, dstInfo, started, res, res.error ? 'error' : 'allowed', res.error ? errorCode(res.error) : 'tunnel-established'),
          );
        });
      },
      (err: Error) => {
        const peerStatus = (err as { peerStatus?: number }).peerStatus;
        const denied = peerStatus === 403;
        this.refuse(client, 'tunnel-failed', { route: r.kind, source: sourceInfo, destination: dstInfo, error: err.message });
        const reason = denied ? 'denied-by-destination' : peerStatus ? `tunnel-refused-${peerStatus}` : 'tunnel-failed';
        this.inputs.flows.record(this.flow(sourceInfo, dstInfo, started, { bytesSent: 0, bytesReceived: 0 }, denied ? 'denied' : 'error', reason));
      },
    );
  }

  /** Same node: the destination's policies are checked here, exactly as the inbound listener would. */
  private deliverLocal(client: net.Socket, source: AuthzContext['source'], target: Workload, dst: { ip: string; port: number }, started: number): void {
    const ctx: AuthzContext = { mtls: false, source, destination: { ...dst, workload: target } };
    this.inputs.authz.deliver(ctx, started, {
      conn: client,
      accept: () => true,
      refuse: () => client.resetAndDestroy(),
      failed: (err) => {
        this.log.error({ err }, 'local delivery failed');
        client.destroy();
      },
    });
  }

  private flow(
    source: FlowEndpoint & { ip: string },
    destination: FlowEndpoint & { ip: string },
    started: number,
    counts: { bytesSent: number; bytesReceived: number },
    verdict: FlowVerdict,
    reason: string,
  ): FlowRecord {
    const route = { direction: 'outbound' as const, source, destination, protocol: 'tcp' as const, mtls: true };
    return proxyFlow(this.inputs.node, route, { verdict, reason }, { bytesSent: counts.bytesSent, bytesReceived: counts.bytesReceived, durationMs: Date.now() - started });
  }
}

function describeRoute(r: Route): Record<string, string> {
  if (r.kind === 'passthrough') return {};
  return { workload: r.workload.name, namespace: r.workload.namespace, identity: r.workload.identity };
}
