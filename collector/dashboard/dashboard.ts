/**
 * The dashboard on the collector's HTTPS listener (collector/api/handler.ts hands it every
 * request under /dashboard): the page (static.ts), the login (a ticket from `palisade
 * dashboard`, made with the admin token, exchanged once for a session cookie: sessions.ts),
 * and the map's API (map-api.ts) plus the control API (collector/api/control.ts) with the
 * session's rights, which are the admin's. Every API request without a live session is 401.
 * Routes and rules: docs/architecture.md "The dashboard".
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CONTROL_API, CONTROL_POST_READS, CONTROL_WRITES, MAX_CONTROL_BODY_BYTES } from '../../common/control-api';
import { DASHBOARD_API, DASHBOARD_BASE, SESSION_COOKIE, type ConfigResponse, type SessionResponse, type TicketResponse } from '../../common/dashboard-api';
import { isPalisadeError, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { isRecord } from '../../common/record';
import type { ApiAuth } from '../api/auth';
import { ControlApi, type ControlDeps } from '../api/control';
import { readJsonBody } from '../api/handler';
import type { CollectorMetrics } from '../api/metrics';
import { errorBody } from '../api/respond';
import { MapApi, type MapApiDeps } from './map-api';
import { cookieValue, DashboardSessions, type Session, type SessionOptions } from './sessions';
import { SECURITY_HEADERS, StaticFiles } from './static';

export interface DashboardDeps extends MapApiDeps {
  auth: ApiAuth;
  control: ControlDeps;
  metrics: CollectorMetrics;
  log: Logger;
  sessions?: SessionOptions;
  /** where the bundled page is (default: next to this module) */
  webRoot?: string;
  /** `--trace-url`: the page links flows' trace ids through it (checked by parseTraceUrl) */
  traceUrl?: string;
}

const CONTROL_ROUTES: ReadonlySet<string> = new Set(Object.values(CONTROL_API));
const MAX_BODY = 64 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams, session: Session) => Promise<unknown> | unknown;

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = `${typeof body === 'string' ? body : JSON.stringify(body)}\n`;
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

export class Dashboard {
  readonly sessions: DashboardSessions;
  private readonly log: Logger;
  private readonly files: StaticFiles;
  private readonly map: MapApi;
  private readonly control: ControlApi;
  private readonly routes: Map<string, { method: 'GET' | 'POST'; handle: Handler }>;

  constructor(private readonly deps: DashboardDeps) {
    this.log = deps.log.child({ component: 'dashboard' });
    this.sessions = new DashboardSessions(deps.sessions);
    this.files = new StaticFiles(deps.webRoot);
    this.map = new MapApi(deps);
    this.control = new ControlApi(deps.control);
    this.routes = new Map<string, { method: 'GET' | 'POST'; handle: Handler }>([
      [DASHBOARD_API.graph, { method: 'GET', handle: (_r, _s, q) => this.map.graph(q) }],
      [DASHBOARD_API.flows, { method: 'GET', handle: (_r, _s, q) => `{"flows":[${this.map.flows(q).join(',')}]}` }],
      [DASHBOARD_API.workload, { method: 'GET', handle: (_r, _s, q) => this.map.workload(q) }],
      [DASHBOARD_API.draft, { method: 'POST', handle: async (req) => this.map.draft(await readJsonBody(req, MAX_BODY)) }],
      [DASHBOARD_API.config, { method: 'GET', handle: (): ConfigResponse => (deps.traceUrl !== undefined ? { traceUrl: deps.traceUrl } : {}) }],
    ]);
    if (!this.files.built) this.log.warn('the dashboard page was not built (make build): /dashboard/ answers 503');
  }

  /** Whether `path` is the dashboard's. */
  owns(path: string): boolean {
    return path === '/dashboard' || path.startsWith(DASHBOARD_BASE);
  }

  handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): void {
    const remote = req.socket.remoteAddress ?? 'unix';
    const fail = (err: unknown, route: string): void => {
      const e = isPalisadeError(err) ? err : new PalisadeError('PALISADE_ERR_INTERNAL', 'internal error');
      if (!isPalisadeError(err)) this.log.error({ err, route }, 'dashboard request failed');
      const problems = e.code === 'PALISADE_ERR_POLICY_INVALID' ? { problems: ((err as { problems?: string[] }).problems ?? []).slice(0, 100) } : {};
      const status = err instanceof MethodNotAllowed ? 405 : e.httpStatus;
      if (!res.headersSent) send(res, status, { ...errorBody(e.code, e.message), ...problems }, err instanceof MethodNotAllowed ? { allow: err.allow } : {});
      else res.destroy();
      this.deps.metrics.request(route, status);
    };
    if (path === '/dashboard') {
      res.writeHead(308, { ...SECURITY_HEADERS, location: DASHBOARD_BASE, 'content-length': 0 }).end();
      return;
    }
    if (!path.startsWith('/dashboard/api/')) return this.page(req, res, path.slice(DASHBOARD_BASE.length));
    const route = path.startsWith(DASHBOARD_API.control) ? DASHBOARD_API.control : path;
    Promise.resolve()
      .then(() => this.api(req, res, path, query, remote))
      .then((status) => this.deps.metrics.request(route, status))
      .catch((err: unknown) => fail(err, route));
  }

  private page(req: IncomingMessage, res: ServerResponse, rel: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, errorBody('PALISADE_ERR_INVALID_ARGUMENT', 'use GET'), { allow: 'GET, HEAD' });
    if (this.files.serve(rel, res)) return;
    if (!this.files.built) return send(res, 503, errorBody('PALISADE_ERR_NOT_FOUND', 'the dashboard page was not built: run make build'));
    send(res, 404, errorBody('PALISADE_ERR_NOT_FOUND', 'no such page'));
  }

  /** One API request; resolves to the status sent. */
  private async api(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams, remote: string): Promise<number> {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (method === 'POST') checkSameOrigin(req);
    if (path === DASHBOARD_API.ticket) return this.ticket(req, res, method, remote);
    if (path === DASHBOARD_API.session) return this.login(req, res, method, remote);
    if (path === DASHBOARD_API.logout) {
      requireMethod(method, 'POST');
      const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
      if (id !== undefined && this.sessions.end(id)) this.log.info({ remote }, 'dashboard session ended');
      send(res, 200, { ok: true }, { 'set-cookie': `${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0` });
      return 200;
    }
    const check = this.sessions.check(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (!check.ok) {
      this.log.warn({ remote, route: path.slice(0, 128), reason: check.reason }, 'dashboard request refused');
      send(res, 401, errorBody('PALISADE_ERR_UNAUTHENTICATED', `no valid dashboard session (${check.reason}): run palisade dashboard`));
      return 401;
    }
    if (path.startsWith(DASHBOARD_API.control)) return this.controlRoute(req, res, `/v1/${path.slice(DASHBOARD_API.control.length)}`, method, query, check.session, remote);
    const r = this.routes.get(path);
    if (!r) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no endpoint ${path.slice(0, 256)}`);
    requireMethod(method, r.method);
    send(res, 200, await r.handle(req, res, query, check.session));
    return 200;
  }

  /** POST ticket, with the admin token: a single-use login ticket for `palisade dashboard`. */
  private ticket(req: IncomingMessage, res: ServerResponse, method: string | undefined, remote: string): number {
    requireMethod(method, 'POST');
    const auth = this.deps.auth.check(req);
    if (!auth.ok || auth.caller.kind !== 'admin') {
      const reason = auth.ok ? 'a node certificate may not open the dashboard' : auth.reason;
      this.log.warn({ remote, reason }, 'dashboard ticket refused');
      send(res, 401, errorBody('PALISADE_ERR_UNAUTHENTICATED', `a dashboard ticket needs the admin token (${reason})`));
      return 401;
    }
    const answer: TicketResponse = { ticket: this.sessions.ticket(auth.caller.token), expiresInMs: this.sessions.ticketTtlMs, path: DASHBOARD_BASE };
    this.log.info({ remote, owner: auth.caller.token }, 'dashboard ticket issued');
    send(res, 200, answer);
    return 200;
  }

  /** POST session {ticket}: the ticket (once) for a session cookie. */
  private async login(req: IncomingMessage, res: ServerResponse, method: string | undefined, remote: string): Promise<number> {
    requireMethod(method, 'POST');
    const body = await readJsonBody(req, 4096);
    const ticket = isRecord(body) && typeof body.ticket === 'string' ? body.ticket : '';
    const got = this.sessions.redeem(ticket);
    if (!got) {
      this.log.warn({ remote, reason: 'unknown, used or expired ticket' }, 'dashboard login refused');
      send(res, 401, errorBody('PALISADE_ERR_UNAUTHENTICATED', 'this login link is used or expired: run palisade dashboard again'));
      return 401;
    }
    const maxAge = Math.floor(this.sessions.maxMs / 1000);
    const answer: SessionResponse = { expiresAt: new Date(got.session.expires).toISOString() };
    this.log.info({ remote, session: got.session.name, owner: got.session.owner }, 'dashboard session started');
    send(res, 200, answer, { 'set-cookie': `${SESSION_COOKIE}=${got.id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAge}` });
    return 200;
  }

  /** `/dashboard/api/v1/…`: the control API as the admin (writes audited with the admin's name, as from the CLI). */
  private async controlRoute(req: IncomingMessage, res: ServerResponse, route: string, method: string | undefined, query: URLSearchParams, session: Session, remote: string): Promise<number> {
    if (!CONTROL_ROUTES.has(route)) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no endpoint ${route.slice(0, 256)}`);
    const post = CONTROL_WRITES.has(route) || CONTROL_POST_READS.has(route);
    requireMethod(method, post ? 'POST' : 'GET');
    const body = post ? await readJsonBody(req, MAX_CONTROL_BODY_BYTES) : undefined;
    const author = `admin:${session.owner}`;
    // policy apply, test and egress learn answer a promise (they run off the event loop)
    const result: unknown = await this.control.handle(route, query, body, author);
    if (CONTROL_WRITES.has(route)) {
      const r = result as { version?: number; applied?: boolean; dryRun?: boolean };
      this.log.info({ remote, route, author, via: 'dashboard', session: session.name, version: r.version, applied: r.applied, dryRun: r.dryRun }, 'api write');
    }
    send(res, 200, result);
    return 200;
  }
}

/** A method the route does not take: 405 with Allow. */
class MethodNotAllowed extends PalisadeError {
  constructor(
    method: string | undefined,
    readonly allow: 'GET' | 'POST',
  ) {
    super('PALISADE_ERR_INVALID_ARGUMENT', `${String(method).slice(0, 16)} is not allowed here: use ${allow}`);
  }
}

function requireMethod(method: string | undefined, want: 'GET' | 'POST'): void {
  if (method !== want) throw new MethodNotAllowed(method, want);
}

/**
 * A browser's cross-site POST never gets here with the cookie (SameSite=Strict); this refuses
 * one that says it comes from elsewhere anyway (Origin, Sec-Fetch-Site).
 */
function checkSameOrigin(req: IncomingMessage): void {
  const origin = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') throw new PalisadeError('PALISADE_ERR_FORBIDDEN', 'cross-site request refused');
  if (origin !== undefined && origin !== `https://${String(req.headers.host)}`) throw new PalisadeError('PALISADE_ERR_FORBIDDEN', 'cross-origin request refused');
}
