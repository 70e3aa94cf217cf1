/**
 * Part of the Kubernetes API double (./index.ts): one HTTP request, as the API server answers it
 * (list, watch, get, create, update, patch, delete, deletecollection; errors as Status objects).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody } from '../../../common/read-body';
import { applyPatch, PATCH_CONTENT_TYPES, PatchError } from './patch';
import { route, type Target } from './routes';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from './selectors';
import { ApiError, type KubeObject, type ObjectStore } from './store';
import { WatchStream } from './watch';
import type { ResourceType, ResourceTypes } from './resources';

export interface Fault {
  method?: string;
  /** Tested against the request path (no query). */
  path?: RegExp;
  /** Only watch requests (true) or only the others (false). */
  watch?: boolean;
  /** The HTTP status to answer with (default 500). */
  status?: number;
  reason?: string;
  message?: string;
  /** Never answer (the connection stays open until the client gives up or the double closes). */
  hang?: boolean;
  /** How many requests it hits (default: all, until removed). */
  times?: number;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
}

const MAX_BODY_BYTES = 3 * 1024 * 1024;
const MAX_RECORDS = 1000;

function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

/**
 * What the handlers use of the double (./index.ts's KubeApiDouble is one): an interface here, so
 * that the double's modules import each other in one direction only.
 */
export interface KubeApiDouble {
  readonly opts: { token?: string; bookmarkIntervalMs?: number };
  readonly requests: RequestRecord[];
  readonly store: ObjectStore;
  readonly types: ResourceTypes;
  readonly watches: Set<WatchStream>;
  /** Watch requests a `hang` fault left unanswered: connections the server still holds. */
  readonly held: Set<ServerResponse>;
  readonly resourceVersion: string;
  takeFault(method: string, pathname: string, watch: boolean): Fault | undefined;
  typed(o: KubeObject, type: ResourceType, apiVersion: string): KubeObject;
  createObject(type: ResourceType, namespace: string, body: unknown): KubeObject;
  deleteObject(type: ResourceType, namespace: string, name: string, preconditions?: { uid?: unknown; resourceVersion?: unknown }): KubeObject;
}

export function handleRequest(d: KubeApiDouble, req: IncomingMessage, res: ServerResponse): void {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://double');
  } catch {
    return status(res, 400, 'BadRequest', 'malformed request URL');
  }
  const method = req.method ?? 'GET';
  const query = Object.fromEntries(url.searchParams);
  d.requests.push({ method, path: url.pathname, query });
  if (d.requests.length > MAX_RECORDS) d.requests.shift();
  if (d.opts.token !== undefined && req.headers.authorization !== `Bearer ${d.opts.token}`) {
    return status(res, 401, 'Unauthorized', 'Unauthorized');
  }
  const watch = query.watch === 'true' || query.watch === '1' || /\/watch\//.test(url.pathname);
  const fault = d.takeFault(method, url.pathname, watch);
  if (fault?.hang) {
    if (watch) {
      d.held.add(res);
      res.once('close', () => d.held.delete(res));
    }
    return;
  }
  if (fault) return status(res, fault.status ?? 500, fault.reason ?? 'InternalError', fault.message ?? 'an injected fault');
  if (['/healthz', '/readyz', '/livez'].includes(url.pathname)) {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    return void res.end('ok');
  }
  serve(d, req, res, url, query).catch((err: unknown) => {
    if (res.headersSent) return void res.destroy();
    if (err instanceof ApiError) return status(res, err.code, err.reason, err.message);
    if (err instanceof SelectorError) return status(res, 400, 'BadRequest', err.message);
    if (err instanceof PatchError) return status(res, 422, 'Invalid', err.message);
    status(res, 500, 'InternalError', err instanceof Error ? err.message : String(err));
  });
}

async function serve(d: KubeApiDouble, req: IncomingMessage, res: ServerResponse, url: URL, query: Record<string, string>): Promise<void> {
  let target: Target;
  try {
    target = route(url.pathname, d.types);
  } catch (err) {
    if (err instanceof URIError) throw new ApiError(400, 'BadRequest', 'malformed path');
    throw err;
  }
  const method = req.method ?? 'GET';
  if (target.kind === 'document') {
    if (method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', `${method} is not allowed here`);
    return json(res, 200, target.body);
  }
  const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? await readJson(req, method === 'DELETE') : undefined;
  if (target.kind === 'collection') {
    if (method === 'GET') {
      if (target.watchPath || query.watch === 'true' || query.watch === '1') return startWatch(d, res, target, query);
      return json(res, 200, list(d, target, query));
    }
    if (method === 'POST') {
      if (target.type.namespaced && target.namespace === undefined) throw new ApiError(405, 'MethodNotAllowed', `create ${target.type.resource} in a namespace`);
      checkKind(body, target.type, target.apiVersion);
      return json(res, 201, d.typed(d.createObject(target.type, target.namespace ?? '', body), target.type, target.apiVersion));
    }
    if (method === 'DELETE') {
      const doomed = selected(d, target, query);
      const items = doomed.map((o) => d.typed(d.deleteObject(target.type, o.metadata.namespace ?? '', o.metadata.name), target.type, target.apiVersion));
      return json(res, 200, { kind: `${target.type.kind}List`, apiVersion: target.apiVersion, metadata: { resourceVersion: d.resourceVersion }, items });
    }
    throw new ApiError(405, 'MethodNotAllowed', `${method} is not allowed on a collection`);
  }
  const { type, apiVersion, namespace, name, subresource } = target;
  switch (method) {
    case 'GET': {
      const o = d.store.get(type, namespace, name);
      if (!o) throw new ApiError(404, 'NotFound', `${type.resource} "${name}" not found`);
      return json(res, 200, d.typed(o, type, apiVersion));
    }
    case 'PUT':
      checkKind(body, type, apiVersion);
      return json(res, 200, d.typed(d.store.update(type, namespace, name, () => body, subresource), type, apiVersion));
    case 'PATCH': {
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      const patchType = PATCH_CONTENT_TYPES[contentType];
      if (!patchType) {
        throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format (${contentType || 'none'}) - the double accepts ${Object.keys(PATCH_CONTENT_TYPES).join(', ')}`);
      }
      const next = (old: KubeObject): unknown => applyPatch(patchType, d.typed(old, type, apiVersion), body);
      return json(res, 200, d.typed(d.store.update(type, namespace, name, next, subresource), type, apiVersion));
    }
    case 'DELETE': {
      const preconditions = (body as { preconditions?: { uid?: unknown; resourceVersion?: unknown } } | undefined)?.preconditions;
      return json(res, 200, d.typed(d.deleteObject(type, namespace, name, preconditions), type, apiVersion));
    }
    default:
      throw new ApiError(405, 'MethodNotAllowed', `${method} is not allowed on an object`);
  }
}

async function readJson(req: IncomingMessage, optional: boolean): Promise<unknown> {
  const raw = await readBody(req, MAX_BODY_BYTES, 'destroy').catch(() => {
    throw new ApiError(413, 'RequestEntityTooLarge', `request body larger than ${MAX_BODY_BYTES} bytes`);
  });
  if (raw.length === 0) {
    if (optional) return undefined;
    throw new ApiError(400, 'BadRequest', 'the request needs a body');
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ApiError(400, 'BadRequest', `the body is not JSON: ${(err as Error).message}`);
  }
}

function checkKind(body: unknown, type: ResourceType, apiVersion: string): void {
  const b = body as { apiVersion?: unknown; kind?: unknown } | undefined;
  if (b?.apiVersion !== undefined && b.apiVersion !== apiVersion) {
    throw new ApiError(400, 'BadRequest', `the API version in the data (${String(b.apiVersion)}) does not match the expected API version (${apiVersion})`);
  }
  if (b?.kind !== undefined && b.kind !== type.kind) {
    throw new ApiError(400, 'BadRequest', `the kind in the data (${String(b.kind)}) does not match the expected kind (${type.kind})`);
  }
}

function selectors(d: KubeApiDouble, type: ResourceType, query: Record<string, string>) {
  return { labels: parseLabelSelector(query.labelSelector ?? ''), fields: parseFieldSelector(query.fieldSelector ?? '', d.types.fieldsOf(type)) };
}

function selected(d: KubeApiDouble, target: Extract<Target, { kind: 'collection' }>, query: Record<string, string>): KubeObject[] {
  const { labels, fields } = selectors(d, target.type, query);
  return d.store.list(target.type, target.namespace).filter((o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o));
}

interface ContinueToken {
  rv: string;
  after: string;
}

function list(d: KubeApiDouble, target: Extract<Target, { kind: 'collection' }>, query: Record<string, string>): unknown {
  let items = selected(d, target, query);
  const keyOf = (o: KubeObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  if (query.continue) {
    let token: ContinueToken;
    try {
      token = JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8')) as ContinueToken;
    } catch {
      throw new ApiError(400, 'BadRequest', 'continue key is not valid');
    }
    if (token.rv !== d.resourceVersion) {
      throw new ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
    }
    items = items.filter((o) => keyOf(o) > token.after);
  }
  const metadata: Record<string, unknown> = { resourceVersion: d.resourceVersion };
  const limit = query.limit === undefined ? 0 : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 0) throw new ApiError(400, 'BadRequest', `limit must be a non-negative integer, got ${query.limit}`);
  if (limit > 0 && items.length > limit) {
    metadata.remainingItemCount = items.length - limit;
    items = items.slice(0, limit);
    metadata.continue = Buffer.from(JSON.stringify({ rv: d.resourceVersion, after: keyOf(items[items.length - 1]!) })).toString('base64url');
  }
  const shown = target.type.custom ? items.map((o) => d.typed(o, target.type, target.apiVersion)) : items;
  return { kind: `${target.type.kind}List`, apiVersion: target.apiVersion, metadata, items: shown };
}

function startWatch(d: KubeApiDouble, res: ServerResponse, target: Extract<Target, { kind: 'collection' }>, query: Record<string, string>): void {
  const { labels, fields } = selectors(d, target.type, query);
  const rvText = query.resourceVersion ?? '';
  const rv = rvText === '' || rvText === '0' ? undefined : /^[1-9][0-9]*$/.test(rvText) ? Number(rvText) : NaN;
  if (Number.isNaN(rv)) throw new ApiError(400, 'BadRequest', `invalid resource version "${rvText}"`);
  let timeoutSeconds: number | undefined;
  if (query.timeoutSeconds !== undefined) {
    timeoutSeconds = Number(query.timeoutSeconds);
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0) throw new ApiError(400, 'BadRequest', 'timeoutSeconds must be a non-negative integer');
  }
  const spec = { type: target.type, apiVersion: target.apiVersion, namespace: target.namespace, labels, fields, bookmarks: query.allowWatchBookmarks === 'true', timeoutSeconds };
  const stream: WatchStream = new WatchStream(spec, res, () => d.store.resourceVersion, d.opts.bookmarkIntervalMs ?? 60_000, () => d.watches.delete(stream));
  // Replay and subscribe in one synchronous step: no write can fall between them.
  if (rv === undefined) {
    stream.sendInitial(d.store.list(target.type, target.namespace));
  } else {
    const changes = d.store.changesSince(rv);
    if (changes === 'expired') return stream.expired(rv, d.store.oldestResourceVersion);
    for (const c of changes) stream.deliver(c);
  }
  d.watches.add(stream);
}
