/**
 * The collector's HTTP API, on the same HTTPS listener as the agent endpoint (collector/server.ts
 * hands it every plain request and the follow upgrade): every request is authenticated first
 * (auth.ts), then its route and method are checked; flow routes are answered here, control routes
 * by control.ts. Routes and refusals: docs/architecture.md "The flow API" and "The control API".
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { API, parseFilterQuery, type FlowFilters, type SinkCounts, type StatsResponse } from '../../common/flows-api';
import { CONTROL_API, CONTROL_POST_READS, CONTROL_WRITES, MAX_CONTROL_BODY_BYTES } from '../../common/control-api';
import { invalidArgument, isPalisadeError, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { TrustRefusals } from '../audit/trust-refusals';
import type { FlowStore } from '../flows/store';
import type { ApiAuth, ApiCaller } from './auth';
import { ControlApi, type ControlDeps } from './control';
import { BodyTooLarge, readBody } from '../../common/read-body';
import { FlowFollowers } from './follow';
import type { CollectorMetrics } from './metrics';
import { errorBody, refuseUpgrade, sendJson, sendJsonSliced, sendText } from './respond';

export interface CollectorApiDeps {
  store: FlowStore;
  auth: ApiAuth;
  metrics: CollectorMetrics;
  log: Logger;
  /** Policies, egress rules, audit log, status (common/control-api.ts). */
  control?: ControlDeps;
  /** each flow sink's counts, for /v1/stats */
  sinks?: () => Record<string, SinkCounts>;
  /** The dashboard (collector/dashboard/): every request under /dashboard, with its own sessions. */
  dashboard?: { owns(path: string): boolean; handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): void };
  /** Where refused callers are recorded (the audit log). */
  refusals?: TrustRefusals;
}

type Route = (typeof API)[keyof typeof API] | (typeof CONTROL_API)[keyof typeof CONTROL_API];
const ROUTES: ReadonlySet<string> = new Set([...Object.values(API), ...Object.values(CONTROL_API)]);
const CONTROL_ROUTES: ReadonlySet<string> = new Set(Object.values(CONTROL_API));
const MAX_URL_LENGTH = 8192;
/** How long encoding a control answer may hold the event loop at once. */
const ANSWER_SLICE_MS = 2;

interface Parsed {
  path: string;
  query: URLSearchParams;
}

function parseUrl(raw: string | undefined): Parsed | undefined {
  if (raw === undefined || raw.length > MAX_URL_LENGTH || !raw.startsWith('/')) return undefined;
  try {
    const u = new URL(raw, 'https://collector.invalid');
    return { path: u.pathname, query: u.searchParams };
  } catch {
    return undefined;
  }
}

const callerFields = (c: ApiCaller): Record<string, string> => (c.kind === 'node' ? { caller: 'node', node: c.node } : { caller: 'admin' });

export class CollectorApi {
  private readonly log: Logger;
  private readonly followers: FlowFollowers;
  private readonly control: ControlApi | undefined;

  constructor(private readonly deps: CollectorApiDeps) {
    this.log = deps.log.child({ component: 'api' });
    this.followers = new FlowFollowers(deps.store, this.log);
    this.control = deps.control ? new ControlApi(deps.control) : undefined;
  }

  /** The store's counts, and each sink's when there are any. */
  private stats(): StatsResponse {
    const stats = this.deps.store.stats();
    const sinks = this.deps.sinks?.();
    if (sinks && Object.keys(sinks).length > 0) stats.sinks = sinks;
    return stats;
  }

  /** Whether an upgrade request for `path` is ours (the agent endpoint is not). */
  ownsUpgrade(path: string): boolean {
    return path === API.follow;
  }

  /** A plain HTTP request on the collector's listener. */
  handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    const remote = req.socket.remoteAddress ?? 'unix';
    const url = parseUrl(req.url);
    if (url && this.deps.dashboard?.owns(url.path)) return this.deps.dashboard.handle(req, res, url.path, url.query);
    const route = url && ROUTES.has(url.path) ? (url.path as Route) : 'other';
    const finish = (status: number, caller?: ApiCaller): void => {
      this.deps.metrics.request(route, status);
      this.log.debug({ remote, method: req.method, route, status, ms: Date.now() - started, ...(caller ? callerFields(caller) : {}) }, 'api request');
    };
    const auth = this.deps.auth.check(req);
    if (!auth.ok) {
      this.log.warn({ remote, route, reason: auth.reason }, 'api request refused');
      this.deps.refusals?.refused({ event: 'api', remote, reason: auth.reason, detail: { route } });
      sendJson(res, 401, errorBody('PALISADE_ERR_UNAUTHENTICATED', `authentication required (${auth.reason}): send Authorization: Bearer <admin token> or a node certificate`), {
        'www-authenticate': 'Bearer realm="palisade"',
      });
      return finish(401);
    }
    const fail = (err: unknown): void => {
      const e = isPalisadeError(err) ? err : new PalisadeError('PALISADE_ERR_INTERNAL', 'internal error');
      if (!isPalisadeError(err)) this.log.error({ err, route }, 'api request failed');
      // a refused policy change carries every problem, not just the first
      const problems = e.code === 'PALISADE_ERR_POLICY_INVALID' ? { problems: ((err as { problems?: string[] }).problems ?? []).slice(0, 100) } : {};
      if (!res.headersSent) sendJson(res, e.httpStatus, { ...errorBody(e.code, e.message), ...problems });
      else res.destroy();
      finish(e.httpStatus, auth.caller);
    };
    try {
      if (!url || route === 'other') throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no endpoint ${(url?.path ?? String(req.url)).slice(0, 256)}`);
      const post = CONTROL_WRITES.has(route) || CONTROL_POST_READS.has(route);
      if (post ? req.method !== 'POST' : req.method !== 'GET' && req.method !== 'HEAD') {
        const allowed = post ? 'POST' : 'GET, HEAD';
        sendJson(res, 405, errorBody('PALISADE_ERR_INVALID_ARGUMENT', `${String(req.method).slice(0, 16)} is not allowed on ${route}: use ${allowed}`), { allow: allowed });
        return finish(405, auth.caller);
      }
      if (CONTROL_ROUTES.has(route)) return this.controlRequest(req, res, route, url.query, auth.caller, remote, { post, fail, finish });
      if (route !== API.flows && route !== API.follow && [...url.query.keys()].length > 0) {
        throw invalidArgument(`invalid parameter: ${route} takes no query parameters`);
      }
      switch (route) {
        case API.flows: {
          const flows = this.deps.store.queryJson(parseFilterQuery(url.query));
          sendJson(res, 200, `{"flows":[${flows.join(',')}],"count":${flows.length}}`);
          return finish(200, auth.caller);
        }
        case API.follow:
          sendJson(res, 426, errorBody('PALISADE_ERR_INVALID_ARGUMENT', `${API.follow} is a WebSocket endpoint: send an upgrade request`), { upgrade: 'websocket' });
          return finish(426, auth.caller);
        case API.stats:
          sendJson(res, 200, this.stats());
          return finish(200, auth.caller);
        case API.healthz:
          sendText(res, 200, 'text/plain', 'ok\n');
          return finish(200, auth.caller);
        case API.metrics:
          this.deps.metrics.registry.metrics().then((text) => {
            sendText(res, 200, this.deps.metrics.registry.contentType, text);
            finish(200, auth.caller);
          }, fail);
          return;
      }
    } catch (err) {
      fail(err);
    }
  }

  /** A control route (method already checked): write permission, body, then the answer. */
  private controlRequest(
    req: IncomingMessage,
    res: ServerResponse,
    route: Route,
    query: URLSearchParams,
    caller: ApiCaller,
    remote: string,
    how: { post: boolean; fail: (err: unknown) => void; finish: (status: number, caller?: ApiCaller) => void },
  ): void {
    const { fail, finish } = how;
    if (!this.control) return fail(new PalisadeError('PALISADE_ERR_NOT_FOUND', `no endpoint ${route}`));
    if (CONTROL_WRITES.has(route) && caller.kind !== 'admin') {
      this.log.warn({ remote, route, ...callerFields(caller), reason: 'writes need the admin token' }, 'api write refused');
      this.deps.refusals?.refused({ event: 'api', remote, reason: 'writes need the admin token', detail: { route, ...callerFields(caller) } });
      return fail(new PalisadeError('PALISADE_ERR_FORBIDDEN', `${route} changes policy: only the admin token may (a node certificate may only read)`));
    }
    const author = caller.kind === 'admin' ? `admin:${caller.token}` : `node:${caller.node}`;
    const send = async (result: unknown): Promise<void> => {
      // A policy change answers with every policy's diff (megabytes): made and written between event-loop turns.
      await sendJsonSliced(res, 200, result, ANSWER_SLICE_MS);
      if (CONTROL_WRITES.has(route)) {
        const r = result as { version?: number; applied?: boolean; dryRun?: boolean };
        this.log.info({ remote, route, author, version: r.version, applied: r.applied, dryRun: r.dryRun }, 'api write');
      }
      finish(200, caller);
    };
    const answer = (body: unknown): void => {
      try {
        const result = this.control!.handle(route, query, body, author);
        void Promise.resolve(result).then(send).catch(fail);
      } catch (err) {
        fail(err);
      }
    };
    if (!how.post) return answer(undefined);
    readJsonBody(req, MAX_CONTROL_BODY_BYTES).then(answer, fail);
  }

  /** An upgrade request for API.follow: authenticate, parse filters, then stream. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const remote = req.socket.remoteAddress ?? 'unix';
    const url = parseUrl(req.url);
    const auth = this.deps.auth.check(req);
    if (!auth.ok) {
      this.log.warn({ remote, route: API.follow, reason: auth.reason }, 'api request refused');
      this.deps.refusals?.refused({ event: 'api', remote, reason: auth.reason, detail: { route: API.follow } });
      this.deps.metrics.request(API.follow, 401);
      return refuseUpgrade(socket, 401, errorBody('PALISADE_ERR_UNAUTHENTICATED', `authentication required (${auth.reason})`));
    }
    let filters: FlowFilters;
    try {
      if (!url) throw invalidArgument('invalid request target');
      filters = parseFilterQuery(url.query);
    } catch (err) {
      const e = err as PalisadeError;
      this.deps.metrics.request(API.follow, 400);
      return refuseUpgrade(socket, 400, errorBody(e.code, e.message));
    }
    this.deps.metrics.request(API.follow, 101);
    this.followers.accept(req, socket, head, filters, { remote, ...callerFields(auth.caller) });
  }

  /** Close every follower (the listener itself is closed by its owner). */
  close(): Promise<void> {
    return this.followers.close();
  }
}

/** A request's JSON body (application/json, at most `max` bytes); one-line errors otherwise (the dashboard reads its bodies with it too). */
export async function readJsonBody(req: IncomingMessage, max: number): Promise<unknown> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw invalidArgument('invalid body: send Content-Type: application/json');
  }
  let body: Buffer;
  try {
    body = await readBody(req, max, 'drain');
  } catch (err) {
    if (err instanceof BodyTooLarge) throw invalidArgument(`invalid body: larger than ${max} bytes`);
    throw err;
  }
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw invalidArgument('invalid body: not JSON');
  }
}
