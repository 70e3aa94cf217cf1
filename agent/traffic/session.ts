/**
 * Sticky sessions (a route rule's sessionPersistence, Gateway API GEP-1619): the proxy names the
 * endpoint that served a session's first request in a cookie (type Cookie) or a response header
 * (type Header) it adds to the answer, as Envoy's stateful sessions do (the endpoint's address,
 * base64url, with when the session began and was last used); a later request carrying it goes to
 * that endpoint while it is a ready endpoint of the backend and not ejected, else to a new one,
 * whose value the answer then carries. Past absoluteTimeout (since it began) or idleTimeout (since
 * it was last used) a session starts again. The value only chooses among the backend's own
 * endpoints: a forged one can pick no other address. Pure.
 */
import type { SessionPersistence } from '../../common/routes';
import { cookieValue, type Pick } from './balance';

export interface SessionState {
  /** the endpoint's key (`ip:port`) */
  readonly endpoint: string;
  /** epoch seconds the session began */
  readonly created: number;
}

const MAX_VALUE = 256;

/** The session a request carries, if it carries a valid one still in time. */
export function readSession(s: SessionPersistence, headers: Readonly<Record<string, readonly string[]>>, nowMs: number): SessionState | undefined {
  const raw = s.type === 'Cookie' ? cookieValue(headers.cookie, s.name) : headers[s.name.toLowerCase()]?.[0];
  if (raw === undefined || raw.length === 0 || raw.length > MAX_VALUE || !/^[A-Za-z0-9_-]+$/.test(raw)) return undefined;
  const [endpoint, createdText, seenText] = Buffer.from(raw, 'base64url').toString('latin1').split('|');
  const created = Number(createdText);
  const seen = Number(seenText);
  if (endpoint === undefined || !/^[0-9a-fA-F.:[\]]{3,64}:[0-9]{1,5}$/.test(endpoint) || !Number.isInteger(created) || !Number.isInteger(seen)) return undefined;
  const now = Math.floor(nowMs / 1000);
  if (s.absoluteMs !== undefined && (now - created) * 1000 >= s.absoluteMs) return undefined;
  if (s.idleMs !== undefined && (now - seen) * 1000 >= s.idleMs) return undefined;
  return { endpoint, created };
}

/**
 * The response header naming `endpoint` for the session (begun at `created`, or now):
 * `set-cookie` (Path=/, HttpOnly; Max-Age when Permanent), or the session header. Undefined when
 * the request already carries exactly this session and nothing in it needs refreshing.
 */
export function sessionHeader(s: SessionPersistence, endpoint: string, carried: SessionState | undefined, nowMs: number): [string, string] | undefined {
  const now = Math.floor(nowMs / 1000);
  const same = carried !== undefined && carried.endpoint === endpoint;
  if (same && s.idleMs === undefined) return undefined;
  const created = same ? carried.created : now;
  const value = Buffer.from(`${endpoint}|${created}|${now}`, 'latin1').toString('base64url');
  if (s.type === 'Header') return [s.name, value];
  const maxAge = s.permanent && s.absoluteMs !== undefined ? `; Max-Age=${Math.max(1, Math.floor(s.absoluteMs / 1000) - (now - created))}` : '';
  return ['set-cookie', `${s.name}=${value}; Path=/; HttpOnly${maxAge}`];
}

/**
 * The pick of a request carrying a session to `endpoint` (a key of `keys`): that endpoint while
 * it is a candidate (ready, not ejected, not tried yet), else `then` (a DestinationRule's, or
 * undefined for the default balancer). Undefined when the session names no endpoint of `keys`.
 */
export function sessionPick(endpoint: string | undefined, keys: readonly string[], then: Pick | undefined): Pick | undefined {
  const stuck = endpoint === undefined ? -1 : keys.indexOf(endpoint);
  if (stuck < 0) return then;
  return (k, among) => (among.includes(stuck) ? stuck : then?.(k, among));
}
