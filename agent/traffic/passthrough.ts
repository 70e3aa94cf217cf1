/**
 * A connection to a routed Service whose first bytes are not HTTP — a TLS ClientHello (the pod
 * speaks TLS to the Service itself), or any other protocol — cannot be routed per request: it is
 * passed through at L4 to one endpoint chosen per connection. The route decides which: its rule
 * every request matches (PathPrefix `/` and nothing else; none: the connection is refused, as an
 * unmatched request is), a backend Service of that rule by weight (per connection), then one of
 * that backend's ready endpoints by its DestinationRule's loadBalancer, per connection
 * (l4-balancer.ts: round robin by default), passing over those ejected. An endpoint that
 * cannot be reached is ejected (under outlierDetection, counted as a gateway error) and the next one tried (nothing reached a pod yet, at most
 * MAX_ATTEMPTS); a refusal by the destination (its policy, its limits) is final. The destination
 * enforces its policies as on any connection (HBONE to its node, or this node's destination
 * authorization). One flow record per connection: protocol `tls` or `tcp`, reason `routed-l4`,
 * with the route, rule, backend and attempts (faults, timeouts and retries are HTTP's: not applied).
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { FlowEndpoint, FlowProtocol, FlowRecord, FlowSink } from '../../common/flow';
import type { BackendRef, DestinationPolicy, ServiceRoutes, TrafficPolicy } from '../../common/routes';
import { errorCode } from '../proxy/connect';
import { looksLikeHttp, parseClientHello } from '../proxy/sniff';
import { prefaceMatch, type HeadClassifier } from '../proxy/h2';
import { splice, timeoutReason, type SpliceTimeouts } from '../proxy/pipe';
import { endOutcome, proxyFlow, type FlowOutcome } from '../proxy/proxy-flow';
import { keyOf, type Endpoint } from './dispatcher';
import type { L4Balancer } from './l4-balancer';
import { refusalOf } from './refusal';
import { pickWeighted } from './weighted';

/** endpoints tried at most for one connection before it is refused */
export const MAX_ATTEMPTS = 3;

/**
 * A routed connection's first bytes: HTTP/2's client preface, an HTTP/1.x request line (any
 * method token: the HTTP front judges it), or anything else, passed through at L4.
 */
export const routedHeadKind: HeadClassifier = (head) => {
  const http = looksLikeHttp(head, true);
  if (http === 'no') return 'other';
  const h2 = prefaceMatch(head);
  if (h2 === 'yes') return 'h2';
  return h2 === 'no' && http === 'yes' ? 'http' : 'more';
};

export interface PassthroughInputs {
  node: string;
  flows: FlowSink;
  /** the node's L4 balancing (its ejections are the HTTP path's) */
  l4: L4Balancer;
  /** the DestinationRule a client of `clientNamespace` has for a backend Service port */
  destination(backend: BackendRef, clientNamespace: string | undefined): DestinationPolicy | undefined;
  timeouts?: SpliceTimeouts;
  /** the ready endpoints of a backend Service at its port */
  endpoints(backend: BackendRef): readonly Endpoint[];
  /** `e` in a flow record (its workload, when the mesh knows it), and whether it is reached over mTLS */
  describe(e: Endpoint): { endpoint: FlowEndpoint & { ip: string }; mtls: boolean };
  random?: () => number;
}

export interface PassthroughConnection {
  conn: Duplex;
  /** the bytes read to decide (sent first) */
  head: Buffer;
  source: FlowEndpoint & { ip: string };
  /** the Service and port the pod connected to */
  service: BackendRef;
  /** the routes it has (undefined: the route went away since the connection came; the Service itself) */
  routes: ServiceRoutes | undefined;
  /** a connection to `e` for this client: HBONE to its node, or this node's destination authorization (rejects when the destination refused: refusal.ts) */
  connect(e: Endpoint): Promise<Duplex>;
  started: number;
}

type Traffic = NonNullable<FlowRecord['traffic']>;

export class Passthrough {
  constructor(private readonly inputs: PassthroughInputs) {}

  handle(c: PassthroughConnection): void {
    const protocol: FlowProtocol = isTls(c.head) ? 'tls' : 'tcp';
    const sni = protocol === 'tls' ? sniOf(c.head) : undefined;
    let backend = c.service;
    let traffic: Traffic | undefined;
    if (c.routes !== undefined) {
      const choice = c.routes.catchAll;
      if (choice === undefined) {
        reset(c.conn);
        return this.record(c, protocol, nowhere(c.service.port, sni), false, { verdict: 'error', reason: 'no-route-match' }, NOTHING, { route: c.routes.routes.join(','), rule: 0, backend: '', attempts: 0 });
      }
      backend = pickWeighted(choice.rule.backends, this.inputs.random ?? Math.random);
      traffic = { route: choice.route.id, rule: choice.rule.index, backend: `${backend.namespace}/${backend.name}`, attempts: 0 };
    }
    c.conn.pause();
    const dr = this.inputs.destination(backend, c.source.namespace);
    void this.attempt({ c, backend, all: this.inputs.endpoints(backend), tried: new Set(), attempts: 0, traffic, protocol, sni, policy: dr?.policy });
  }

  private async attempt(a: Attempt): Promise<void> {
    const { c, protocol, sni } = a;
    const l4 = this.inputs.l4;
    const e = l4.choose(`${a.backend.namespace}/${a.backend.name}:${a.backend.port}`, a.all, a.policy, c.source.ip, a.tried);
    if (e === undefined) {
      reset(c.conn);
      return this.record(c, protocol, nowhere(c.service.port, sni), false, { verdict: 'error', reason: 'no-ready-endpoint' }, NOTHING, a.traffic);
    }
    const key = keyOf(e);
    a.tried.add(key);
    a.attempts++;
    if (a.traffic !== undefined) a.traffic.attempts = a.attempts;
    const { endpoint, mtls } = this.inputs.describe(e);
    if (sni !== undefined) endpoint.host = sni;
    let upstream: Duplex;
    try {
      upstream = await c.connect(e);
    } catch (err) {
      const refusal = refusalOf(err);
      if (refusal !== undefined) {
        // the destination's answer to this client: final, says nothing of the endpoint
        reset(c.conn);
        return this.record(c, protocol, endpoint, mtls, { verdict: refusal.verdict, reason: refusal.reason }, NOTHING, a.traffic);
      }
      l4.connectFailed(key, a.policy?.outlierDetection, () => a.all.map(keyOf));
      if (a.attempts < MAX_ATTEMPTS && !c.conn.destroyed) return this.attempt(a);
      reset(c.conn);
      return this.record(c, protocol, endpoint, mtls, { verdict: 'error', reason: `upstream: ${errorCode(err as Error)}` }, NOTHING, a.traffic);
    }
    l4.connected(key);
    if (c.conn.destroyed) {
      upstream.destroy();
      return this.record(c, protocol, endpoint, mtls, { verdict: 'error', reason: 'client-closed' }, NOTHING, a.traffic);
    }
    upstream.write(c.head);
    c.conn.resume();
    const open = l4.opened(key);
    splice(
      c.conn,
      upstream,
      (r) => {
        open();
        const outcome = endOutcome({ allowed: true, reason: 'routed-l4' }, r.error);
        if (!r.error && r.timeout) outcome.reason = timeoutReason(r.timeout);
        this.record(c, protocol, endpoint, mtls, outcome, { bytesSent: r.bytesSent + c.head.length, bytesReceived: r.bytesReceived }, a.traffic);
      },
      this.inputs.timeouts,
    );
  }

  private record(c: PassthroughConnection, protocol: FlowProtocol, destination: FlowEndpoint & { ip: string }, mtls: boolean, outcome: FlowOutcome, bytes: typeof NOTHING, traffic: Traffic | undefined): void {
    const route = { direction: 'outbound' as const, source: c.source, destination, protocol, mtls };
    this.inputs.flows.record(proxyFlow(this.inputs.node, route, outcome, { ...bytes, durationMs: Date.now() - c.started }, undefined, traffic && { ...traffic }));
  }
}

/** One connection's way to an endpoint: the backend chosen, the endpoints tried. */
interface Attempt {
  readonly c: PassthroughConnection;
  readonly backend: BackendRef;
  readonly all: readonly Endpoint[];
  readonly tried: Set<string>;
  attempts: number;
  readonly traffic: Traffic | undefined;
  readonly protocol: FlowProtocol;
  readonly sni: string | undefined;
  /** the backend's DestinationRule for this client: its loadBalancer and outlierDetection apply per connection */
  readonly policy: TrafficPolicy | undefined;
}

const NOTHING = { bytesSent: 0, bytesReceived: 0 };

/** The destination of a connection that reached no endpoint: the service port (and the name it asked for). */
const nowhere = (port: number, sni: string | undefined): FlowEndpoint & { ip: string } => ({ ip: '0.0.0.0', port, ...(sni !== undefined && { host: sni }) });

/** Reset the client (a TCP socket; a stream pair in tests is destroyed). */
function reset(conn: Duplex): void {
  (conn as net.Socket).resetAndDestroy?.() ?? conn.destroy();
}

/** A TLS handshake record (content type 22, version 3.x). */
const isTls = (head: Buffer): boolean => head.length >= 2 && head[0] === 0x16 && head[1] === 0x03;

/** The ClientHello's server name when the whole hello is in `head`. */
function sniOf(head: Buffer): string | undefined {
  const h = parseClientHello(head);
  return 'complete' in h && h.complete ? h.sni : undefined;
}
