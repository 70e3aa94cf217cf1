/**
 * Sticky sessions (a route rule's sessionPersistence, Gateway API GEP-1619): the proxy names the
 * endpoint that served a session's first request in a cookie (type Cookie) or a response header
 * (type Header) it adds to the answer, with when the session began and was last used; a later
 * request carrying it goes to that endpoint while it is a ready endpoint of the backend and not
 * ejected, else to a new one, whose value the answer then carries. Past absoluteTimeout (since it
 * began) or idleTimeout (since it was last used) a session starts again.
 *
 * The value is opaque, as GEP-1619 leaves it to the implementation (its security section asks
 * that nothing sensitive be exposed): the endpoint appears only as a tag, a keyed hash of its
 * `ip:port` under this node's key (./hash-cookie.ts), so no pod address leaks to the client, and a
 * value is matched against the backend's current endpoints' tags — a forged or stale one names no
 * endpoint and the request is balanced as without a session. Made with another agent's key (after
 * a restart) it is such a stale one: the session begins again. Tags are per route rule (`scope`):
 * rules sending to the same Service do not share sessions (GEP-1619: they MUST NOT), a value made
 * under one names nothing under another. A rule's tags for an endpoint set are made once
 * (`sessionTags`; the router keeps them with the set, rebuilt when the Service changes), so a
 * request looks its session up in a map: no hash per request. Pure but for that key.
 */
import type { SessionPersistence } from '../../common/routes';
import { cookieValue, type Pick } from './balance';
import { keyedHash } from './hash-cookie';

export interface SessionState {
  /** the route rule it was read for (see `endpointTag`) */
  readonly scope: string;
  /** the endpoint's tag (see `endpointTag`) */
  readonly tag: string;
  /** epoch seconds the session began */
  readonly created: number;
}

/** bytes of the keyed hash kept: 96 bits, beyond guessing another endpoint's */
const TAG_BYTES = 12;
/** the value: tag, then the begin and last-use times (uint32 seconds each) */
const VALUE_BYTES = TAG_BYTES + 8;
/** the value's length in base64url */
const VALUE_CHARS = Math.ceil((VALUE_BYTES * 4) / 3);

/** The tag a session value of route rule `scope` carries for the endpoint `key` (`ip:port`): one keyed hash. */
export function endpointTag(scope: string, key: string): string {
  return keyedHash(`session-endpoint>${scope}>${key}`).toString('base64url', 0, TAG_BYTES);
}

/** Route rule `scope`'s tags for an endpoint set: each endpoint's index by its tag, its tag by its key. */
export interface SessionTags {
  readonly scope: string;
  readonly index: ReadonlyMap<string, number>;
  readonly tag: ReadonlyMap<string, string>;
}

/** The tags of route rule `scope` for the endpoints `keys` (made once per endpoint set and rule). */
export function sessionTags(scope: string, keys: readonly string[]): SessionTags {
  const index = new Map<string, number>();
  const tag = new Map<string, string>();
  keys.forEach((k, i) => {
    const t = endpointTag(scope, k);
    index.set(t, i);
    tag.set(k, t);
  });
  return { scope, index, tag };
}

/** The index among `tags`' endpoints of the endpoint the session names, or -1. */
export function sessionEndpoint(carried: SessionState | undefined, tags: SessionTags | undefined): number {
  return carried === undefined || tags === undefined || carried.scope !== tags.scope ? -1 : (tags.index.get(carried.tag) ?? -1);
}

/** The session a request carries for route rule `scope`, if it carries a well-formed one still in time. */
export function readSession(s: SessionPersistence, scope: string, headers: Readonly<Record<string, readonly string[]>>, nowMs: number): SessionState | undefined {
  const raw = s.type === 'Cookie' ? cookieValue(headers.cookie, s.name) : headers[s.name.toLowerCase()]?.[0];
  if (raw === undefined || raw.length !== VALUE_CHARS || !/^[A-Za-z0-9_-]+$/.test(raw)) return undefined;
  const bytes = Buffer.from(raw, 'base64url');
  if (bytes.length !== VALUE_BYTES) return undefined;
  const created = bytes.readUInt32BE(TAG_BYTES);
  const seen = bytes.readUInt32BE(TAG_BYTES + 4);
  const now = Math.floor(nowMs / 1000);
  if (s.absoluteMs !== undefined && (now - created) * 1000 >= s.absoluteMs) return undefined;
  if (s.idleMs !== undefined && (now - seen) * 1000 >= s.idleMs) return undefined;
  return { scope, tag: bytes.toString('base64url', 0, TAG_BYTES), created };
}

/**
 * The response header naming the endpoint of `tag` (its `endpointTag`) for the session (begun at `created`, or now):
 * `set-cookie` (Path=/, HttpOnly; Max-Age when Permanent), or the session header. Undefined when
 * the request already carries exactly this session and nothing in it needs refreshing.
 */
export function sessionHeader(s: SessionPersistence, tag: string, carried: SessionState | undefined, nowMs: number): [string, string] | undefined {
  const now = Math.floor(nowMs / 1000);
  const same = carried !== undefined && carried.tag === tag;
  if (same && s.idleMs === undefined) return undefined;
  const created = same ? carried.created : now;
  const bytes = Buffer.alloc(VALUE_BYTES);
  bytes.write(tag, 0, TAG_BYTES, 'base64url');
  bytes.writeUInt32BE(created >>> 0, TAG_BYTES);
  bytes.writeUInt32BE(now >>> 0, TAG_BYTES + 4);
  const value = bytes.toString('base64url');
  if (s.type === 'Header') return [s.name, value];
  const maxAge = s.permanent && s.absoluteMs !== undefined ? `; Max-Age=${Math.max(1, Math.floor(s.absoluteMs / 1000) - (now - created))}` : '';
  return ['set-cookie', `${s.name}=${value}; Path=/; HttpOnly${maxAge}`];
}

/**
 * The pick of a request carrying a session that names an endpoint of `tags`: that endpoint while
 * it is a candidate (ready, not ejected, not tried yet), else `then` (a DestinationRule's, or
 * undefined for the default balancer). `then` when it names none of them.
 */
export function sessionPick(carried: SessionState | undefined, tags: SessionTags | undefined, then: Pick | undefined): Pick | undefined {
  const stuck = sessionEndpoint(carried, tags);
  if (stuck < 0) return then;
  return (k, among) => (among.includes(stuck) ? stuck : then?.(k, among));
}
