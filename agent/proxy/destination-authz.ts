/**
 * Destination-side authorization, the last step before a local pod: the destination's policies
 * decide at L4 when the connection arrives, and on every HTTP request when a policy needs HTTP
 * attributes (HTTP/1.1, or HTTP/2 per stream); then the connection to the pod from PROXY_IP (so strict pods accept it). Used by
 * the HBONE inbound listener and by the same-node path of the outbound listener: the same checks
 * either way.
 *
 * Nothing reaches the pod before it is allowed: the upstream connection is opened only after
 * the L4 verdict (TCP) or the first allowed request (HTTP).
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { FlowEndpoint, FlowProtocol, FlowRecord } from '../../common/flow';
import type { Logger } from '../../common/log';
import { authorize, type AuthzRequest, type AuthzVerdict } from '../../common/policy';
import type { Workload } from '../workloads';
import { H2Front, prefaceMatch, readPreface } from './h2';
import { HttpFront, type HttpDecision, type HttpRecord, type HttpSession, type NormalizedRequest } from './http';
import { admission } from './admission';
import { connectTcp, errorCode } from './connect';
import { splice, timeoutReason } from './pipe';
import { endOutcome, httpCounts, httpLine, httpOutcome, outcomeOf, proxyFlow, traced, type FlowCounts, type FlowOutcome } from './proxy-flow';
import { sniff } from './sniff';
import { closeWhenDenied, denial, type EnforcementInputs } from './tracker';

export interface DestinationAuthzInputs extends EnforcementInputs {
  /** pods are reached from this address, so strict pods accept the connection */
  proxyIp: string;
}

export interface AuthzContext {
  /** true when the connection came through the mTLS tunnel from another node */
  mtls: boolean;
  source: FlowEndpoint & { ip: string };
  destination: { ip: string; port: number; workload: Workload };
}

/**
 * How a listener answers the client of a connection it hands over: the outbound listener resets
 * a TCP socket, the inbound listener answers an HTTP/2 CONNECT stream with a status.
 */
export interface ClientSide {
  /** the client's bytes: spliced to the pod, or read by the HTTP front */
  readonly conn: Duplex;
  /** The connection goes ahead; false when the client has gone meanwhile (then nothing more is done). */
  accept(): boolean;
  /** Refused before anything reached the pod (its flow is already recorded). */
  refuse(why: { reason: 'denied-by-policy'; verdict: AuthzVerdict } | { reason: 'upstream-failed'; error: Error }): void;
  /** Serving it failed unexpectedly: say so and close it. */
  failed(err: Error): void;
}

/** Headers the mesh sets towards the pod; a client's own copies are removed first. */
const MESH_HEADERS = ['x-palisade-*'];

const CLOSED_BY_POLICY = 'established connection closed: policy now denies it';

export class DestinationAuthz {
  private readonly log: Logger;

  /** One HTTP front for every connection this node delivers; each brings its own session. */
  private readonly front: HttpFront;
  /** and one HTTP/2 front (h2c with prior knowledge: gRPC) */
  private readonly h2: H2Front;

  constructor(private readonly inputs: DestinationAuthzInputs) {
    this.log = inputs.log.child({ component: 'authz' });
    this.front = new HttpFront({ ...(inputs.httpLimits ? { limits: inputs.httpLimits } : {}), stripHeaders: MESH_HEADERS, log: this.log });
    this.h2 = new H2Front({ stripHeaders: MESH_HEADERS, log: this.log, ...(inputs.httpLimits?.idleTimeoutMs !== undefined && { idleTimeoutMs: inputs.httpLimits.idleTimeoutMs }) });
  }

  /**
   * Take over a new connection to a local pod: admission decides (deny, TCP, or per HTTP
   * request), the client is answered through `client`. The client's bytes wait while the pod is
   * being connected.
   */
  deliver(ctx: AuthzContext, started: number, client: ClientSide): void {
    const a = admission(this.request(ctx), this.inputs.policies.index);
    if (a.kind === 'deny') {
      this.refused(ctx, a.verdict, started);
      client.refuse({ reason: 'denied-by-policy', verdict: a.verdict });
      return;
    }
    // HTTP is parsed when a policy needs it, and whenever requests are traced
    if (a.kind === 'http' || this.inputs.tracer !== undefined) {
      if (!client.accept()) return;
      this.serve(client.conn, ctx, started).catch((err: Error) => client.failed(err));
      return;
    }
    client.conn.pause();
    this.connectUpstream(ctx).then(
      (upstream) => {
        if (!client.accept()) {
          upstream.destroy();
          return;
        }
        client.conn.resume();
        this.spliceTcp(client.conn, upstream, ctx, a.verdict, started);
      },
      (err: Error) => {
        this.upstreamFailed(ctx, err, started);
        client.refuse({ reason: 'upstream-failed', error: err });
      },
    );
  }

  /** Report a connection refused at admission (the caller closes it its own way). */
  private refused(ctx: AuthzContext, verdict: AuthzVerdict, started: number): void {
    this.refusal(ctx, outcomeOf(verdict), started, 'connection denied by policy');
  }

  /** One refused connection to the refusal log: logged and recorded once per kind and interval. */
  private refusal(ctx: AuthzContext, outcome: FlowOutcome, started: number, message: string, fields?: Record<string, unknown>): void {
    this.inputs.limits.refusals.refuse({
      route: { direction: 'inbound', source: ctx.source, destination: destinationEndpoint(ctx), protocol: 'tcp', mtls: ctx.mtls },
      outcome,
      started,
      message,
      ...(fields ? { fields } : {}),
    });
  }

  /** Open the connection to the pod, from PROXY_IP. */
  private connectUpstream(ctx: AuthzContext): Promise<net.Socket> {
    return connectTcp({ host: ctx.destination.ip, port: ctx.destination.port, localAddress: this.inputs.proxyIp, timeoutMs: this.inputs.connectTimeoutMs });
  }

  /** Splice an admitted TCP connection to its pod; tracked so a policy change can close it. */
  private spliceTcp(conn: Duplex, upstream: Duplex, ctx: AuthzContext, verdict: AuthzVerdict, started: number, head?: Buffer): void {
    const untrack = closeWhenDenied(this.inputs.tracker, this.log, {
      recheck: (index) => denial(authorize(this.request(ctx), index, 'tcp')),
      source: ctx.source,
      destination: destinationEndpoint(ctx),
      message: CLOSED_BY_POLICY,
      streams: [conn, upstream],
    });
    if (head?.length) upstream.write(head);
    splice(
      conn,
      upstream,
      (r) => {
        untrack();
        const bytesSent = r.bytesSent + (head?.length ?? 0);
        const outcome = endOutcome(verdict, r.error);
        if (!r.error && r.timeout) outcome.reason = timeoutReason(r.timeout);
        this.inputs.flows.record(this.flow(ctx, 'tcp', outcome, { bytesSent, bytesReceived: r.bytesReceived, durationMs: Date.now() - started }));
      },
      this.inputs.limits.timeouts,
    );
  }

  /**
   * Serve a connection whose destination has HTTP-level policies (or when tracing): HTTP is authorized per
   * request; anything else is judged by Istio's TCP rules (HTTP-only ALLOW rules never match).
   */
  private async serve(conn: Duplex, ctx: AuthzContext, started: number): Promise<void> {
    const sniffed = await sniff(conn, this.inputs.sniffTimeoutMs, this.inputs.limits.sniff.hold(ctx.source.ip));
    if (sniffed.kind === 'closed') {
      conn.destroy();
      return;
    }
    if (sniffed.kind === 'over-budget') {
      conn.destroy();
      this.refusal(ctx, { verdict: 'denied', reason: sniffed.reason }, started, 'connection refused: the sniff budget is spent');
      return;
    }
    if (sniffed.kind === 'http') {
      if (prefaceMatch(sniffed.head) === 'no') return this.serveHttp(conn, ctx, sniffed.head);
      // `PRI ` starts HTTP/2's client preface (h2c with prior knowledge: gRPC): read it whole
      const p = await readPreface(conn, this.inputs.sniffTimeoutMs, sniffed.head);
      if (p.kind === 'closed') return void conn.destroy();
      return p.kind === 'h2' ? this.serveH2(conn, ctx, p.head) : this.serveHttp(conn, ctx, p.head);
    }
    const verdict = authorize(this.request(ctx), this.inputs.policies.index, 'tcp');
    if (!verdict.allowed) {
      this.refused(ctx, verdict, started);
      conn.destroy();
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await this.connectUpstream(ctx);
    } catch (err) {
      this.upstreamFailed(ctx, err as Error, started);
      conn.destroy();
      return;
    }
    this.spliceTcp(conn, upstream, ctx, verdict, started, sniffed.head);
  }

  private serveHttp(conn: Duplex, ctx: AuthzContext, head: Buffer): void {
    const session: HttpSession = {
      ...this.httpSession(ctx),
      connect: () => this.connectUpstream(ctx),
      // Every client's requests to this pod go over the same kind of connection (from PROXY_IP):
      // kept-alive ones are shared, each request authorized on its own.
      pool: `${ctx.destination.ip}:${ctx.destination.port}`,
      ...(this.inputs.tracer !== undefined && { tracer: this.inputs.tracer }),
    };
    this.trackHttp(conn, ctx);
    this.front.handle(conn, head, session);
  }

  /** HTTP/2 (h2c, gRPC): each stream authorized as a request, then a stream on an HTTP/2 session to the pod (one per pod, from PROXY_IP). */
  private serveH2(conn: Duplex, ctx: AuthzContext, head: Buffer): void {
    const target = { pool: `h2:${ctx.destination.ip}:${ctx.destination.port}`, connect: () => this.connectUpstream(ctx) };
    this.trackHttp(conn, ctx);
    this.h2.handle(conn, head, { ...this.httpSession(ctx), target, ...(this.inputs.tracer !== undefined && { tracer: this.inputs.tracer }) });
  }

  /** What both HTTP fronts ask of a connection to this pod: each request authorized, XFCC set, one flow per request. */
  private httpSession(ctx: AuthzContext): Pick<HttpSession, 'authorize' | 'setHeaders' | 'onRecord'> {
    const base = this.request(ctx);
    const setHeaders: Record<string, string> = {};
    // Istio's header for the workload behind the proxy: who called, as the mesh verified it.
    if (ctx.source.identity) setHeaders['x-forwarded-client-cert'] = `By=${ctx.destination.workload.identity};URI=${ctx.source.identity}`;
    return {
      authorize: (req: NormalizedRequest): HttpDecision => {
        // No log line here: the front logs the denial and the flow record carries policy and rule.
        const verdict = authorize({ ...base, http: { method: req.method, path: req.path, host: req.host, headers: req.headers } }, this.inputs.policies.index, 'request');
        return { ...verdict };
      },
      setHeaders,
      onRecord: (r) => this.inputs.flows.record(traced(this.inputs.tracer, this.flow(ctx, 'http', httpOutcome(r), httpCounts(r), r), r)),
    };
  }

  /** An HTTP connection re-decides itself when the policies change (stage `connection`). */
  private trackHttp(conn: Duplex, ctx: AuthzContext): void {
    const untrack = closeWhenDenied(this.inputs.tracker, this.log, {
      recheck: (index) => denial(authorize(this.request(ctx), index, 'connection')),
      source: ctx.source,
      destination: destinationEndpoint(ctx),
      message: CLOSED_BY_POLICY,
      streams: [conn], // closing it closes its upstream connection too
    });
    conn.once('close', untrack);
  }

  private upstreamFailed(ctx: AuthzContext, err: Error, started: number): void {
    this.refusal(ctx, { verdict: 'error', reason: 'upstream-failed' }, started, 'pod connection failed', { error: errorCode(err) });
  }

  private request(ctx: AuthzContext): AuthzRequest {
    const w = ctx.destination.workload;
    return {
      source: {
        ip: ctx.source.ip,
        ...(ctx.source.identity ? { principal: ctx.source.identity } : {}),
        ...(ctx.source.namespace ? { namespace: ctx.source.namespace } : {}),
      },
      destination: { ip: ctx.destination.ip, port: ctx.destination.port, workload: { namespace: w.namespace, labels: w.labels } },
    };
  }

  /** A flow to the pod; `r` when it is one HTTP exchange (the Host it asked for goes in the destination). */
  private flow(ctx: AuthzContext, protocol: FlowProtocol, outcome: FlowOutcome, counts: FlowCounts, r?: HttpRecord): FlowRecord {
    const route = { direction: 'inbound' as const, source: ctx.source, destination: destinationEndpoint(ctx, r?.host), protocol, mtls: ctx.mtls, http: r ? httpLine(r) : undefined };
    return proxyFlow(this.inputs.node, route, outcome, counts);
  }
}

function destinationEndpoint(ctx: AuthzContext, host?: string): FlowEndpoint {
  const w = ctx.destination.workload;
  const e: FlowEndpoint = { ip: ctx.destination.ip, port: ctx.destination.port, workload: w.name, namespace: w.namespace, identity: w.identity };
  if (host) e.host = host;
  return e;
}
