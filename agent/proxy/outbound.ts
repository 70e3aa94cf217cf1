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
 *
 * Before any of that, the node itself is refused as a destination (node-local.ts), and the source
 * pod must have room under its connection cap (limits/): refusals are reset and reported to the
 * refusal log, which logs and records the first of a kind per interval and summarizes the rest.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { stripMapped } from '../ipv4-mapped';
import type { Workload } from '../workloads';
import type { ProxyInputs } from './inputs';
import type { FlowDirection, FlowEndpoint, FlowRecord, FlowVerdict } from '../../common/flow';
import type { AuthzContext } from './destination-authz';
import { errorCode } from './connect';
import type { LimitReason } from './limits/connection-limits';
import { isNodeLocalDestination } from './node-local';
import { splice, timeoutReason } from './pipe';
import { proxyFlow } from './proxy-flow';
import { route, type Route } from './route';
import type { RoutedService } from '../traffic/router';
import { endpointKey, L4Balancer } from '../traffic/l4-balancer';
import { Ejections } from '../traffic/ejections';
import { refusalOf } from '../traffic/refusal';
import type { ServiceTarget } from '../mesh/mesh-registry';
import type { DestinationPolicy } from '../../common/routes';

const DNS_PORT = 53;

export type Refusal =
  | 'no-original-destination'
  | 'unknown-source-pod'
  | 'source-address-mismatch'
  | 'node-local-destination'
  | 'no-ready-endpoint'
  /** a DestinationRule's tcp.maxConnections to the Service was reached */
  | 'upstream-overflow'
  | LimitReason;

export class OutboundProxy {
  private readonly inputs: ProxyInputs;
  private readonly server: net.Server;
  private readonly sockets = new Set<Duplex>();
  private readonly log: ProxyInputs['log'];
  /** without traffic management (no mesh: no Service either), a balancer of its own */
  private readonly ownBalancer = new L4Balancer(new Ejections());

  constructor(inputs: ProxyInputs) {
    this.inputs = inputs;
    this.log = inputs.log.child({ component: 'outbound' });
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.onConnection(s));
  }

  listen(port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      // reusePort: a successor agent binds the same port while this one drains (agent/handover.ts).
      this.server.listen({ host: this.inputs.proxyIp, port, backlog: 1024, reusePort: true }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Close the listening socket only: established connections go on (the drain). */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  /** Sockets still open (client and upstream sides). */
  get live(): number {
    return this.sockets.size;
  }

  /** End every connection left, with `err` as the reason its flow records. */
  destroyAll(err: Error): void {
    for (const s of this.sockets) s.destroy(err);
  }

  /** Reset the client and report the refusal (logged and recorded once per kind and interval). */
  private refuse(
    socket: net.Socket,
    started: number,
    reason: Refusal,
    where: { direction: FlowDirection; source: FlowEndpoint & { ip: string }; destination: FlowEndpoint & { ip: string } },
    fields?: Record<string, unknown>,
    verdict: 'denied' | 'error' = 'denied',
  ): void {
    socket.resetAndDestroy();
    this.inputs.limits.refusals.refuse({
      route: { ...where, protocol: 'tcp', mtls: false },
      outcome: { verdict, reason },
      started,
      message: 'outbound connection refused',
      ...(fields ? { fields } : {}),
    });
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
    // Before the original destination is known, the destination is the listener itself.
    const listener = { ip: stripMapped(client.localAddress ?? ''), port: client.localPort ?? 0 };
    if (!orig) return this.refuse(client, started, 'no-original-destination', { direction: 'outbound', source, destination: listener });
    const workload = this.inputs.workloads.byNetnsCookie(orig.netnsCookie);
    if (!workload) {
      return this.refuse(client, started, 'unknown-source-pod', { direction: 'outbound', source, destination: orig.dst }, { netnsCookie: orig.netnsCookie.toString() });
    }
    if (workload.ip !== peerIp) {
      return this.refuse(client, started, 'source-address-mismatch', { direction: 'outbound', source, destination: orig.dst }, { expected: workload.ip });
    }
    if (orig.dst.port === DNS_PORT && this.inputs.dns) return this.inputs.dns.serveTcp(client, workload, source, orig.dst);
    const registry = this.inputs.mesh?.registry;
    // a Service's DestinationRule, per connection here (no route: the connection is not HTTP on this path)
    let dr: DestinationPolicy | undefined;
    let target: ServiceTarget | undefined;
    const l4 = this.inputs.traffic?.l4 ?? this.ownBalancer;
    const pick = (t: ServiceTarget): { ip: string; port: number } => {
      target = t;
      dr = this.inputs.traffic?.destination({ ...t.service, port: orig.dst.port }, workload.namespace);
      return l4.choose(`${t.service.namespace}/${t.service.name}:${orig.dst.port}`, t.endpoints, dr?.policy, workload.ip) ?? t.endpoints[0]!;
    };
    const r = route(orig.dst, { node: this.inputs.node, local: this.inputs.workloads, mesh: registry, services: registry, pick });
    // A service's virtual IP is carried to the endpoint chosen for it.
    const destination = r.dst;
    const sourceInfo = { ...source, workload: workload.name, namespace: workload.namespace, identity: workload.identity };
    // A Service with an HTTPRoute: HTTP is served here and every request routed on its own.
    const routed = r.service && this.inputs.traffic ? { ...r.service, port: orig.dst.port } : undefined;
    if (routed && this.inputs.traffic!.routes(routed, workload.namespace)) return this.serveRouted(client, started, workload, sourceInfo, routed, orig.dst);
    if (r.kind === 'no-endpoint') {
      const where = { direction: 'outbound' as const, source: sourceInfo, destination: { ...destination } };
      return this.refuse(client, started, 'no-ready-endpoint', where, { service: `${r.service.namespace}/${r.service.name}` }, 'error');
    }
    const dstInfo = { ...destination, ...describeRoute(r) };
    const direction: FlowDirection = r.kind === 'passthrough' ? 'egress' : 'outbound';
    // The node itself (its agent ports, its loopback) is never a pod's destination.
    if (isNodeLocalDestination(destination, this.inputs.nodeLocal.current())) {
      return this.refuse(client, started, 'node-local-destination', { direction, source: sourceInfo, destination: dstInfo });
    }
    const admitted = this.inputs.limits.connections.admit('outbound', workload.ip);
    if (!admitted.ok) return this.refuse(client, started, admitted.reason, { direction, source: sourceInfo, destination: dstInfo });
    const pool = dr?.policy.connectionPool;
    const servicePlace = pool && r.service ? l4.admit(`${r.service.namespace}/${r.service.name}:${orig.dst.port}`, pool.maxConnections) : undefined;
    if (pool && r.service && servicePlace === undefined) {
      admitted.release();
      return this.refuse(client, started, 'upstream-overflow', { direction, source: sourceInfo, destination: dstInfo }, { service: `${r.service.namespace}/${r.service.name}`, destinationRule: dr!.rule }, 'error');
    }
    // Per connection: debug only. The flow record (access log, collector) is the record of it.
    this.log.debug({ event: 'redirect', route: r.kind, source: sourceInfo, destination: dstInfo }, 'outbound connection');
    // a Service's endpoint: its open connections (LEAST_REQUEST), and whether it could be reached (ejections)
    const key = target !== undefined && r.kind !== 'passthrough' ? endpointKey(destination) : undefined;
    const open = key === undefined ? undefined : l4.opened(key);
    const reached = (ok: boolean): void => {
      if (key === undefined) return;
      if (ok) l4.connected(key);
      else l4.connectFailed(key, dr?.policy.outlierDetection, () => target!.endpoints.map(endpointKey));
    };
    this.sockets.add(client);
    client.once('close', () => {
      this.sockets.delete(client);
      admitted.release();
      servicePlace?.();
      open?.();
    });

    if (r.kind === 'passthrough') {
      this.inputs.egress.handle(client, { source: sourceInfo, workload, destination }).catch((err: Error) => {
        this.log.error({ err }, 'egress failed');
        client.destroy();
      });
      return;
    }
    if (r.kind === 'local') return this.deliverLocal(client, sourceInfo, r.workload, destination, started, reached);

    client.pause();
    this.inputs.mesh!.pool.connect({
      srcIdentity: workload.identity,
      srcIp: workload.ip,
      nodeAddress: r.workload.nodeAddress,
      dstIdentity: r.workload.identity,
      dst: destination,
    }).then(
      (upstream) => {
        reached(true);
        this.sockets.add(upstream);
        client.resume();
        splice(
          client,
          upstream,
          (res) => {
            this.sockets.delete(upstream);
            const reason = res.error ? errorCode(res.error) : res.timeout ? timeoutReason(res.timeout) : 'tunnel-established';
            this.inputs.flows.record(this.flow(sourceInfo, dstInfo, started, res, res.error ? 'error' : 'allowed', reason));
          },
          this.inputs.limits.timeouts,
        );
      },
      (err: Error) => {
        // the destination's refusal says nothing of the endpoint; anything else: it could not be reached
        reached(refusalOf(err) !== undefined);
        const peerStatus = (err as { peerStatus?: number }).peerStatus;
        const denied = peerStatus === 403;
        client.resetAndDestroy();
        const reason = denied ? 'denied-by-destination' : peerStatus ? `tunnel-refused-${peerStatus}` : 'tunnel-failed';
        this.inputs.limits.refusals.refuse({
          route: { direction: 'outbound', source: sourceInfo, destination: dstInfo, protocol: 'tcp', mtls: true },
          outcome: { verdict: denied ? 'denied' : 'error', reason },
          started,
          message: 'outbound connection refused',
          fields: { error: err.message },
        });
      },
    );
  }

  /** A Service with an HTTPRoute: under the pod's connection cap like any connection, then every request routed on its own. */
  private serveRouted(client: net.Socket, started: number, workload: Workload, source: FlowEndpoint & { ip: string }, service: RoutedService, vip: { ip: string; port: number }): void {
    const admitted = this.inputs.limits.connections.admit('outbound', workload.ip);
    if (!admitted.ok) return this.refuse(client, started, admitted.reason, { direction: 'outbound', source, destination: vip });
    this.sockets.add(client);
    client.once('close', () => {
      this.sockets.delete(client);
      admitted.release();
    });
    this.inputs.traffic!.handle(client, workload, source, service);
  }

  /** Same node: the destination's policies are checked here, exactly as the inbound listener would. */
  private deliverLocal(client: net.Socket, source: AuthzContext['source'], target: Workload, dst: { ip: string; port: number }, started: number, reached: (ok: boolean) => void): void {
    const ctx: AuthzContext = { mtls: false, source, destination: { ...dst, workload: target } };
    this.inputs.authz.deliver(ctx, started, {
      conn: client,
      accept: () => {
        reached(true);
        return true;
      },
      refuse: (why) => {
        if (why.reason === 'upstream-failed') reached(false);
        client.resetAndDestroy();
      },
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
  if (r.kind === 'passthrough' || r.kind === 'no-endpoint') return {};
  return { workload: r.workload.name, namespace: r.workload.namespace, identity: r.workload.identity };
}
