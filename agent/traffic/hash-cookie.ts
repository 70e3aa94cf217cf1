/**
 * The cookie a DestinationRule's `consistentHash.httpCookie` with a `ttl` has the proxy set, as
 * Envoy does: a request without the cookie is hashed by a value made for it, and the answer
 * carries `Set-Cookie: <name>=<value>; Path=<path, default />; Max-Age=<ttl>; HttpOnly` (no
 * Max-Age for ttl 0: a session cookie), so the requests that send it back hash to the same
 * endpoint (rendezvous hashing: while that endpoint is ready and not ejected). The value is a
 * keyed hash of the client's connection (its pod address and port, and the Service), as Envoy's:
 * requests racing on one connection get the same one; it names no endpoint, so no pod address
 * leaks, and without this node's key it cannot be made to land anywhere chosen. Pure but for the
 * key made once per process (sticky sessions' endpoint tags, ./session.ts, use it too).
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { LoadBalancer } from '../../common/routes';

const KEY = randomBytes(32);

/** `text` hashed with this process's key: what a client cannot compute or invert. */
export function keyedHash(text: string): Buffer {
  return createHmac('sha256', KEY).update(text).digest();
}

/** The value for a client connection without the cookie: 16 hex digits. */
export function hashCookieValue(connection: string, service: string): string {
  return keyedHash(`${connection}>${service}`).toString('hex', 0, 8);
}

/** The Set-Cookie header naming `value` under `lb`'s cookie (name, path, ttl). */
export function hashCookieHeader(lb: Extract<LoadBalancer, { kind: 'HASH' }>, value: string): [string, string] {
  const ttl = lb.cookieTtlMs ?? 0;
  const maxAge = ttl > 0 ? `; Max-Age=${Math.max(1, Math.round(ttl / 1000))}` : '';
  return ['set-cookie', `${lb.name}=${value}; Path=${lb.cookiePath ?? '/'}${maxAge}; HttpOnly`];
}
