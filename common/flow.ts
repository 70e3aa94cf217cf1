/**
 * A flow record: one connection or one HTTP request the mesh carried or refused. Built by the
 * agent's proxy; written to the access log, counted in the metrics and streamed to the collector
 * (docs/architecture.md "Flows"). Every authorization decision is explained by `reason` and
 * `policy`.
 */
import { isRecord } from './record';

export type FlowDirection = 'outbound' | 'inbound' | 'egress';
export type FlowVerdict = 'allowed' | 'denied' | 'audit' | 'error';
/** `dns`: one query to the DNS proxy. `udp`, `icmp`, `arp`, `other`: packets the per-pod filters let through or dropped, summarized per interval. */
export type FlowProtocol = 'tcp' | 'tls' | 'http' | 'dns' | 'udp' | 'icmp' | 'arp' | 'other';
export const FLOW_PROTOCOLS: readonly FlowProtocol[] = ['tcp', 'tls', 'http', 'dns', 'udp', 'icmp', 'arp', 'other'];

export interface FlowEndpoint {
  ip: string;
  port?: number;
  workload?: string;
  namespace?: string;
  identity?: string;
  /** the name the client asked for (TLS SNI, HTTP Host, DNS question), when known */
  host?: string;
}

export interface FlowRecord {
  time: string;
  node: string;
  direction: FlowDirection;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  protocol: FlowProtocol;
  /** an HTTP request; `grpcStatus`: a gRPC call's grpc-status as the client got it (its trailers or a trailers-only answer; its message is never kept) */
  http?: { method: string; path: string; status: number; grpcStatus?: number };
  /** a DNS query (`protocol: dns`; its name is destination.host): type, rcode, answer data */
  dns?: FlowDns;
  verdict: FlowVerdict;
  /** why: allowed-by-policy, no-policy, denied-by-policy, host-not-allowed, bad-request, upstream-failed, … */
  reason: string;
  /** `namespace/name` of the deciding policy, when one decided */
  policy?: string;
  /** index of the matching rule in that policy */
  rule?: number;
  /** an AUDIT policy that matched (the verdict is then `audit` when allowed) */
  audit?: { policy: string; rule: number };
  mtls: boolean;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  /**
   * the W3C trace id (32 lowercase hex digits) of an HTTP request the proxy traced: its spans were
   * queued for export, which does not mean delivered (README.md "Tracing")
   */
  traceId?: string;
  /**
   * How many refused connections this record stands for, when more than one: the agent records
   * the first refusal of a kind in an interval on its own and the rest as one summary with this
   * count (agent/proxy/refusals.ts). In a summary that folds several endpoints, their `ip` is `*`.
   * In a packet summary of the per-pod filters (udp, icmp, arp, other): how many packets, per interval.
   */
  count?: number;
  /** a request the source node routed (HTTPRoute): which route and rule, which backend Service, how many attempts */
  traffic?: FlowTraffic;
}

export interface FlowTraffic {
  /** `namespace/name` of the HTTPRoute */
  route: string;
  /** index of its rule */
  rule: number;
  /** `namespace/name` of the backend Service chosen */
  backend: string;
  /** attempts sent (1: no retry) */
  attempts: number;
}

/** `A`, `NXDOMAIN`, addresses and CNAME targets (these with a trailing dot), at most MAX_DNS_ANSWERS. */
export interface FlowDns {
  type: string;
  rcode: string;
  answers: string[];
}

export const MAX_DNS_ANSWERS = 16;

/** What a flow record is built from; `time` is taken when it is built (the flow's end). */
export type FlowFields = Omit<FlowRecord, 'time'>;

/**
 * Every flow record the proxy makes is built here, always with the same fields in the same order
 * (absent ones undefined, which JSON drops): every sink then reads objects of one shape, which
 * V8 keeps fast. Spreading partial records together gives nearly every record its own shape.
 */
export function flowRecord(f: FlowFields): FlowRecord {
  return {
    time: isoTime(Date.now()),
    node: f.node,
    direction: f.direction,
    source: f.source,
    destination: f.destination,
    protocol: f.protocol,
    http: f.http,
    dns: f.dns,
    verdict: f.verdict,
    reason: f.reason,
    policy: f.policy,
    rule: f.rule,
    audit: f.audit,
    mtls: f.mtls,
    bytesSent: f.bytesSent,
    bytesReceived: f.bytesReceived,
    durationMs: Math.round(f.durationMs),
    count: f.count,
    traceId: f.traceId,
    traffic: f.traffic,
  };
}

let isoSecond = Number.NaN;
let isoPrefix = '';

/**
 * `new Date(ms).toISOString()` for a time in years 0–9999, with the date and time of day
 * formatted once per second: a flow is recorded at the end of every request.
 */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const frac = ms - second * 1000;
  return isoPrefix + (frac < 10 ? '00' : frac < 100 ? '0' : '') + frac + 'Z';
}

/** The flow verdict of an authorization decision. */
export function verdictOf(v: { allowed: boolean; audit?: unknown }): FlowVerdict {
  return v.allowed ? (v.audit ? 'audit' : 'allowed') : 'denied';
}

/** Where finished flows go (the access log now; the collector reporter later). */
export interface FlowSink {
  record(flow: FlowRecord): void;
}

/** The fields a record may have: made once, since the check runs for every record an agent sends. */
const FIELDS: ReadonlySet<string> = new Set(['time', 'node', 'direction', 'source', 'destination', 'protocol', 'http', 'dns', 'verdict', 'reason', 'policy', 'rule', 'audit', 'mtls', 'bytesSent', 'bytesReceived', 'durationMs', 'count', 'traceId', 'traffic']);
const DIRECTIONS = new Set(['outbound', 'inbound', 'egress']);
const VERDICTS = new Set(['allowed', 'denied', 'audit', 'error']);
const PROTOCOLS = new Set<string>(FLOW_PROTOCOLS);
const MAX_TEXT = 2048;

const isText = (v: unknown, max = MAX_TEXT): v is string => typeof v === 'string' && v.length <= max;
const TRACE_ID = /^[0-9a-f]{32}$/;
/** A valid W3C trace id: 32 lowercase hex digits, not all zero. */
export const isTraceId = (v: unknown): v is string => typeof v === 'string' && TRACE_ID.test(v) && v !== '00000000000000000000000000000000';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** What flowProblem accepts for direction, protocol and verdict (agent/flows/wire.ts writes records by them). */
export const FLOW_ENUMS: { readonly directions: ReadonlySet<string>; readonly protocols: ReadonlySet<string>; readonly verdicts: ReadonlySet<string> } = {
  directions: DIRECTIONS,
  protocols: PROTOCOLS,
  verdicts: VERDICTS,
};

/** How many own enumerable keys `o` has (Object.keys(o).length without the array). */
function ownKeys(o: Record<string, unknown>): number {
  let n = 0;
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k)) n++;
  return n;
}

function endpointProblem(v: unknown, at: string): string | undefined {
  if (!isRecord(v)) return `${at} must be an object`;
  // for…in over own keys: the same keys in the same order as Object.entries, with no array made.
  for (const k in v) {
    if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
    const x = v[k];
    if (k === 'port') {
      if (!(isCount(x) && x <= 65535)) return `${at}.port must be a port`;
    } else if (k === 'ip' || k === 'workload' || k === 'namespace' || k === 'identity' || k === 'host') {
      if (!isText(x, 512)) return `${at}.${k} must be a string`;
    } else return `${at} has unknown field ${JSON.stringify(k.slice(0, 64))}`;
  }
  if (!isText(v.ip, 64)) return `${at}.ip is required`;
  return undefined;
}

/**
 * Why `v` is not a FlowRecord, or undefined: the collector's boundary check for what agents
 * send (unknown fields, wrong types and oversized strings are refused, not stored).
 */
export function flowProblem(v: unknown): string | undefined {
  if (!isRecord(v)) return 'must be an object';
  for (const k in v) if (Object.prototype.hasOwnProperty.call(v, k) && !FIELDS.has(k)) return `unknown field ${JSON.stringify(k.slice(0, 64))}`;
  if (!isText(v.time, 40) || Number.isNaN(Date.parse(v.time))) return 'time must be an ISO 8601 time';
  if (!isText(v.node, 63)) return 'node must be a string';
  if (!DIRECTIONS.has(v.direction as string)) return 'direction must be outbound, inbound or egress';
  if (!PROTOCOLS.has(v.protocol as string)) return `protocol must be ${FLOW_PROTOCOLS.join(', ')}`;
  if (!VERDICTS.has(v.verdict as string)) return 'verdict must be allowed, denied, audit or error';
  if (!isText(v.reason, 128)) return 'reason must be a string';
  if (v.policy !== undefined && !isText(v.policy, 4096)) return 'policy must be a string';
  if (v.rule !== undefined && !isCount(v.rule)) return 'rule must be a non-negative integer';
  if (typeof v.mtls !== 'boolean') return 'mtls must be true or false';
  if (!isCount(v.bytesSent)) return 'bytesSent must be a non-negative integer';
  if (!isCount(v.bytesReceived)) return 'bytesReceived must be a non-negative integer';
  if (!isCount(v.durationMs)) return 'durationMs must be a non-negative integer';
  if (v.count !== undefined && !(isCount(v.count) && v.count >= 1)) return 'count must be a positive integer';
  if (v.traceId !== undefined && !isTraceId(v.traceId)) return 'traceId must be 32 lowercase hex digits, not all zero';
  const src = endpointProblem(v.source, 'source');
  if (src) return src;
  const dst = endpointProblem(v.destination, 'destination');
  if (dst) return dst;
  if (v.http !== undefined) {
    const h = v.http;
    if (!isRecord(h) || !isText(h.method, 32) || !isText(h.path, 8192) || !(isCount(h.status) && h.status <= 999) || !(h.grpcStatus === undefined || (isCount(h.grpcStatus) && h.grpcStatus <= 99)) || ownKeys(h) !== (h.grpcStatus === undefined ? 3 : 4)) {
      return 'http must be {method, path, status[, grpcStatus]}';
    }
  }
  if (v.dns !== undefined) {
    const d = v.dns;
    const answersOk = isRecord(d) && Array.isArray(d.answers) && d.answers.length <= MAX_DNS_ANSWERS && d.answers.every((a) => isText(a, 1024));
    if (!isRecord(d) || !isText(d.type, 16) || !isText(d.rcode, 16) || !answersOk || ownKeys(d) !== 3) return 'dns must be {type, rcode, answers}';
  }
  if (v.audit !== undefined) {
    const a = v.audit;
    if (!isRecord(a) || !isText(a.policy, 512) || !isCount(a.rule) || ownKeys(a) !== 2) return 'audit must be {policy, rule}';
  }
  if (v.traffic !== undefined) {
    const t = v.traffic;
    if (!isRecord(t) || !isText(t.route, 512) || !isCount(t.rule) || !isText(t.backend, 512) || !isCount(t.attempts) || ownKeys(t) !== 4) {
      return 'traffic must be {route, rule, backend, attempts}';
    }
  }
  return undefined;
}
