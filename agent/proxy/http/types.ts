/** The data the HTTP front hands to its caller: the request authz sees, the decision, the record. */
import type { OutgoingHttpHeaders } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { RequestEdit } from '../../../common/routes/filters';
import type { Logger } from '../../../common/log';
import type { TraceHop } from '../../tracing/trace-context';
import type { HttpLimits } from './limits';

/** A request as authz sees it, after the one normalization. */
export interface NormalizedRequest {
  method: string;
  /** Normalized path, without the query. Case is kept (paths are case-sensitive). */
  path: string;
  /** '' or '?…' exactly as sent; never used for path matching. */
  query: string;
  /** Lowercased, trailing dot removed, port kept if sent. */
  host: string;
  /**
   * Lowercase name → every value in arrival order: the end-to-end headers that are
   * forwarded (hop-by-hop and stripped identity headers removed), plus `host`.
   * The mesh's own setHeaders are not in it.
   */
  headers: Record<string, string[]>;
  /** '1.0' or '1.1' */
  httpVersion: string;
}

export interface HttpDecision {
  allowed: boolean;
  /** not allowed: answer with this status (and its generic body) instead of Istio's 403, e.g. 404 when no route matches */
  status?: number;
  /** not allowed, a gRPC call (HTTP/2): answer trailers-only with this grpc-status instead of gRPC's mapping of `status` (a fault's gRPC abort) */
  grpcStatus?: number;
  /** not allowed by the mesh itself, not by a policy (a fault abort, no route: error; a route's redirect: allowed): the record's verdict, and no per-request "denied" line */
  verdict?: 'error' | 'allowed';
  /** allowed: the upstream is chosen per attempt, with deadlines and retries (the source node's routing, agent/traffic) */
  dispatch?: Dispatch;
  /**
   * Changes to the forwarded request (allowed) and to the answer (a route's filters): `response`
   * applies to the relayed response and to the proxy's own answer to this request (a timeout, no
   * endpoint, a fault's abort, a redirect…; not the headers that answer keeps, header-edit.ts
   * ownAnswerOps, and not a destination's refusal)
   */
  edit?: RequestEdit;
  /** not allowed: the proxy's answer (`status`, a 3xx) carries this Location (a route's RequestRedirect) */
  location?: string;
  /** allowed: a copy of the request goes elsewhere too, its answer discarded (a route's RequestMirror); given the request as forwarded before `edit` */
  mirror?: (source: MirrorSource) => MirrorTap | undefined;
  /** anything else the caller wants echoed into the record */
  [k: string]: unknown;
}

/** A request as the front forwards it, before a route's edit: what a mirrored copy is made from. */
export type MirrorSource =
  | { readonly proto: 'h1'; readonly method: string; readonly target: string; readonly lines: readonly string[] }
  | { readonly proto: 'h2'; readonly headers: Readonly<OutgoingHttpHeaders> };

/** A mirrored copy's body, fed as the request's arrives; sent once whole (end), or dropped (abort). */
export interface MirrorTap {
  data(chunk: Buffer): void;
  end(): void;
  /** the request ended without its whole body: the copy is not sent (counted) */
  abort(): void;
}

/** Where one attempt of a request goes: the shared pool of that name, or a new connection. */
export interface UpstreamTarget {
  readonly pool: string;
  /** rejects with an error carrying `refusal` when the destination refused (its policy, its limit) */
  connect(): Promise<Duplex>;
}

/** The destination refused an attempt: a final answer, given to the client with this status, never retried. */
export interface AttemptRefusal {
  status: number;
  verdict: 'denied' | 'error';
  /** the record's reason, e.g. `denied-by-destination`, `pod-connection-limit` */
  reason: string;
}

/** How one attempt ended: a response head (status), or a failure before one (status 0). */
export interface AttemptOutcome {
  status: number;
  /** the failure's code: ECONNRESET, tunnel-failed…, or backend-timeout */
  error: string | undefined;
  /** an upstream connection was there (a failure with none never reached the application) */
  connected: boolean;
  /** that connection had carried earlier requests (a reset may be a stale keep-alive) */
  reused: boolean;
  /** ms from sending the attempt's request on a connected upstream (else from the attempt's start) to its outcome */
  ms: number;
  /** the destination refused it: the endpoint was reached and is healthy, the answer is final */
  refusal?: AttemptRefusal;
}

/**
 * Per-request dispatch: the front asks next() for each attempt's upstream, reports each
 * outcome to settle(), and calls finish() once when the exchange ends, whatever happened.
 */
export interface Dispatch {
  /** deadline of the whole request in ms (0: none): 504 when it passes before a response */
  readonly timeoutMs: number;
  /** deadline of one attempt in ms (0: none) */
  readonly attemptTimeoutMs: number;
  /** request body bytes kept to send again on a retry (0: a request with a body is never retried) */
  readonly replayBytes: number;
  /** the first attempt waits this long (an injected delay), within the request's deadline */
  readonly delayMs?: number;
  /** the upstream of the next attempt; undefined when none is left (503) */
  next(): UpstreamTarget | undefined;
  /** headers the mesh adds to the relayed answer (a sticky session's cookie), asked once when it is relayed */
  responseHeaders?(): readonly (readonly [string, string])[] | undefined;
  /** ms to wait before another attempt, or undefined to give the client this outcome */
  settle(o: AttemptOutcome, replayable: boolean): number | undefined;
  finish(): void;
}

export interface HttpRecord {
  method: string;
  path: string;
  host: string;
  /** Status the client got; 0 when it got none (connection closed first). */
  status: number;
  /** a gRPC call's grpc-status as the client got it (its trailers, or a trailers-only answer), when it got one */
  grpcStatus?: number;
  decision?: HttpDecision;
  /** Why the front refused the request before authz, e.g. 'content-length-with-transfer-encoding'. */
  rejected?: string;
  /** Request body bytes sent to the upstream (for a WebSocket: bytes client → upstream). */
  bytesSent: number;
  /** Response body bytes received from the upstream (for a WebSocket: bytes upstream → client). */
  bytesReceived: number;
  durationMs: number;
  error?: string;
  /** the request's place in a trace, when the session traces */
  trace?: TraceHop;
  /** ms from the request's arrival to its forwarding upstream (when it was forwarded) */
  forwardedAfterMs?: number;
}

/** Starts a hop's trace from a request's headers (agent/tracing/tracer.ts). */
export interface HopTracer {
  begin(headers: Readonly<Record<string, readonly string[]>>): TraceHop;
}

/** What belongs to one downstream connection: who decides, where it goes, where records go. */
export interface HttpSession {
  /** May be async (egress resolves DNS). A throw or rejection denies the request. */
  authorize(req: NormalizedRequest): HttpDecision | Promise<HttpDecision>;
  /** Opens the upstream connection (the caller decides address, source IP, TLS…). */
  connect(): Promise<Duplex>;
  /**
   * Upstream connections are kept alive between requests. Sessions of one front that name the
   * same pool share them (the destination side names the pod's address: every connection to it
   * is the same); without a name each downstream connection keeps its own, closed with it.
   */
  pool?: string;
  /** Headers the mesh sets on every forwarded request; any client-supplied copy is removed first. */
  setHeaders?: Record<string, string>;
  /** Once per request, finished or refused. */
  onRecord(r: HttpRecord): void;
  /** Read and continue (or start) the trace of each request; its record carries it. */
  tracer?: HopTracer;
  /**
   * Takes connections an `Upgrade: h2c` request switches to HTTP/2 (the routed path): the engine
   * answers 101 and hands over the connection, the bytes after the request and the request, which
   * is then stream 1. Without it such a request is an upgrade like any other.
   */
  upgradeH2c?(conn: Duplex, head: Buffer, req: H2cRequest): void;
}

/** An `Upgrade: h2c` request as the HTTP/2 side serves it (stream 1). */
export interface H2cRequest {
  method: string;
  /** the normalized path and query */
  target: string;
  /** Host as sent */
  authority: string;
  /** the forwarded headers: name, value, name, value… */
  headers: readonly string[];
}

/**
 * One front serves many connections: limits, header stripping and the logger are shared; the
 * session (authorize, connect, setHeaders, onRecord) is given here as the default for every
 * connection, or per connection to `handle()`.
 */
export interface HttpFrontOptions extends Partial<HttpSession> {
  limits?: Partial<HttpLimits>;
  /** Extra client headers to remove (lowercase); a trailing '*' makes a prefix, e.g. 'x-palisade-*'. */
  stripHeaders?: string[];
  /** a place for one more idle connection in the shared pool of that name (its release), or undefined: closed instead (pool.ts) */
  admitIdle?: (pool: string) => (() => void) | undefined;
  log: Logger;
}
