/**
 * Traffic management in the source node's proxy (issue #18): a pod's connection to a Service's
 * virtual IP and port that an HTTPRoute is attached to is served as HTTP/1.1 here, and each
 * request is routed on its own: the route's rule that matches it (none: 404), a backend Service
 * by weight, then an endpoint of that backend by power of two choices over peak-EWMA latency,
 * reached the way any connection to it would be (HBONE to its node, or this node's destination
 * authorization), with the rule's timeouts and retries (dispatcher.ts). Routes are looked up on
 * every request, so a change applies to established keep-alive connections too. One flow record
 * per request names the route, rule, backend Service and attempts; with a tracer, the request is
 * this node's hop of its trace (server and client span, the upstream gets the client span as parent).
 */
import { duplexPair, type Duplex } from 'node:stream';
import type { FlowEndpoint, FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { RegistryService } from '../../common/mesh-protocol';
import type { PolicyIndex } from '../../common/policy';
import type { BackendRef, RouteRule, ServiceRoutes } from '../../common/routes';
import type { MeshWorkload } from '../mesh/mesh-registry';
import type { MeshTracer } from '../tracing/tracer';
import type { DestinationAuthz } from '../proxy/destination-authz';
import type { HbonePool } from '../proxy/hbone-pool';
import { HttpFront, type HttpDecision, type HttpLimits, type HttpRecord, type HttpSession, type NormalizedRequest, type UpstreamTarget } from '../proxy/http';
import { httpCounts, httpLine, httpOutcome, proxyFlow, traced } from '../proxy/proxy-flow';
import type { Workload } from '../workloads';
import { keyOf, RequestDispatch, type Endpoint } from './dispatcher';
import { Ejections } from './ejections';
import { PeakEwma } from './peak-ewma';
import { RetryBudget } from './retry-budget';
import { pickWeighted } from './weighted';

export interface TrafficInputs {
  node: string;
  log: Logger;
  flows: FlowSink;
  /** the policies (and routes) in force now */
  policies: { readonly index: PolicyIndex };
  local: { byIp(ip: string): Workload | undefined };
  registry: { byIp(ip: string): MeshWorkload | undefined; service(namespace: string, name: string): RegistryService | undefined };
  pool: Pick<HbonePool, 'connect'>;
  authz: DestinationAuthz;
  httpLimits?: Partial<HttpLimits>;
  /** with --trace-otlp: each routed request's spans */
  tracer?: MeshTracer;
}

/** The Service a connection was addressed to. */
export interface RoutedService {
  namespace: string;
  name: string;
  /** the service port the pod connected to */
  port: number;
}

type Source = FlowEndpoint & { ip: string };

interface RoutedDecision extends HttpDecision {
  reason: string;
  route?: string;
  rule?: number;
  backend?: string;
}

export class TrafficRouter {
  private readonly front: HttpFront;
  private readonly log: Logger;
  private readonly balancer = new PeakEwma();
  private readonly budgets = new Map<string, RetryBudget>();
  private readonly ejections = new Ejections();

  constructor(private readonly inputs: TrafficInputs) {
    this.log = inputs.log.child({ component: 'traffic' });
    this.front = new HttpFront({ ...(inputs.httpLimits ? { limits: inputs.httpLimits } : {}), stripHeaders: ['x-palisade-*'], log: this.log });
  }

  /** The routes a client of `clientNamespace` has for the service port, or undefined (plain TCP). */
  routes(service: RoutedService, clientNamespace: string): ServiceRoutes | undefined {
    return this.inputs.policies.index.routes.lookup(service.namespace, service.name, service.port, clientNamespace);
  }

  /** Serve the pod's connection to `service` as HTTP/1.1, each request routed on its own. */
  handle(conn: Duplex, workload: Workload, source: Source, service: RoutedService): void {
    const session: HttpSession = {
      authorize: (req) => this.decide(req, workload, source, service),
      connect: () => Promise.reject(new Error('a routed request always has a dispatch')),
      onRecord: (r) => this.record(r, source, service),
      ...(this.inputs.tracer !== undefined && { tracer: this.inputs.tracer }),
    };
    this.front.handle(conn, undefined, session);
  }

  closeAll(): void {
    this.front.closeAll();
  }

  private decide(req: NormalizedRequest, workload: Workload, source: Source, service: RoutedService): RoutedDecision {
    const routes = this.routes(service, workload.namespace);
    if (routes === undefined) {
      // the route went away since the connection came: the Service itself, balanced per request
      return this.dispatchTo(req, { namespace: service.namespace, name: service.name, port: service.port, weight: 1 }, undefined, workload, source, { reason: 'no-route' });
    }
    const choice = routes.select(req);
    if (choice === undefined) return { allowed: false, status: 404, reason: 'no-route-match', route: routes.routes.join(',') };
    const matched = { route: choice.route.id, rule: choice.rule.index };
    let delayMs = 0;
    if (choice.rule.fault !== undefined) {
      const fault = this.inputs.policies.index.routes.fault(choice.rule.fault);
      // Gateway API: a rule whose filter cannot be resolved answers 500
      if (fault === undefined) return { allowed: false, status: 500, reason: 'fault-not-found', ...matched, backend: '' };
      if (fault.abort !== undefined && Math.random() * 100 < fault.abort.percent) return { allowed: false, status: fault.abort.status, reason: 'fault-abort', ...matched, backend: '' };
      if (fault.delay !== undefined && Math.random() * 100 < fault.delay.percent) delayMs = fault.delay.ms;
    }
    const backend = pickWeighted(choice.rule.backends, Math.random);
    return this.dispatchTo(req, backend, choice.rule, workload, source, { reason: delayMs > 0 ? 'fault-delay' : 'routed', ...matched }, delayMs);
  }

  private dispatchTo(req: NormalizedRequest, backend: BackendRef, rule: RouteRule | undefined, workload: Workload, source: Source, info: { reason: string; route?: string; rule?: number }, delayMs = 0): RoutedDecision {
    const svc = this.inputs.registry.service(backend.namespace, backend.name);
    const dispatch = new RequestDispatch({
      rule: rule ?? NO_RULE,
      method: req.method,
      endpoints: svc ? readyEndpoints(svc, backend.port) : [],
      balancer: this.balancer,
      budget: this.budget(`${backend.namespace}/${backend.name}`),
      ejections: this.ejections,
      delayMs,
      target: (e) => this.target(e, workload, source),
    });
    return { allowed: true, reason: info.reason, route: info.route, rule: info.rule, backend: `${backend.namespace}/${backend.name}`, dispatch };
  }

  private budget(key: string): RetryBudget {
    let b = this.budgets.get(key);
    if (b === undefined) {
      b = new RetryBudget();
      this.budgets.set(key, b);
    }
    return b;
  }

  /** How one attempt reaches endpoint `e`: its node over HBONE, or this node's destination authorization. */
  private target(e: Endpoint, workload: Workload, source: Source): UpstreamTarget {
    const pool = `traffic:${workload.ip}>${keyOf(e)}`;
    const local = this.inputs.local.byIp(e.ip);
    if (local) return { pool, connect: () => this.connectLocal(e, local, source) };
    const remote = this.inputs.registry.byIp(e.ip);
    if (remote && remote.node !== this.inputs.node) {
      return {
        pool,
        connect: () => this.inputs.pool.connect({ srcIdentity: workload.identity, srcIp: workload.ip, nodeAddress: remote.nodeAddress, dstIdentity: remote.identity, dst: { ip: e.ip, port: e.port } }),
      };
    }
    return { pool, connect: () => Promise.reject(Object.assign(new Error(`endpoint ${keyOf(e)} is not a workload of the mesh`), { code: 'endpoint-not-in-mesh' })) };
  }

  /** A same-node endpoint: one end of a stream pair goes through destination authorization, as a pod's own connection would. */
  private connectLocal(e: Endpoint, target: Workload, source: Source): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const [ours, theirs] = duplexPair();
      this.inputs.authz.deliver({ mtls: false, source, destination: { ip: e.ip, port: e.port, workload: target } }, Date.now(), {
        conn: theirs,
        accept: () => {
          resolve(ours);
          return true;
        },
        refuse: (why) => {
          ours.destroy();
          reject(Object.assign(new Error(why.reason), { code: why.reason }));
        },
        failed: (err) => {
          ours.destroy(err);
          reject(err);
        },
      });
    });
  }

  private record(r: HttpRecord, source: Source, service: RoutedService): void {
    const d = r.decision as RoutedDecision | undefined;
    const dispatch = d?.dispatch instanceof RequestDispatch ? d.dispatch : undefined;
    const e = dispatch?.endpoint;
    const w = e ? (this.inputs.local.byIp(e.ip) ?? this.inputs.registry.byIp(e.ip)) : undefined;
    const destination: FlowEndpoint & { ip: string } = e
      ? { ip: e.ip, port: e.port, ...(w ? { workload: w.name, namespace: w.namespace, identity: w.identity } : {}) }
      : { ip: '0.0.0.0', port: service.port };
    destination.host = r.host || `${service.name}.${service.namespace}`;
    const traffic = d?.route !== undefined && d.rule !== undefined ? { route: d.route, rule: d.rule, backend: d.backend ?? '', attempts: dispatch?.attempts ?? 0 } : undefined;
    const flow = proxyFlow(this.inputs.node, { direction: 'outbound', source, destination, protocol: 'http', mtls: true, http: httpLine(r) }, httpOutcome(r), httpCounts(r), undefined, traffic);
    this.inputs.flows.record(traced(this.inputs.tracer, flow, r));
    if (dispatch && dispatch.retried.length > 0) this.log.debug({ event: 'retried', route: d?.route, backend: d?.backend, retried: dispatch.retried }, 'request retried');
  }
}

/** A Service served without a route: no timeouts, no explicit retries. */
const NO_RULE: RouteRule = { index: 0, name: undefined, matches: [], backends: [], requestTimeoutMs: 0, backendTimeoutMs: 0, retry: undefined, fault: undefined };

/** The ready endpoints of `svc` at the target port of its port `port`. */
export function readyEndpoints(svc: RegistryService, port: number): Endpoint[] {
  const i = svc.ports.findIndex((p) => p.port === port);
  if (i < 0) return [];
  return svc.endpoints.filter((e) => e.ready && e.targetPorts.length === svc.ports.length).map((e) => ({ ip: e.ip, port: e.targetPorts[i]! }));
}
