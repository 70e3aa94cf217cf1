/**
 * gRPC's status codes by name (https://grpc.github.io/grpc/core/md_doc_statuscodes.html), as
 * Istio's HTTPFaultInjection.Abort `grpcStatus` names them (`UNAVAILABLE`, not 14), and the HTTP
 * status a plain HTTP client is answered for one (grpc-gateway's mapping). Pure.
 */
export const GRPC_CODES: Readonly<Record<string, number>> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

/** index: gRPC code */
const HTTP_OF_GRPC = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

/** The HTTP status standing for gRPC code `code` (500 for one outside 0–16). */
export function httpStatusOfGrpc(code: number): number {
  return HTTP_OF_GRPC[code] ?? 500;
}
