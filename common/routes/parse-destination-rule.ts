/**
 * `spec` of an Istio DestinationRule (networking.istio.io/v1), its `trafficPolicy` only, checked
 * whole and compiled. Plain data in, `{path, message}` problems out (the caller adds file and
 * line), as parse-http-route.ts. Pure.
 *
 * Accepted: host (a Service: `name`, `name.namespace` or `name.namespace.svc[.<domain>]`),
 * trafficPolicy.{loadBalancer, connectionPool, outlierDetection, portLevelSettings}, exportTo
 * (Istio's meaning: the namespaces whose clients it applies to; "." is its own, "*" every one).
 * Refused, each with a line saying why: subsets (one Service per version, Istio ambient's own
 * advice), workloadSelector (Istio applies it only to sidecars), tls (the mesh's mTLS is always
 * on), loadBalancer PASSTHROUGH, and every field not listed here.
 */
import { isDnsLabel } from '../identity';
import {
  DEFAULT_CONNECTION_POOL,
  DEFAULT_OUTLIER_DETECTION,
  NO_LIMIT,
  type ConnectionPool,
  type LoadBalancer,
  type OutlierDetection,
  type TrafficPolicy,
} from './destination-rule';
import { Checker, show, type Obj, type RouteProblem } from './checker';
import { routeDuration } from './route-duration';


export interface ParsedDestinationRule {
  host: { namespace: string; name: string };
  policy: TrafficPolicy;
  ports: Map<number, TrafficPolicy>;
  exportTo: Set<string> | undefined;
}

export const SUBSETS_HINT = 'subsets are not supported: use one Service per version (Istio ambient\'s own advice) and an HTTPRoute\'s backendRefs weights to split between them';

/** Why a field Istio has is refused here (the rest: "unknown or unsupported field"). */
const REFUSED: Record<string, string> = {
  subsets: SUBSETS_HINT,
  workloadSelector: 'workloadSelector is not supported: Istio applies it to sidecars only; here a DestinationRule applies to every client of the Service (limit it by namespace with exportTo)',
  tls: 'tls is not supported: traffic between pods is always mutual TLS (HBONE); remove it',
  tunnel: 'tunnel is not supported (remove it)',
  proxyProtocol: 'proxyProtocol is not supported (remove it)',
  localityLbSetting: 'localityLbSetting is not supported (remove it)',
  warmupDurationSecs: 'warmupDurationSecs is not supported (remove it)',
  warmup: 'warmup is not supported (remove it)',
  ringHash: 'ringHash is not supported: the hash is consistent already (rendezvous hashing; remove it)',
  maglev: 'maglev is not supported: the hash is consistent already (rendezvous hashing; remove it)',
  minimumRingSize: 'minimumRingSize is not supported: the hash is consistent already (rendezvous hashing; remove it)',
  attributes: 'cookie attributes are not supported (remove it)',
  tcpKeepalive: 'tcpKeepalive is not supported (remove it)',
  maxConnectionDuration: 'maxConnectionDuration is not supported (remove it)',
  h2UpgradePolicy: 'h2UpgradePolicy is not supported: the proxy speaks to each endpoint what the client spoke (remove it)',
  useClientProtocol: 'useClientProtocol is not supported: the proxy always speaks to each endpoint what the client spoke (remove it)',
  maxConcurrentStreams: 'maxConcurrentStreams is not supported (remove it; http2MaxRequests limits requests)',
  splitExternalLocalOriginErrors: 'splitExternalLocalOriginErrors is not supported: connect failures always eject with backoff (remove it)',
  consecutiveLocalOriginFailures: 'consecutiveLocalOriginFailures is not supported: connect failures always eject with backoff (remove it)',
  consecutiveErrors: 'consecutiveErrors is Istio\'s removed field: use consecutive5xxErrors',
};

const SPEC = ['host', 'trafficPolicy', 'exportTo'];
const POLICY = ['loadBalancer', 'connectionPool', 'outlierDetection', 'portLevelSettings'];
const PORT_POLICY = ['port', 'loadBalancer', 'connectionPool', 'outlierDetection'];
const SIMPLE = new Set(['UNSPECIFIED', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH']);
/** a duration these settings take: at most a day */
const MAX_DURATION_MS = 24 * 3_600_000;
const MAX_PORTS = 64;
const MAX_EXPORT_TO = 64;


export function parseDestinationRuleSpec(spec: unknown, namespace: string): { spec: ParsedDestinationRule | undefined; problems: RouteProblem[]; warnings: RouteProblem[] } {
  const c = new Checker();
  const top = fields(c, spec, 'spec', SPEC);
  let result: ParsedDestinationRule | undefined;
  if (top) {
    const host = top.host === undefined ? c.fail('spec.host', 'is missing (name the Service: web, web.shop or web.shop.svc.cluster.local)') : hostOf(c, top.host, namespace);
    const exportTo = top.exportTo === undefined ? undefined : exportToOf(c, top.exportTo, namespace);
    if (top.trafficPolicy === undefined) c.fail('spec.trafficPolicy', 'is missing (a DestinationRule without a trafficPolicy does nothing)');
    const tp = top.trafficPolicy === undefined ? undefined : fields(c, top.trafficPolicy, 'spec.trafficPolicy', POLICY);
    const policy = tp && trafficPolicy(c, tp, 'spec.trafficPolicy', undefined);
    const ports = new Map<number, TrafficPolicy>();
    if (tp && policy && tp.portLevelSettings !== undefined) {
      (c.list(tp.portLevelSettings, 'spec.trafficPolicy.portLevelSettings', MAX_PORTS) ?? []).forEach((v, i) => {
        const path = `spec.trafficPolicy.portLevelSettings[${i}]`;
        const f = fields(c, v, path, PORT_POLICY);
        if (!f) return;
        const portField = f.port === undefined ? c.fail(`${path}.port`, 'is missing (port: {number: 8080})') : fields(c, f.port, `${path}.port`, ['number']);
        const port = portField && c.int(portField.number, `${path}.port.number`, 1, 65535);
        if (port !== undefined && ports.has(port)) c.fail(`${path}.port.number`, `port ${port} has settings already (one entry per port)`);
        const own = trafficPolicy(c, f, path, policy);
        if (port !== undefined && own) ports.set(port, own);
      });
    }
    if (c.problems.length === 0 && host && policy) result = { host, policy, ports, exportTo };
  }
  return { spec: c.problems.length === 0 ? result : undefined, problems: c.problems, warnings: c.warnings };
}

/** `v` as a mapping of only `allowed` keys; each other key one line (REFUSED says why, when Istio has it). */
const fields = (c: Checker, v: unknown, path: string, allowed: readonly string[]): Obj | undefined => c.fields(v, path, allowed, REFUSED);

/** `web`, `web.shop`, `web.shop.svc`, `web.shop.svc.cluster.local` → the Service; anything else refused. */
export function hostOf(c: Checker, v: unknown, namespace: string): { namespace: string; name: string } | undefined {
  const s = c.string(v, 'spec.host');
  if (s === undefined) return undefined;
  const parts = s.split('.');
  const fqdn = parts.length >= 3 && parts[2] === 'svc';
  if (s.includes('*') || !(parts.length <= 2 || fqdn) || !parts.slice(0, 2).every(isDnsLabel)) {
    return c.fail('spec.host', `must name a Service of the mesh (web, web.shop or web.shop.svc.cluster.local), got ${show(s)}`);
  }
  return { name: parts[0]!, namespace: parts[1] ?? namespace };
}

function exportToOf(c: Checker, v: unknown, namespace: string): Set<string> | undefined {
  const list = c.list(v, 'spec.exportTo', MAX_EXPORT_TO);
  if (!list) return undefined;
  const out = new Set<string>();
  let all = false;
  list.forEach((x, i) => {
    if (x === '*') all = true;
    else if (x === '.') out.add(namespace);
    else if (x === '~') return;
    else if (typeof x === 'string' && isDnsLabel(x)) out.add(x);
    else c.fail(`spec.exportTo[${i}]`, `must be a namespace, "." (this one), "*" (every one) or "~" (none), got ${show(x)}`);
  });
  return all ? undefined : out;
}

/** One level's settings, each field left out taken from `parent` (the rule's own, for a port). */
function trafficPolicy(c: Checker, f: Obj, path: string, parent: TrafficPolicy | undefined): TrafficPolicy | undefined {
  const before = c.problems.length;
  const loadBalancer = f.loadBalancer === undefined ? parent?.loadBalancer : lb(c, f.loadBalancer, `${path}.loadBalancer`);
  const connectionPool = f.connectionPool === undefined ? parent?.connectionPool : pool(c, f.connectionPool, `${path}.connectionPool`);
  const outlierDetection = f.outlierDetection === undefined ? parent?.outlierDetection : outlier(c, f.outlierDetection, `${path}.outlierDetection`);
  return c.problems.length > before ? undefined : { loadBalancer, connectionPool, outlierDetection };
}

function lb(c: Checker, v: unknown, path: string): LoadBalancer | undefined {
  const f = fields(c, v, path, ['simple', 'consistentHash']);
  if (!f) return undefined;
  if (f.simple !== undefined && f.consistentHash !== undefined) return c.fail(path, 'sets both simple and consistentHash (choose one)');
  if (f.consistentHash !== undefined) return hash(c, f.consistentHash, `${path}.consistentHash`);
  const simple = f.simple;
  if (typeof simple !== 'string' || !SIMPLE.has(simple)) return c.fail(`${path}.simple`, `must be ROUND_ROBIN, LEAST_REQUEST or RANDOM, got ${show(simple)}`);
  if (simple === 'PASSTHROUGH') return c.fail(`${path}.simple`, 'PASSTHROUGH is not supported: it sends to the address the client dialled, and a Service\'s virtual IP has no endpoint of its own (use ROUND_ROBIN, LEAST_REQUEST or RANDOM)');
  if (simple === 'UNSPECIFIED') return undefined;
  if (simple === 'LEAST_CONN') {
    c.warnings.push({ path: `${path}.simple`, message: 'LEAST_CONN is Istio\'s deprecated name of LEAST_REQUEST: LEAST_REQUEST is used' });
    return { kind: 'LEAST_REQUEST' };
  }
  return { kind: simple as 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' };
}

function hash(c: Checker, v: unknown, path: string): LoadBalancer | undefined {
  const f = fields(c, v, path, ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName']);
  if (!f) return undefined;
  const set = Object.keys(f);
  if (set.length !== 1) return c.fail(path, `needs exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName, got ${set.length === 0 ? 'none' : set.join(', ')}`);
  if (f.httpHeaderName !== undefined) {
    const name = c.string(f.httpHeaderName, `${path}.httpHeaderName`);
    if (name !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/.test(name)) return c.fail(`${path}.httpHeaderName`, `is not a valid header name: ${show(name)}`);
    return name === undefined ? undefined : { kind: 'HASH', by: 'header', name: name.toLowerCase() };
  }
  if (f.httpQueryParameterName !== undefined) {
    const name = c.string(f.httpQueryParameterName, `${path}.httpQueryParameterName`);
    if (name !== undefined && name.length > 256) return c.fail(`${path}.httpQueryParameterName`, 'is longer than 256 characters');
    return name === undefined ? undefined : { kind: 'HASH', by: 'query', name };
  }
  if (f.useSourceIp !== undefined) {
    if (f.useSourceIp !== true) return c.fail(`${path}.useSourceIp`, `must be true (leave consistentHash out otherwise), got ${show(f.useSourceIp)}`);
    return { kind: 'HASH', by: 'source-ip', name: '' };
  }
  const cookie = fields(c, f.httpCookie, `${path}.httpCookie`, ['name', 'path', 'ttl', 'attributes']);
  if (!cookie) return undefined;
  const name = c.string(cookie.name, `${path}.httpCookie.name`);
  if (name !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/.test(name)) return c.fail(`${path}.httpCookie.name`, `is not a valid cookie name: ${show(name)}`);
  let cookiePath: string | undefined;
  if (cookie.path !== undefined) {
    const p = c.string(cookie.path, `${path}.httpCookie.path`);
    if (p !== undefined && !/^\/[\x21-\x3a\x3c-\x7e]{0,1023}$/.test(p)) return c.fail(`${path}.httpCookie.path`, `must be a path starting with "/" (no spaces or ";"), got ${show(p)}`);
    cookiePath = p;
  }
  const ttl = cookie.ttl === undefined ? undefined : duration(c, cookie.ttl, `${path}.httpCookie.ttl`, true);
  if (name === undefined || (cookie.ttl !== undefined && ttl === undefined)) return undefined;
  return { kind: 'HASH', by: 'cookie', name, ...(ttl !== undefined && { cookieTtlMs: ttl }), ...(cookiePath !== undefined && { cookiePath }) };
}

function pool(c: Checker, v: unknown, path: string): ConnectionPool | undefined {
  const f = fields(c, v, path, ['tcp', 'http']);
  if (!f) return undefined;
  const before = c.problems.length;
  const tcp = f.tcp === undefined ? {} : (fields(c, f.tcp, `${path}.tcp`, ['maxConnections', 'connectTimeout', 'idleTimeout']) ?? {});
  if (tcp.idleTimeout !== undefined) c.fail(`${path}.tcp.idleTimeout`, 'is not supported: an idle connection to a Service is closed after http.idleTimeout (remove it)');
  const http = f.http === undefined ? {} : (fields(c, f.http, `${path}.http`, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout']) ?? {});
  const d = DEFAULT_CONNECTION_POOL;
  const limit = (x: unknown, p: string, fallback: number, min = 1): number | undefined => (x === undefined ? fallback : c.int(x, p, min, NO_LIMIT));
  const result: ConnectionPool = {
    maxConnections: limit(tcp.maxConnections, `${path}.tcp.maxConnections`, d.maxConnections)!,
    connectTimeoutMs: tcp.connectTimeout === undefined ? d.connectTimeoutMs : duration(c, tcp.connectTimeout, `${path}.tcp.connectTimeout`, false)!,
    maxPendingRequests: limit(http.http1MaxPendingRequests, `${path}.http.http1MaxPendingRequests`, d.maxPendingRequests, 0)!,
    maxRequests: limit(http.http2MaxRequests, `${path}.http.http2MaxRequests`, d.maxRequests)!,
    maxRequestsPerConnection: limit(http.maxRequestsPerConnection, `${path}.http.maxRequestsPerConnection`, d.maxRequestsPerConnection, 0)!,
    maxRetries: limit(http.maxRetries, `${path}.http.maxRetries`, d.maxRetries, 0)!,
    idleTimeoutMs: http.idleTimeout === undefined ? d.idleTimeoutMs : duration(c, http.idleTimeout, `${path}.http.idleTimeout`, false),
  };
  return c.problems.length > before ? undefined : result;
}

function outlier(c: Checker, v: unknown, path: string): OutlierDetection | undefined {
  const f = fields(c, v, path, ['consecutive5xxErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent']);
  if (!f) return undefined;
  const before = c.problems.length;
  const d = DEFAULT_OUTLIER_DETECTION;
  const count = (x: unknown, p: string, fallback: number, max: number): number | undefined => (x === undefined ? fallback : c.int(x, p, 0, max));
  const result: OutlierDetection = {
    consecutive5xx: count(f.consecutive5xxErrors, `${path}.consecutive5xxErrors`, d.consecutive5xx, NO_LIMIT)!,
    consecutiveGateway: count(f.consecutiveGatewayErrors, `${path}.consecutiveGatewayErrors`, d.consecutiveGateway, NO_LIMIT)!,
    intervalMs: f.interval === undefined ? d.intervalMs : duration(c, f.interval, `${path}.interval`, false)!,
    baseEjectionMs: f.baseEjectionTime === undefined ? d.baseEjectionMs : duration(c, f.baseEjectionTime, `${path}.baseEjectionTime`, false)!,
    maxEjectionPercent: count(f.maxEjectionPercent, `${path}.maxEjectionPercent`, d.maxEjectionPercent, 100)!,
    minHealthPercent: count(f.minHealthPercent, `${path}.minHealthPercent`, d.minHealthPercent, 100)!,
  };
  if (c.problems.length === before && result.consecutive5xx === 0 && result.consecutiveGateway === 0) {
    c.warnings.push({ path, message: 'consecutive5xxErrors and consecutiveGatewayErrors are both 0: no endpoint is ejected for its answers (connect failures still are)' });
  }
  return c.problems.length > before ? undefined : result;
}

/** A duration as Istio writes them (1h, 5m, 30s, 10ms, 1m30s, or protobuf's 1.5s) in ms, at most a day. */
function duration(c: Checker, v: unknown, path: string, zeroOk: boolean): number | undefined {
  let ms: number | undefined;
  if (typeof v === 'string' && /^[0-9]{1,9}\.[0-9]{1,9}s$/.test(v)) ms = Math.round(Number(v.slice(0, -1)) * 1000);
  else {
    const d = routeDuration(v, '1h, 5m, 30s, 10ms or 1.5s', MAX_DURATION_MS, '24h');
    if ('problem' in d) return c.fail(path, d.problem);
    ms = d.ms;
  }
  if (ms > MAX_DURATION_MS) return c.fail(path, `must be at most 24h, got ${show(v)}`);
  if (ms === 0 && !zeroOk) return c.fail(path, `must be at least 1ms, got ${show(v)}`);
  return ms;
}
