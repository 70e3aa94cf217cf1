/**
 * A DestinationRule's loadBalancer as a choice among endpoints (by index into the endpoint
 * keys): ROUND_ROBIN (one counter per Service port, node-wide), RANDOM, LEAST_REQUEST (Envoy's:
 * the fewer outstanding requests of two drawn at random), or a consistent hash of the request
 * (a header, a cookie, a query parameter, the client pod's address): rendezvous hashing, so an
 * endpoint that goes away (or is ejected) moves only its own users, each to their next-best
 * endpoint. A request without the hashed value is balanced as by default. Pure but for the
 * random source it is given.
 */
import type { LoadBalancer } from '../../common/routes';

/** The part of a request a hash is of. */
export interface HashInput {
  /** lowercase name → values */
  readonly headers: Readonly<Record<string, readonly string[]>>;
  /** '' or '?…' */
  readonly query: string;
  readonly sourceIp: string;
}

/** Picks one of `among` (indices into `keys`), or undefined to leave it to the default balancer. */
export type Pick = (keys: readonly string[], among: readonly number[]) => number | undefined;

/** FNV-1a, 32 bits. */
export function fnv1a(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A 32-bit finalizer (murmur3's): spreads the bits of a combined hash. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The endpoint of `among` whose key scores highest for `hash` (rendezvous hashing). */
export function rendezvous(hash: number, keys: readonly string[], among: readonly number[]): number | undefined {
  let best: number | undefined;
  let bestScore = -1;
  for (const i of among) {
    const score = mix(hash ^ fnv1a(keys[i]!));
    if (score > bestScore || (score === bestScore && best !== undefined && keys[i]! < keys[best]!)) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}

/** The value a consistent hash is of, or undefined when the request has none. */
export function hashValue(lb: Extract<LoadBalancer, { kind: 'HASH' }>, req: HashInput): string | undefined {
  switch (lb.by) {
    case 'source-ip':
      return req.sourceIp;
    case 'header': {
      const v = req.headers[lb.name];
      return v === undefined || v.length === 0 ? undefined : v.join(',');
    }
    case 'cookie':
      return cookieValue(req.headers.cookie, lb.name);
    case 'query':
      return queryValue(req.query, lb.name);
  }
}

/** The value of cookie `name` in Cookie headers, or undefined. */
export function cookieValue(headers: readonly string[] | undefined, name: string): string | undefined {
  for (const h of headers ?? []) {
    for (const part of h.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

function queryValue(query: string, name: string): string | undefined {
  if (query.length < 2) return undefined;
  for (const part of query.slice(1).split('&')) {
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    let key: string;
    try {
      key = decodeURIComponent(k.replace(/\+/g, ' '));
    } catch {
      continue;
    }
    if (key === name) return eq < 0 ? '' : part.slice(eq + 1);
  }
  return undefined;
}

export interface Balancing {
  /** the next round-robin position of `service` (and moves it on) */
  turn(service: string): number;
  /** outstanding requests to an endpoint */
  outstanding(key: string): number;
  random(): number;
}

/**
 * The pick for one request under `lb`, or undefined for the default (peak-EWMA). `hashed`: the
 * request's hash value (hashValue), when lb is a consistent hash.
 */
export function pickOf(lb: LoadBalancer | undefined, service: string, hashed: string | undefined, b: Balancing): Pick | undefined {
  if (lb === undefined) return undefined;
  switch (lb.kind) {
    case 'ROUND_ROBIN':
      return (_keys, among) => (among.length === 0 ? undefined : among[b.turn(service) % among.length]);
    case 'RANDOM':
      return (_keys, among) => (among.length === 0 ? undefined : among[Math.floor(b.random() * among.length)]);
    case 'LEAST_REQUEST':
      return (keys, among) => {
        const n = among.length;
        if (n <= 1) return among[0];
        const p = Math.floor(b.random() * n);
        let q = Math.floor(b.random() * (n - 1));
        if (q >= p) q++;
        const i = among[p]!;
        const j = among[q]!;
        return b.outstanding(keys[j]!) < b.outstanding(keys[i]!) ? j : i;
      };
    case 'HASH': {
      if (hashed === undefined) return undefined;
      const h = fnv1a(hashed);
      return (keys, among) => rendezvous(h, keys, among);
    }
  }
}
