/**
 * A flow record: one connection or one HTTP request the mesh carried or refused. Built by the
 * agent's proxy; written to the access log, counted in the metrics and streamed to the collector
 * (docs/architecture.md "Flows"). Every authorization decision is explained by `reason` and
 * `policy`.
 */
import { isRecord } from './record';

export type FlowDirection = 'outbound' | 'inbound' | 'egress';
export type FlowVerdict = 'allowed' | 'denied' | 'audit' | 'error';
/** `udp`, `icmp`, `arp`, `other`: packets the per-pod filters let through or dropped, summarized per interval. */
export type FlowProtocol = 'tcp' | 'tls' | 'http' | 'udp' | 'icmp' | 'arp' | 'other';
export const FLOW_PROTOCOLS: readonly FlowProtocol[] = ['tcp', 'tls', 'http', 'udp', 'icmp', 'arp', 'other'];

export interface FlowEndpoint {
  ip: string;
  port?: number;
  workload?: string;
  namespace?: string;
  identity?: string;
  /** the name the client asked for (TLS SNI or HTTP Host), when known */
  host?: string;
}

export interface FlowRecord {
  time: string;
  node: string;
  direction: FlowDirection;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  protocol: FlowProtocol;
  http?: { method: string; path: string; status: number };
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
  /** A summary of this many packets (the kernel's per-interval counts); absent: one connection or request. */
  count?: number;
}

/** What a flow record is built from; `time` is taken when it is built (the flow's end). */
export type FlowFields = Omit<FlowRecord, 'time'>;

/**
 * Every flow record the proxy makes is built here, always with the same fields in the same order
 * (absent ones undefined, which JSON drops): every sink then reads objects of one shape, which
 * V8 keeps fast. Spreading partial records together gives nearly every record its own shape.
 */
export function flowRecord(f: FlowFields): FlowRecord {
  return {
    time: new Date().toISOString(),
    node: f.node,
    direction: f.direction,
    source: f.source,
    destination: f.destination,
    protocol: f.protocol,
    http: f.http,
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
  };
}

/** The flow verdict of an authorization decision. */
export function verdictOf(v: { allowed: boolean; audit?: unknown }): FlowVerdict {
  return v.allowed ? (v.audit ? 'audit' : 'allowed') : 'denied';
}

/** Where finished flows go (the access log now; the collector reporter later). */
export interface FlowSink {
  record(flow: FlowRecord): void;
}

const DIRECTIONS = new Set(['outbound', 'inbound', 'egress']);
const VERDICTS = new Set(['allowed', 'denied', 'audit', 'error']);
const PROTOCOLS = new Set<string>(FLOW_PROTOCOLS);
const MAX_TEXT = 2048;

const isText = (v: unknown, max = MAX_TEXT): v is string => typeof v === 'string' && v.length <= max;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function endpointProblem(v: unknown, at: string): string | undefined {
  if (!isRecord(v)) return `${at} must be an object`;
  for (const [k, x] of Object.entries(v)) {
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
  const allowed = new Set(['time', 'node', 'direction', 'source', 'destination', 'protocol', 'http', 'verdict', 'reason', 'policy', 'rule', 'audit', 'mtls', 'bytesSent', 'bytesReceived', 'durationMs', 'count']);
  for (const k of Object.keys(v)) if (!allowed.has(k)) return `unknown field ${JSON.stringify(k.slice(0, 64))}`;
  if (!isText(v.time, 40) || Number.isNaN(Date.parse(v.time))) return 'time must be an ISO 8601 time';
  if (!isText(v.node, 63)) return 'node must be a string';
  if (!DIRECTIONS.has(v.direction as string)) return 'direction must be outbound, inbound or egress';
  if (!PROTOCOLS.has(v.protocol as string)) return `protocol must be ${FLOW_PROTOCOLS.join(', ')}`;
  if (!VERDICTS.has(v.verdict as string)) return 'verdict must be allowed, denied, audit or error';
  if (!isText(v.reason, 128)) return 'reason must be a string';
  if (v.policy !== undefined && !isText(v.policy, 4096)) return 'policy must be a string';
  if (v.rule !== undefined && !isCount(v.rule)) return 'rule must be a non-negative integer';
  if (typeof v.mtls !== 'boolean') return 'mtls must be true or false';
  for (const k of ['bytesSent', 'bytesReceived', 'durationMs'] as const) if (!isCount(v[k])) return `${k} must be a non-negative integer`;
  if (v.count !== undefined && !(isCount(v.count) && v.count >= 1)) return 'count must be a positive integer';
  const src = endpointProblem(v.source, 'source');
  if (src) return src;
  const dst = endpointProblem(v.destination, 'destination');
  if (dst) return dst;
  if (v.http !== undefined) {
    const h = v.http;
    if (!isRecord(h) || !isText(h.method, 32) || !isText(h.path, 8192) || !(isCount(h.status) && h.status <= 999) || Object.keys(h).length !== 3) {
      return 'http must be {method, path, status}';
    }
  }
  if (v.audit !== undefined) {
    const a = v.audit;
    if (!isRecord(a) || !isText(a.policy, 512) || !isCount(a.rule) || Object.keys(a).length !== 2) return 'audit must be {policy, rule}';
  }
  return undefined;
}
