/**
 * A route rule's `sessionPersistence` (Gateway API, experimental channel: GEP-1619), checked and
 * compiled. Pure, over plain data.
 *
 *   sessionPersistence: {type: Cookie, sessionName: web-session, absoluteTimeout: 1h, idleTimeout: 10m,
 *                        cookieConfig: {lifetimeType: Permanent}}
 *
 * type Cookie (default): the proxy sets the cookie on the answer; Header: it sets the response
 * header, which the client sends back. sessionName defaults to `palisade-session`. Permanent
 * cookies need absoluteTimeout (their Max-Age), as the spec says.
 */
import type { Checker } from './checker';
import type { SessionPersistence } from './types';
import { MAX_ROUTE_TIMEOUT_MS, routeDuration } from './route-duration';

export const DEFAULT_SESSION_NAME = 'palisade-session';

export function parseSession(c: Checker, v: unknown, path: string): SessionPersistence | undefined {
  const f = c.fields(v, path, ['sessionName', 'type', 'absoluteTimeout', 'idleTimeout', 'cookieConfig']);
  if (!f) return undefined;
  const before = c.problems.length;
  const type = f.type ?? 'Cookie';
  if (type !== 'Cookie' && type !== 'Header') c.fail(`${path}.type`, `must be Cookie or Header, got ${JSON.stringify(type)?.slice(0, 80)}`);
  const name = f.sessionName === undefined ? DEFAULT_SESSION_NAME : c.string(f.sessionName, `${path}.sessionName`);
  if (name !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/.test(name)) c.fail(`${path}.sessionName`, `must be a cookie or header name (letters, digits and !#$%&'*+-.^_\`|~, at most 128), got ${JSON.stringify(name).slice(0, 80)}`);
  const duration = (x: unknown, p: string): number | undefined => {
    if (x === undefined) return undefined;
    const d = routeDuration(x, '1h, 10m or 30s', MAX_ROUTE_TIMEOUT_MS, '24h');
    return 'ms' in d ? d.ms : c.fail(p, d.problem);
  };
  const absoluteMs = duration(f.absoluteTimeout, `${path}.absoluteTimeout`);
  const idleMs = duration(f.idleTimeout, `${path}.idleTimeout`);
  const cookie = f.cookieConfig === undefined ? undefined : c.fields(f.cookieConfig, `${path}.cookieConfig`, ['lifetimeType']);
  const lifetime = cookie?.lifetimeType ?? 'Session';
  if (lifetime !== 'Session' && lifetime !== 'Permanent') c.fail(`${path}.cookieConfig.lifetimeType`, `must be Session or Permanent, got ${JSON.stringify(lifetime)?.slice(0, 80)}`);
  if (f.cookieConfig !== undefined && type === 'Header') c.fail(`${path}.cookieConfig`, 'is for type Cookie only (remove it)');
  if (lifetime === 'Permanent' && absoluteMs === undefined) c.fail(`${path}.cookieConfig.lifetimeType`, 'Permanent needs absoluteTimeout (the cookie\'s Max-Age)');
  if (c.problems.length > before || name === undefined) return undefined;
  return { type: type as 'Cookie' | 'Header', name, absoluteMs, idleMs, permanent: lifetime === 'Permanent' };
}
