/**
 * Traffic management in the source node's proxy (issue #18): a pod's connection to a Service's
 * virtual IP and port that an HTTPRoute or GRPCRoute is attached to is served here — HTTP/1.1 by
 * the HTTP engine, HTTP/2 with prior knowledge (gRPC) by the HTTP/2 front, told apart by the
 * client preface; anything else (a TLS ClientHello…) is passed through at L4 (passthrough.ts) — and each request (each HTTP/2 stream) is routed on its own: the route's rule that matches it (none: 404), a backend Service
 * by weight, then an endpoint of that backend by power of two choices over peak-EWMA latency,
 * reached the way any connection to it would be (HBONE to its node, or this node's destination
 * authorization), with the rule's timeouts and retries (dispatcher.ts) and filters (a redirect
 * answered here; header and URL edits and mirrored copies handed to the engine with the decision:
 * common/routes/filters.ts, mirror.ts). Routes are looked up on
 * every request, so a change applies to established keep-alive connections too. One flow record
 * per request names the route, rule, backend Service and attempts; with a tracer, the request is
 * this node's hop of its trace (server and client span, the upstream gets the client span as parent).
 */
import { duplexPair, type Duplex } from 'node:stream';
import type { FlowEndpoint, FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { RegistryService } from '../../common/mesh-protocol';
import type { PolicyIndex } from '../../common/policy';
import type { BackendRef, DestinationPolicy, RouteRule, ServiceRoutes, SessionPersistence } from '../../common/routes';
import { readSession, sessionEndpoint, sessionHeader, sessionPick, sessionTags, type SessionState, type SessionTags } from './session';
import { requestEdit, ruleRedirect, type RequestEdit } from '../../common/routes/filters';
import type { MeshWorkload } from '../mesh/mesh-registry';
import type { MeshTracer } from '../tracing/tracer';
import type { DestinationAuthz } from '../proxy/destination-authz';
import type { HbonePool } from '../proxy/hbone-pool';
import { H2Front, readPreface } from '../proxy/h2';
import type { ConnectionLimits } from '../proxy/limits';
import type { SpliceTimeouts } from '../proxy/pipe';
import { DEFAULT_HTTP_LIMITS, HttpFront, type HttpDecision, type HttpLimits, type HttpRecord, type HttpSession, type NormalizedRequest, type UpstreamReuse, type UpstreamTarget } from '../proxy/http';
import type { MirrorSource, MirrorTap } from '../proxy/http/types';
import { httpCounts, httpLine, httpOutcome, proxyFlow, traced } from '../proxy/proxy-flow';
import type { Workload } from '../workloads';
import { keyOf, RequestDispatch, type Endpoint } from './dispatcher';
import { refusalOf } from './refusal';
import { DestinationPolicies, type RequestPolicy } from './destination-policy';
import { Ejections } from './ejections';
import { L4Balancer } from './l4-balancer';
import { allOf, mirrorFlow, Mirrors, type MirrorOutcome, type MirrorTarget } from './mirror';
import { PeakEwma } from './peak-ewma';
import { RetryBudget } from './retry-budget';
import { Passthrough, routedHeadKind } from './passthrough';
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
  /** idle timeouts of a connection passed through at L4 (not HTTP) */
  timeouts?: SpliceTimeouts;
  /** an idle routed upstream connection holds a place of its client pod's outbound share (in use, its downstream's place covers it) */
  connections?: Pick<ConnectionLimits, 'admitIdle'>;
}

/** Routing state dropped to stay bounded (counted, exported as palisade_traffic_state_dropped_total). */
export interface TrafficStats {
  /** ejected endpoints readmitted before their time: the ejection table was full */
  ejectionsOverflowed: number;
  /** endpoints' latency estimates forgotten before their time: the balancer was full */
  estimatesEvicted: number;
  /** upstream connections closed instead of kept idle: their client pod held half its connection share */
  idleUpstreamsRefused: number;
  /** mirrored copies by how they ended (RequestMirror; exported as palisade_traffic_mirrors_total) */
  mirrors: Readonly<Record<MirrorOutcome, number>>;
  /** requests refused by a DestinationRule's connectionPool (503, flag UO) */
  upstreamOverflows?: number;
  /** endpoints ejected for their answers (a DestinationRule's outlierDetection) */
  ejectedForAnswers?: number;
}

/** The Service a connection was addressed to. */
export interface RoutedService {
  namespace: string;
  name: string;
  /** the service port the pod connected to */
  port: number;
}

type Source = FlowEndpoint & { ip: string };
type Proto = 'h1' | 'h2';

interface RoutedDecision extends HttpDecision {
  reason: string;
  route?: string;
  rule?: number;
  backend?: string;
}

export class TrafficRouter {
  private readonly front: HttpFront;
  private readonly h2: H2Front;
  private readonly prefaceTimeoutMs: number;
  /** connections that are not HTTP (TLS, another protocol) */
  private readonly passthrough: Passthrough;
  private readonly log: Logger;
  private readonly balancer = new PeakEwma();
  /** per backend Service (`namespace/name`) in the registry; those no longer in it are dropped when a new one comes */
  private readonly budgets = new Map<string, RetryBudget>();
  private readonly ejections = new Ejections();
  /** connections balanced at L4 (no route: agent/proxy/outbound.ts; not HTTP: the pass-through), sharing the ejections */
  readonly l4 = new L4Balancer(this.ejections);
  /** DestinationRules' load balancing and bulkheads */
  private readonly destinations = new DestinationPolicies((key) => this.balancer.outstanding(key));
  /** per registry version of a service (its object is replaced on any change) and port: its ready endpoints and their keys */
  private readonly endpointSets = new WeakMap<RegistryService, Map<number, EndpointSet>>();
  private readonly mirrors: Mirrors;

  constructor(private readonly inputs: TrafficInputs) {
    this.log = inputs.log.child({ component: 'traffic' });
    this.mirrors = new Mirrors(this.log);
    const connections = inputs.connections;
    this.front = new HttpFront({
      ...(inputs.httpLimits ? { limits: inputs.httpLimits } : {}),
      stripHeaders: ['x-palisade-*'],
      log: this.log,
      ...(connections && {
        admitIdle: (pool: string) => {
          const a = connections.admitIdle('outbound', clientOfPool(pool));
          return a.ok ? a.release : undefined;
        },
      }),
    });
    this.h2 = new H2Front({ stripHeaders: ['x-palisade-*'], log: this.log, ...(inputs.httpLimits?.idleTimeoutMs !== undefined && { idleTimeoutMs: inputs.httpLimits.idleTimeoutMs }) });
    this.prefaceTimeoutMs = inputs.httpLimits?.headersTimeoutMs ?? DEFAULT_HTTP_LIMITS.headersTimeoutMs;
    this.passthrough = new Passthrough({
      node: inputs.node,
      flows: inputs.flows,
      l4: this.l4,
      destination: (b, clientNamespace) => (clientNamespace === undefined ? undefined : inputs.policies.index.destinations.lookup(b.namespace, b.name, b.port, clientNamespace)),
      ...(inputs.timeouts !== undefined && { timeouts: inputs.timeouts }),
      endpoints: (b) => {
        const svc = inputs.registry.service(b.namespace, b.name);
        return svc ? this.endpointSet(svc, b.port).endpoints : [];
      },
      describe: (e) => this.endpointOf(e),
    });
  }

  /** The routes a client of `clientNamespace` has for the service port, or undefined (plain TCP). */
  routes(service: RoutedService, clientNamespace: string): ServiceRoutes | undefined {
    return this.inputs.policies.index.routes.lookup(service.namespace, service.name, service.port, clientNamespace);
  }

  /** The DestinationRule a client of `clientNamespace` has for the service port, or undefined. */
  destination(service: RoutedService, clientNamespace: string): DestinationPolicy | undefined {
    return this.inputs.policies.index.destinations.lookup(service.namespace, service.name, service.port, clientNamespace);
  }

  /**
   * Serve the pod's connection to `service`, each request routed on its own: HTTP/2 when it opens
   * with the client preface or asks for it (`Upgrade: h2c`), else HTTP/1.1.
   */
  handle(conn: Duplex, workload: Workload, source: Source, service: RoutedService): void {
    const started = Date.now();
    readPreface(conn, this.prefaceTimeoutMs, undefined, routedHeadKind).then((p) => {
      if (p.kind === 'closed') return void conn.destroy();
      if (p.kind === 'other') {
        const self = { namespace: service.namespace, name: service.name, port: service.port, weight: 1 };
        const connect = (e: Endpoint): Promise<Duplex> => this.target(e, workload, source, 'h1').connect();
        return this.passthrough.handle({ conn, head: p.head, source, service: self, routes: this.routes(service, workload.namespace), connect, started });
      }
      const onRecord = (r: HttpRecord): void => this.record(r, source, service);
      const h2Session = { authorize: (req: NormalizedRequest) => this.decide(req, workload, source, service, 'h2'), onRecord, ...(this.inputs.tracer !== undefined && { tracer: this.inputs.tracer }) };
      if (p.kind === 'h2') return this.h2.handle(conn, p.head, h2Session);
      const session: HttpSession = {
        authorize: (req) => this.decide(req, workload, source, service, 'h1'),
        connect: () => Promise.reject(new Error('a routed request always has a dispatch')),
        onRecord,
        ...(this.inputs.tracer !== undefined && { tracer: this.inputs.tracer }),
        upgradeH2c: (c, head, req) => this.h2.handleUpgraded(c, head, req, h2Session),
      };
      this.front.handle(conn, p.head, session);
    }, (err: unknown) => {
      this.log.error({ err }, 'routed connection failed');
      conn.destroy();
    });
  }

  closeAll(): void {
    this.front.closeAll();
    this.h2.closeAll();
  }

  stats(): TrafficStats {
    return {
      ejectionsOverflowed: this.ejections.readmittedByOverflow,
      estimatesEvicted: this.balancer.evicted,
      idleUpstreamsRefused: this.front.idleRefused,
      mirrors: { ...this.mirrors.counts },
      upstreamOverflows: this.destinations.overflowed,
      ejectedForAnswers: this.ejections.ejectedForAnswers,
    };
  }


  /** `proto`: the upstream connections an attempt uses speak HTTP/1.1 or HTTP/2 (kept in separate pools). */
  private decide(req: NormalizedRequest, workload: Workload, source: Source, service: RoutedService, proto: Proto): RoutedDecision | Promise<RoutedDecision> {
    const routes = this.routes(service, workload.namespace);
    if (routes === undefined) {
      // the route went away since the connection came: the Service itself, balanced per request
      return this.dispatchTo(req, { namespace: service.namespace, name: service.name, port: service.port, weight: 1 }, undefined, workload, source, proto, { reason: 'no-route' });
    }
    const choice = routes.select(req);
    // the mesh's own answers, not a policy's denials: errors in the flow (not in the denied flows' audit), no line each
    if (choice === undefined) return { allowed: false, status: 404, verdict: 'error', reason: 'no-route-match', route: routes.routes.join(',') };
    const rule = choice.rule;
    // the proxy's own answers below carry the rule's response headers (its ResponseHeaderModifier), no backend chosen
    const answered = (): { route: string; rule: number; backend: string; edit?: RequestEdit } => {
      const edit = requestEdit(rule, undefined, req.path);
      return { route: choice.route.id, rule: rule.index, backend: '', ...(edit !== undefined && { edit }) };
    };
    let delayMs = 0;
    if (rule.fault !== undefined) {
      const fault = this.inputs.policies.index.routes.fault(rule.fault);
      // Gateway API: a rule whose filter cannot be resolved answers 500
      if (fault === undefined) return { allowed: false, status: 500, verdict: 'error', reason: 'fault-not-found', ...answered() };
      const abort = fault.abort;
      if (abort !== undefined && Math.random() * 100 < abort.percent) {
        return { allowed: false, status: abort.status, ...(abort.grpcStatus !== undefined && { grpcStatus: abort.grpcStatus }), verdict: 'error', reason: 'fault-abort', ...answered() };
      }
      if (fault.delay !== undefined && Math.random() * 100 < fault.delay.percent) delayMs = fault.delay.ms;
    }
    const matched = { route: choice.route.id, rule: rule.index };
    // a redirect is the proxy's answer: no backend is contacted (the flow says why)
    if (rule.filters?.redirect !== undefined) {
      return { allowed: false, status: rule.filters.redirect.statusCode, verdict: 'allowed', reason: 'redirect', location: ruleRedirect(rule, req, service.port), ...answered() };
    }
    const session = rule.session === undefined ? undefined : readRuleSession(rule.session, `${choice.route.id}#${rule.index}`, req);
    // a session goes on with its endpoint's backend (whatever the weights), while its tag names one of a backend's endpoints
    const stuck = session?.carried && rule.backends.find((b) => b.weight > 0 && this.hasEndpoint(b, session));
    const backend = stuck || pickWeighted(rule.backends, Math.random);
    const edit = requestEdit(rule, backend, req.path);
    const mirror = this.mirrorOf(matched, rule, backend, req, workload, source);
    const decision = this.dispatchTo(req, backend, rule, workload, source, proto, { reason: delayMs > 0 ? 'fault-delay' : 'routed', ...matched, ...(session && { session }) }, delayMs);
    const extras = (d: RoutedDecision): RoutedDecision => ({ ...d, ...(edit !== undefined && { edit }), ...(mirror !== undefined && { mirror }) });
    // a request waiting its turn in a DestinationRule's bulkhead is decided later
    return decision instanceof Promise ? decision.then(extras) : extras(decision);
  }

  /**
   * The rule's (and the chosen backendRef's) mirrors this request is sampled for, as the engine's
   * mirror hook: each copy carries the rule's own edits (a backendRef's are its backend's alone)
   * to a random ready endpoint of its Service, and each copy that goes gets a flow record of its own.
   */
  private mirrorOf(matched: Matched, rule: RouteRule, backend: BackendRef, req: NormalizedRequest, workload: Workload, source: Source): HttpDecision['mirror'] {
    const all = [...(rule.filters?.mirrors ?? []), ...(backend.filters?.mirrors ?? [])];
    const sampled = all.filter((m) => m.numerator > 0 && Math.random() * m.denominator < m.numerator);
    if (sampled.length === 0) return undefined;
    const edit = requestEdit(rule, undefined, req.path);
    return (src: MirrorSource): MirrorTap | undefined =>
      allOf(sampled.flatMap((m) => this.mirrors.tap(src, edit, this.mirrorTarget(matched, m.backend, src.proto, workload, source)) ?? []));
  }

  private mirrorTarget(matched: Matched, b: Omit<BackendRef, 'weight' | 'filters'>, proto: Proto, workload: Workload, source: Source): MirrorTarget | undefined {
    const svc = this.inputs.registry.service(b.namespace, b.name);
    const endpoints = svc ? this.endpointSet(svc, b.port).endpoints : [];
    if (endpoints.length === 0) return undefined;
    const e = endpoints[Math.floor(Math.random() * endpoints.length)]!;
    const t = this.target(e, workload, source, proto);
    const traffic = { ...matched, backend: `${b.namespace}/${b.name}`, attempts: 1 };
    return {
      connect: () => t.connect(),
      session: () => this.h2.upstreams.get(t.pool, () => t.connect()).then((u) => u.session),
      done: (copy) => {
        const to = this.endpointOf(e, copy.host);
        this.inputs.flows.record(mirrorFlow(this.inputs.node, source, to.endpoint, to.mtls, copy, traffic));
      },
    };
  }

  /**
   * The request's dispatch to `backend`, under the backend's DestinationRule if one applies to the
   * client: its balancing, its outlier detection, and its bulkhead (now, after a wait, or 503 UO).
   */
  private dispatchTo(req: NormalizedRequest, backend: BackendRef, rule: RouteRule | undefined, workload: Workload, source: Source, proto: Proto, info: RouteInfo, delayMs = 0): RoutedDecision | Promise<RoutedDecision> {
    const dr = this.inputs.policies.index.destinations.lookup(backend.namespace, backend.name, backend.port, workload.namespace);
    const base = { reason: info.reason, route: info.route, rule: info.rule, backend: `${backend.namespace}/${backend.name}` };
    if (dr === undefined) return { allowed: true, ...base, dispatch: this.dispatch(req, backend, rule, workload, source, proto, delayMs, info.session, undefined, undefined) };
    const { policy, place } = this.destinations.forRequest(dr, `${backend.namespace}/${backend.name}:${backend.port}`, proto, { headers: req.headers, query: req.query, sourceIp: workload.ip }, `${source.ip}:${source.port ?? 0}`);
    const overflow = (): RoutedDecision => ({ allowed: false, status: 503, verdict: 'error', ...base, reason: 'upstream-overflow' });
    if (place.kind === 'overflow') return overflow();
    if (place.kind === 'now') return { allowed: true, ...base, dispatch: this.dispatch(req, backend, rule, workload, source, proto, delayMs, info.session, policy, place.release) };
    return place.ready.then((release) => (release === undefined ? overflow() : { allowed: true, ...base, dispatch: this.dispatch(req, backend, rule, workload, source, proto, delayMs, info.session, policy, release) }));
  }

  private dispatch(req: NormalizedRequest, backend: BackendRef, rule: RouteRule | undefined, workload: Workload, source: Source, proto: Proto, delayMs: number, session: Session | undefined, policy: RequestPolicy | undefined, release: (() => void) | undefined): RequestDispatch {
    const svc = this.inputs.registry.service(backend.namespace, backend.name);
    const set = svc ? this.endpointSet(svc, backend.port) : NO_ENDPOINTS;
    const connectTimeoutMs = policy?.connectTimeoutMs;
    // a session's endpoint first, while it is a candidate (ready, not ejected, not tried); then the DestinationRule's pick
    const tags = session !== undefined && set !== NO_ENDPOINTS ? tagsOf(set, session.scope) : undefined;
    const pick = sessionPick(session?.carried, tags, policy?.pick);
    return new RequestDispatch({
      rule: rule ?? NO_RULE,
      method: req.method,
      endpoints: set.endpoints,
      keys: set.keys,
      balancer: this.balancer,
      budget: this.budget(backend.namespace, backend.name),
      ejections: this.ejections,
      delayMs,
      target: (e) => withConnectTimeout(withReuse(this.target(e, workload, source, proto), policy?.reuse), connectTimeoutMs),
      ...(pick !== undefined && { pick }),
      ...((session !== undefined || policy?.responseHeader !== undefined) && {
        responseHeaders: (e: Endpoint) => {
          const tag = tags?.tag.get(keyOf(e));
          return headersOf(session && tag !== undefined ? sessionHeader(session.spec, tag, session.carried, Date.now()) : undefined, policy?.responseHeader);
        },
      }),
      ...(policy?.outlier !== undefined && { outlier: policy.outlier }),
      ...(policy?.retrySlot !== undefined && { retrySlot: policy.retrySlot }),
      ...(release !== undefined && { onFinish: release }),
    });
  }

  /** the session names a ready endpoint of backend `b` */
  private hasEndpoint(b: BackendRef, session: Session): boolean {
    const svc = this.inputs.registry.service(b.namespace, b.name);
    return svc !== undefined && sessionEndpoint(session.carried, tagsOf(this.endpointSet(svc, b.port), session.scope)) >= 0;
  }

  private endpointSet(svc: RegistryService, port: number): EndpointSet {
    let byPort = this.endpointSets.get(svc);
    if (byPort === undefined) {
      byPort = new Map();
      this.endpointSets.set(svc, byPort);
    }
    let set = byPort.get(port);
    if (set === undefined) {
      const endpoints = readyEndpoints(svc, port);
      set = { endpoints, keys: endpoints.map(keyOf) };
      byPort.set(port, set);
    }
    return set;
  }

  private budget(namespace: string, name: string): RetryBudget {
    const key = `${namespace}/${name}`;
    let b = this.budgets.get(key);
    if (b === undefined) {
      for (const k of this.budgets.keys()) {
        const slash = k.indexOf('/');
        if (this.inputs.registry.service(k.slice(0, slash), k.slice(slash + 1)) === undefined) this.budgets.delete(k);
      }
      this.destinations.prune((s) => this.budgets.has(s) || s === key);
      b = new RetryBudget();
      this.budgets.set(key, b);
    }
    return b;
  }

  /** How one attempt reaches endpoint `e`: its node over HBONE, or this node's destination authorization. */
  private target(e: Endpoint, workload: Workload, source: Source, proto: Proto): UpstreamTarget {
    const pool = poolName(proto, workload.ip, e);
    const local = this.inputs.local.byIp(e.ip);
    if (local) return { pool, connect: () => this.connectLocal(e, local, source) };
    const remote = this.inputs.registry.byIp(e.ip);
    if (remote && remote.node !== this.inputs.node) {
      return {
        pool,
        connect: () => this.inputs.pool.connect({ srcIdentity: workload.identity, srcIp: workload.ip, nodeAddress: remote.nodeAddress, dstIdentity: remote.identity, dst: { ip: e.ip, port: e.port } }).catch((err: unknown) => Promise.reject(withRefusal(err))),
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
          // the pod could not be reached: its connect error (ejects the endpoint); a denial: the request's answer
          reject(why.reason === 'upstream-failed' ? why.error : withRefusal(Object.assign(new Error(why.reason), { code: why.reason })));
        },
        failed: (err) => {
          ours.destroy(err);
          reject(err);
        },
      });
    });
  }

  /**
   * Endpoint `e` as a flow's destination (its workload when it is one of the mesh's; `host` as asked)
   * and whether the way to it is mTLS: only a mesh workload on another node is reached through the
   * tunnel; one on this node is handed over inside the node, and an address outside the mesh is not.
   */
  private endpointOf(e: Endpoint, host?: string): { endpoint: FlowEndpoint & { ip: string }; mtls: boolean } {
    const local = this.inputs.local.byIp(e.ip);
    const w = local ?? this.inputs.registry.byIp(e.ip);
    const endpoint = { ip: e.ip, port: e.port, ...(w && { workload: w.name, namespace: w.namespace, identity: w.identity }), ...(host !== undefined && { host }) };
    return { endpoint, mtls: local === undefined && w !== undefined };
  }

  private record(r: HttpRecord, source: Source, service: RoutedService): void {
    const d = r.decision as RoutedDecision | undefined;
    const dispatch = d?.dispatch instanceof RequestDispatch ? d.dispatch : undefined;
    const e = dispatch?.endpoint;
    const host = r.host || `${service.name}.${service.namespace}`;
    const { endpoint: destination, mtls } = e ? this.endpointOf(e, host) : { endpoint: { ip: '0.0.0.0', port: service.port, host }, mtls: false };
    const traffic = d?.route !== undefined && d.rule !== undefined ? { route: d.route, rule: d.rule, backend: d.backend ?? '', attempts: dispatch?.attempts ?? 0 } : undefined;
    const refused = dispatch?.refusal;
    const outcome = refused !== undefined ? { verdict: refused.verdict, reason: refused.reason } : httpOutcome(r);
    const flow = proxyFlow(this.inputs.node, { direction: 'outbound', source, destination, protocol: 'http', mtls, http: httpLine(r) }, outcome, httpCounts(r), undefined, traffic);
    this.inputs.flows.record(traced(this.inputs.tracer, flow, r));
    if (dispatch && dispatch.retried.length > 0) this.log.debug({ event: 'retried', route: d?.route, backend: d?.backend, retried: dispatch.retried }, 'request retried');
  }
}

/** `t` whose connect fails with code `connect-timeout` after `ms` (a DestinationRule's tcp.connectTimeout); the late connection is closed. */
function withConnectTimeout(t: UpstreamTarget, ms: number | undefined): UpstreamTarget {
  if (ms === undefined) return t;
  return {
    ...t,
    connect: () =>
      new Promise((resolve, reject) => {
        let late = false;
        const timer = setTimeout(() => {
          late = true;
          reject(Object.assign(new Error(`no connection within ${ms} ms`), { code: 'connect-timeout' }));
        }, ms);
        t.connect().then(
          (c) => {
            clearTimeout(timer);
            if (late) c.destroy();
            else resolve(c);
          },
          (err: unknown) => {
            clearTimeout(timer);
            if (!late) reject(err);
          },
        );
      }),
  };
}

/** `err`, carrying its refusal when the destination refused (the HTTP front answers that as is). */
function withRefusal<E>(err: E): E {
  const refusal = refusalOf(err);
  if (refusal !== undefined && typeof err === 'object' && err !== null) Object.assign(err, { refusal });
  return err;
}

/** The shared pool of a client pod's upstream connections to one endpoint. */
const poolName = (proto: Proto, clientIp: string, e: Endpoint): string => `traffic:${proto}:${clientIp}>${keyOf(e)}`;
/** The client pod's IP in a pool name (`traffic:<proto>:<client ip>><endpoint>`). */
const clientOfPool = (pool: string): string => pool.slice(pool.indexOf(':', 'traffic:'.length) + 1, pool.indexOf('>'));

/** The route and rule a request matched. */
interface Matched {
  route: string;
  rule: number;
}

/** What matched, for the decision and its record; a rule's sticky session. */
interface RouteInfo {
  reason: string;
  route?: string;
  rule?: number;
  session?: Session;
}

interface Session {
  readonly spec: SessionPersistence;
  /** the route rule: its sessions are its own */
  readonly scope: string;
  readonly carried: SessionState | undefined;
}

/** The headers an answer gets: a sticky session's, a DestinationRule's hash cookie (either may be absent). */
const headersOf = (...hs: ([string, string] | undefined)[]): readonly (readonly [string, string])[] | undefined => {
  const out = hs.filter((h): h is [string, string] => h !== undefined);
  return out.length === 0 ? undefined : out;
};

/** `t` with a DestinationRule's upstream reuse limits (maxRequestsPerConnection, idleTimeout). */
const withReuse = (t: UpstreamTarget, reuse: UpstreamReuse | undefined): UpstreamTarget => (reuse === undefined ? t : { ...t, reuse });

interface EndpointSet {
  readonly endpoints: readonly Endpoint[];
  readonly keys: readonly string[];
  /** sticky-session tags by route rule, made when a rule's session first meets this set */
  sessionTags?: Map<string, SessionTags>;
}

/** Route rule `scope`'s session tags for `set` (kept with the set: rebuilt when its Service changes). */
function tagsOf(set: EndpointSet, scope: string): SessionTags {
  set.sessionTags ??= new Map();
  let tags = set.sessionTags.get(scope);
  if (tags === undefined) {
    tags = sessionTags(scope, set.keys);
    set.sessionTags.set(scope, tags);
  }
  return tags;
}

/** The session route rule `scope` (`route#rule`) reads from a request. */
const readRuleSession = (spec: SessionPersistence, scope: string, req: NormalizedRequest): Session => ({ spec, scope, carried: readSession(spec, scope, req.headers, Date.now()) });

const NO_ENDPOINTS: EndpointSet = { endpoints: [], keys: [] };

/** A Service served without a route: no timeouts, no explicit retries. */
const NO_RULE: RouteRule = { index: 0, name: undefined, matches: [], backends: [], requestTimeoutMs: 0, backendTimeoutMs: 0, retry: undefined, fault: undefined };

/** The ready endpoints of `svc` at the target port of its port `port`. */
export function readyEndpoints(svc: RegistryService, port: number): Endpoint[] {
  const i = svc.ports.findIndex((p) => p.port === port);
  if (i < 0) return [];
  return svc.endpoints.filter((e) => e.ready && e.targetPorts.length === svc.ports.length).map((e) => ({ ip: e.ip, port: e.targetPorts[i]! }));
}
