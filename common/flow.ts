/**
 * A flow record: one connection or one HTTP request the mesh carried or refused (DESIGN.md
 * "Flows"). Built by the agent's proxy, logged as an access log line, and (later) streamed to
 * the collector. Every authorization decision is explained by `reason` and `policy`.
 */
export type FlowDirection = 'outbound' | 'inbound' | 'egress';
export type FlowVerdict = 'allowed' | 'denied' | 'audit' | 'error';
export type FlowProtocol = 'tcp' | 'tls' | 'http';

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
}

/** Where finished flows go (the access log now; the collector reporter later). */
export interface FlowSink {
  record(flow: FlowRecord): void;
}
