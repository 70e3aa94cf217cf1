/**
 * gRPC's few wire rules the proxy needs, pure and table-tested: what a gRPC call is, its
 * `grpc-timeout`, the trailers-only answer the proxy gives itself, and the HTTP status → gRPC
 * status mapping of gRPC's "HTTP to gRPC Status Code Mapping" (for answers the route decides in
 * HTTP terms: a fault's abort status, no matching rule).
 */
import { DENIED_BODY } from '../http/refusal';

export const GRPC = {
  OK: 0,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** Whether a request is a gRPC call: its content-type is application/grpc, alone or with a subtype. */
export function isGrpc(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const ct = contentType.toLowerCase();
  return ct === 'application/grpc' || ct.startsWith('application/grpc+') || ct.startsWith('application/grpc;');
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/**
 * `grpc-timeout` in ms (gRPC's HTTP/2 protocol: 1 to 8 ASCII digits and a unit H M S m u n), or
 * undefined when absent or malformed (then the call has no deadline of its own, as gRPC servers
 * treat it). A positive timeout below 1 ms is 1 ms: it still cuts the call.
 */
export function parseGrpcTimeout(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^([0-9]{1,8})([HMSmun])$/.exec(v);
  if (m === null) return undefined;
  const ms = Number(m[1]) * TIMEOUT_UNIT_MS[m[2]!]!;
  return ms === 0 ? 0 : Math.max(1, Math.ceil(ms));
}

/** gRPC's mapping of an HTTP status the proxy decided to a gRPC status. */
export function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC.INTERNAL;
    case 401:
      return GRPC.UNAUTHENTICATED;
    case 403:
      return GRPC.PERMISSION_DENIED;
    case 404:
      return GRPC.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC.UNAVAILABLE;
    default:
      return GRPC.UNKNOWN;
  }
}

/** `grpc-message` is percent-encoded: everything outside printable ASCII, and `%` itself. */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const MESSAGES: Record<number, string> = {
  [GRPC.DEADLINE_EXCEEDED]: 'deadline exceeded',
  [GRPC.PERMISSION_DENIED]: DENIED_BODY,
  [GRPC.UNIMPLEMENTED]: 'no route for this method',
  [GRPC.UNAVAILABLE]: 'no healthy upstream',
};

/** The headers of a trailers-only answer (one HEADERS frame with END_STREAM): HTTP 200 and the status. */
export function trailersOnly(grpcStatus: number, message = MESSAGES[grpcStatus] ?? 'error'): Record<string, string | number> {
  return { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': encodeGrpcMessage(message) };
}

/**
 * The gRPC status of a trailers-only response (grpc-status in its headers, END_STREAM on them),
 * or undefined. A trailers-only UNAVAILABLE is what a route's retry codes see as 503 (gRPC maps
 * UNAVAILABLE to 503), so the default retry codes retry it, as Envoy's `retry_on: unavailable`.
 */
export function trailersOnlyStatus(headers: Readonly<Record<string, unknown>>, endStream: boolean): number | undefined {
  return endStream ? grpcStatusIn(headers) : undefined;
}

/** The `grpc-status` in trailers (or trailers-only headers): 1 or 2 digits, else undefined (its message is never read). */
export function grpcStatusIn(headers: Readonly<Record<string, unknown>> | undefined): number | undefined {
  const s = headers?.['grpc-status'];
  return typeof s === 'string' && /^[0-9]{1,2}$/.test(s) ? Number(s) : undefined;
}

/** The HTTP status a trailers-only gRPC status counts as for retry codes and the balancer. */
export function retryStatusOf(grpcStatus: number | undefined, httpStatus: number): number {
  return grpcStatus === GRPC.UNAVAILABLE ? 503 : httpStatus;
}
