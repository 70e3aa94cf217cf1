/**
 * Traffic metrics from flow records, with Istio's standard names and labels
 * (https://istio.io/latest/docs/reference/config/metrics/), plus palisade_policy_verdicts_total.
 * What is counted when, which bytes are which, where the labels differ from Istio's and how the
 * number of series is bounded: docs/architecture.md "Metrics".
 */
import type { Registry } from 'prom-client';
import type { FlowEndpoint, FlowRecord, FlowSink } from '../../common/flow';
import { newHistogram, observe, ReadCounter, ReadHistogram, type HistogramData, type Labels } from './series';

/** Istio's default buckets for istio_request_duration_milliseconds. */
export const DURATION_BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Istio's default buckets for istio_request_bytes / istio_response_bytes. */
export const BYTES_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

/** Labels of every istio_* metric here; HTTP metrics add response_code. */
export const TRAFFIC_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;
export const VERDICT_LABELS = ['direction', 'verdict', 'reason', 'policy'] as const;

const DEFAULT_MAX_SERIES = 10_000;
const UNKNOWN = 'unknown';
const OVERFLOW = 'overflow';
/** A reason is a word like `denied-by-policy` or `ECONNRESET`; anything else reads "other". */
const REASON_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/** `namespace/name` */
const POLICY_RE = /^[a-z0-9]([-a-z0-9.]{0,252})?\/[a-z0-9]([-a-z0-9.]{0,252})?$/;
/** Endpoint ids fit 14 bits, so a (source, destination) pair is one small integer. */
const MAX_ENDPOINTS = 1 << 14;
const FLAGS = ['-', 'DENY', 'CONNECT', 'UO'] as const;
const DIRECTIONS = ['inbound', 'outbound', 'egress'] as const;
const VERDICTS = ['allowed', 'denied', 'audit', 'error'] as const;

/** One side of a flow as labels: workload, namespace, principal. */
interface Endpoint {
  id: number;
  workload: string;
  namespace: string;
  identity: string;
}

interface HttpSeries {
  labels: Labels;
  requests: number;
  /** gRPC calls among the requests, by grpc-status (istio_requests_total's grpc_response_status) */
  grpc: Map<number, CountSeries> | undefined;
  grpcCalls: number;
  duration: HistogramData;
  requestBytes: HistogramData;
  responseBytes: HistogramData;
}

interface TcpSeries {
  labels: Labels;
  opened: number;
  closed: number;
  sent: number;
  received: number;
}

interface CountSeries {
  labels: Labels;
  value: number;
}

/** The series of one (source, destination) pair, by (reporter, flags, mTLS) slot. */
interface Pair {
  src: Endpoint;
  dst: Endpoint;
  tcp: Array<TcpSeries | undefined>;
  /** by status code */
  http: Array<Map<number, HttpSeries> | undefined>;
}

export interface FlowMetricsOptions {
  /** Label sets per metric family (default 10 000). */
  maxSeries?: number;
}

/**
 * The hot path finds its series without building a string: workload, namespace and identity
 * strings come from the same workload objects flow after flow, so V8 has their hashes cached and
 * a few Map lookups name the endpoint; a pair of endpoint ids is one small integer.
 */
export class FlowMetrics implements FlowSink {
  /** Flow records seen (palisade_flows_produced_total). */
  produced = 0;
  private readonly maxSeries: number;
  private readonly endpoints = new Map<string, Map<string, Map<string, Endpoint>>>();
  private endpointCount = 0;
  private readonly overflowEndpoint: Endpoint = { id: 0, workload: OVERFLOW, namespace: OVERFLOW, identity: OVERFLOW };
  private readonly pairs = new Map<number, Pair>();
  private readonly httpSeries: HttpSeries[] = [];
  private readonly tcpSeries: TcpSeries[] = [];
  private httpOverflow: HttpSeries | undefined;
  private tcpOverflow: TcpSeries | undefined;
  /** policy → reason → series by direction × verdict */
  private readonly verdicts = new Map<string, Map<string, Array<CountSeries | undefined>>>();
  private readonly verdictSeries: CountSeries[] = [];
  private readonly verdictByLabels = new Map<string, CountSeries>();

  constructor(opts: FlowMetricsOptions = {}) {
    this.maxSeries = opts.maxSeries ?? DEFAULT_MAX_SERIES;
  }

  record(flow: FlowRecord): void {
    this.produced++;
    // The per-pod filters' packet summaries: palisade_dropped_packets_total counts them, not the proxy's traffic metrics.
    if (flow.protocol === 'udp' || flow.protocol === 'icmp' || flow.protocol === 'arp' || flow.protocol === 'other') return;
    // A DNS query is neither a request nor a connection of these families (agent/dns/ counts its own).
    if (flow.protocol === 'dns') return;
    // A mirrored copy is not a request of the client's (Istio's source reporter does not count shadows either): palisade_traffic_mirrors_total counts it.
    if (flow.reason === 'mirror') return;
    const src = this.endpoint(flow.source);
    const dst = this.endpoint(flow.destination);
    let key = src.id * MAX_ENDPOINTS + dst.id;
    let pair = this.pairs.get(key);
    if (pair === undefined) {
      // Pairs are bounded like series; past that, the pair of overflow endpoints (key 0).
      const full = this.pairs.size >= 2 * this.maxSeries;
      if (full) key = 0;
      pair = full ? this.pairs.get(0) : undefined;
      if (pair === undefined) {
        const o = this.overflowEndpoint;
        pair = { src: full ? o : src, dst: full ? o : dst, tcp: new Array(12).fill(undefined), http: new Array(12).fill(undefined) };
        this.pairs.set(key, pair);
      }
    }
    // Each field is read once: records built with object spread each have their own hidden
    // class, so every property read is a slow lookup.
    const direction = flow.direction;
    const verdict = flow.verdict;
    const flags = verdict === 'denied' ? 1 : verdict === 'error' ? connectFlag(flow.reason) : 0;
    const slot = (flags * 2 + (flow.mtls ? 1 : 0)) * 2 + (direction === 'inbound' ? 1 : 0);
    if (flow.protocol === 'http') {
      const status = flow.http === undefined ? 0 : flow.http.status | 0;
      let byStatus = pair.http[slot];
      if (byStatus === undefined) byStatus = pair.http[slot] = new Map();
      let s = byStatus.get(status);
      if (s === undefined) {
        s = this.newHttp(flow, pair, flags, status);
        byStatus.set(status, s);
      }
      s.requests++;
      const grpc = flow.http?.grpcStatus;
      if (grpc !== undefined) this.countGrpc(s, grpc);
      observe(s.duration, DURATION_BUCKETS_MS, flow.durationMs);
      observe(s.requestBytes, BYTES_BUCKETS, flow.bytesSent);
      observe(s.responseBytes, BYTES_BUCKETS, flow.bytesReceived);
    } else {
      let s = pair.tcp[slot];
      if (s === undefined) s = pair.tcp[slot] = this.newTcp(flow, pair, flags);
      // A refusal summary stands for `count` connections (agent/proxy/refusals.ts).
      const n = flow.count ?? 1;
      s.opened += n;
      s.closed += n;
      s.received += flow.bytesSent;
      s.sent += flow.bytesReceived;
    }
    // Outbound records carry no decision of this node: the destination's agent decides.
    if (direction !== 'outbound') this.verdict(flow, direction, verdict).value += flow.count ?? 1;
  }

  /** The metric families, registered in `registry`. */
  register(registry: Registry): void {
    const http = (): HttpSeries[] => this.httpSeries;
    const tcp = (): TcpSeries[] => this.tcpSeries;
    new ReadCounter('istio_requests_total', 'Requests handled by the node proxy (one per HTTP request flow record); gRPC calls by grpc_response_status', () => requestCounts(http())).register(registry);
    new ReadHistogram('istio_request_duration_milliseconds', 'Duration of HTTP requests, in milliseconds', DURATION_BUCKETS_MS, () =>
      map(http(), (s) => ({ labels: s.labels, data: s.duration })),
    ).register(registry);
    new ReadHistogram('istio_request_bytes', 'HTTP request body sizes, in bytes', BYTES_BUCKETS, () =>
      map(http(), (s) => ({ labels: s.labels, data: s.requestBytes })),
    ).register(registry);
    new ReadHistogram('istio_response_bytes', 'HTTP response body sizes, in bytes', BYTES_BUCKETS, () =>
      map(http(), (s) => ({ labels: s.labels, data: s.responseBytes })),
    ).register(registry);
    new ReadCounter('istio_tcp_connections_opened_total', 'TCP connections opened (counted when the connection closes: flows are recorded at close)', () =>
      map(tcp(), (s) => ({ labels: s.labels, value: s.opened })),
    ).register(registry);
    new ReadCounter('istio_tcp_connections_closed_total', 'TCP connections closed', () => map(tcp(), (s) => ({ labels: s.labels, value: s.closed }))).register(
      registry,
    );
    new ReadCounter('istio_tcp_sent_bytes_total', 'Bytes sent during response (destination to client) on TCP connections', () =>
      map(tcp(), (s) => ({ labels: s.labels, value: s.sent })),
    ).register(registry);
    new ReadCounter('istio_tcp_received_bytes_total', 'Bytes received during request (client to destination) on TCP connections', () =>
      map(tcp(), (s) => ({ labels: s.labels, value: s.received })),
    ).register(registry);
    new ReadCounter(
      'palisade_policy_verdicts_total',
      'Authorization decisions of this node (inbound and egress flow records) by verdict, reason and deciding policy',
      () => this.verdictSeries,
    ).register(registry);
  }

  private endpoint(e: FlowEndpoint): Endpoint {
    const workload = e.workload ?? UNKNOWN;
    const namespace = e.namespace ?? UNKNOWN;
    const identity = e.identity ?? UNKNOWN;
    let byNs = this.endpoints.get(workload);
    if (byNs === undefined) {
      if (this.endpointCount >= MAX_ENDPOINTS - 1) return this.overflowEndpoint;
      this.endpoints.set(workload, (byNs = new Map()));
    }
    let byId = byNs.get(namespace);
    if (byId === undefined) {
      if (this.endpointCount >= MAX_ENDPOINTS - 1) return this.overflowEndpoint;
      byNs.set(namespace, (byId = new Map()));
    }
    let ep = byId.get(identity);
    if (ep === undefined) {
      if (this.endpointCount >= MAX_ENDPOINTS - 1) return this.overflowEndpoint;
      ep = { id: ++this.endpointCount, workload, namespace, identity };
      byId.set(identity, ep);
    }
    return ep;
  }

  private newHttp(flow: FlowRecord, pair: Pair, flags: number, status: number): HttpSeries {
    if (this.httpSeries.length >= this.maxSeries || pair.src.id === 0 || pair.dst.id === 0) {
      if (this.httpOverflow === undefined) this.httpSeries.push((this.httpOverflow = newHttpSeries(overflowLabels([...TRAFFIC_LABELS, 'response_code']))));
      return this.httpOverflow;
    }
    const s = newHttpSeries({ ...trafficLabels(flow, pair, 'http', flags), response_code: String(status) });
    this.httpSeries.push(s);
    return s;
  }

  /** One more gRPC call answered `grpcStatus` in series `s` (at most 100 statuses: 0–99, flowProblem's bound). */
  private countGrpc(s: HttpSeries, grpcStatus: number): void {
    s.grpcCalls++;
    let byStatus = s.grpc;
    if (byStatus === undefined) byStatus = s.grpc = new Map();
    let c = byStatus.get(grpcStatus);
    if (c === undefined) byStatus.set(grpcStatus, (c = { labels: { ...s.labels, grpc_response_status: String(grpcStatus) }, value: 0 }));
    c.value++;
  }

  private newTcp(flow: FlowRecord, pair: Pair, flags: number): TcpSeries {
    if (this.tcpSeries.length >= this.maxSeries || pair.src.id === 0 || pair.dst.id === 0) {
      if (this.tcpOverflow === undefined) this.tcpSeries.push((this.tcpOverflow = { labels: overflowLabels(TRAFFIC_LABELS), opened: 0, closed: 0, sent: 0, received: 0 }));
      return this.tcpOverflow;
    }
    const s: TcpSeries = { labels: trafficLabels(flow, pair, 'tcp', flags), opened: 0, closed: 0, sent: 0, received: 0 };
    this.tcpSeries.push(s);
    return s;
  }

  private verdict(flow: FlowRecord, direction: FlowRecord['direction'], verdict: FlowRecord['verdict']): CountSeries {
    const rawPolicy = flow.policy;
    const reason = flow.reason;
    const policy = rawPolicy ?? 'none';
    const slot = DIRECTIONS.indexOf(direction) * 4 + VERDICTS.indexOf(verdict);
    let byReason = this.verdicts.get(policy);
    let slots = byReason?.get(reason);
    let s = slots?.[slot];
    if (s !== undefined) return s;
    // First time for this (policy, reason, direction, verdict): labels checked, then cached —
    // only for values that are their own label, so what is cached stays bounded.
    const policyLabel = rawPolicy === undefined ? 'none' : POLICY_RE.test(rawPolicy) ? rawPolicy : 'other';
    const reasonLabel = REASON_RE.test(reason) ? reason : 'other';
    const labels = { direction, verdict, reason: reasonLabel, policy: policyLabel };
    const key = `${labels.direction}\u0000${labels.verdict}\u0000${reasonLabel}\u0000${policyLabel}`;
    s = this.verdictByLabels.get(key);
    if (s === undefined) {
      if (this.verdictSeries.length >= this.maxSeries) return this.verdictOverflow();
      s = { labels, value: 0 };
      this.verdictByLabels.set(key, s);
      this.verdictSeries.push(s);
    }
    if (policyLabel === policy && reasonLabel === reason && slot >= 0) {
      if (byReason === undefined) this.verdicts.set(policy, (byReason = new Map()));
      if (slots === undefined) byReason.set(reason, (slots = new Array(12).fill(undefined)));
      slots[slot] = s;
    }
    return s;
  }

  private verdictOverflow(): CountSeries {
    const key = '\u0001overflow';
    let s = this.verdictByLabels.get(key);
    if (s === undefined) {
      s = { labels: overflowLabels(VERDICT_LABELS), value: 0 };
      this.verdictByLabels.set(key, s);
      this.verdictSeries.push(s);
    }
    return s;
  }
}

/** istio_requests_total: a series' requests that are not gRPC calls, and its calls by grpc-status (Istio's grpc_response_status label). */
function requestCounts(series: readonly HttpSeries[]): CountSeries[] {
  const out: CountSeries[] = [];
  for (const s of series) {
    if (s.requests > s.grpcCalls || s.grpc === undefined) out.push({ labels: s.labels, value: s.requests - s.grpcCalls });
    if (s.grpc !== undefined) for (const c of s.grpc.values()) out.push(c);
  }
  return out;
}

function newHttpSeries(labels: Labels): HttpSeries {
  return {
    labels,
    requests: 0,
    grpc: undefined,
    grpcCalls: 0,
    duration: newHistogram(DURATION_BUCKETS_MS),
    requestBytes: newHistogram(BYTES_BUCKETS),
    responseBytes: newHistogram(BYTES_BUCKETS),
  };
}

function overflowLabels(names: readonly string[]): Labels {
  return Object.fromEntries(names.map((n) => [n, OVERFLOW]));
}

function trafficLabels(flow: FlowRecord, pair: Pair, protocol: 'http' | 'tcp', flags: number): Labels {
  const { src, dst } = pair;
  // Palisade has no Service objects: a workload is its own destination service.
  const known = dst.workload !== UNKNOWN && dst.namespace !== UNKNOWN;
  return {
    reporter: flow.direction === 'inbound' ? 'destination' : 'source',
    source_workload: src.workload,
    source_workload_namespace: src.namespace,
    source_principal: src.identity,
    destination_workload: dst.workload,
    destination_workload_namespace: dst.namespace,
    destination_principal: dst.identity,
    destination_service: known ? `${dst.workload}.${dst.namespace}` : UNKNOWN,
    destination_service_name: dst.workload,
    destination_service_namespace: dst.namespace,
    request_protocol: protocol,
    response_flags: FLAGS[flags]!,
    connection_security_policy: flow.mtls ? 'mutual_tls' : 'none',
  };
}

/**
 * Envoy/ztunnel-style response flags, as an index into FLAGS: "-" (0), DENY (1, refused by
 * policy), CONNECT (2, upstream unreachable: the flag of an error with this reason), UO (3, upstream
 * overflow: a DestinationRule's connectionPool was full).
 */
function connectFlag(reason: string): number {
  if (reason === 'upstream-overflow') return 3;
  return reason === 'upstream-failed' || reason === 'tunnel-failed' || reason.startsWith('tunnel-refused') ? 2 : 0;
}

function map<T, U>(items: readonly T[], fn: (t: T) => U): U[] {
  return items.map(fn);
}
