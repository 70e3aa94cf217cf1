/**
 * Upstream answers kept for their TTL: positive answers for the smallest TTL of their answer
 * section, negative ones (NXDOMAIN, and NODATA: NOERROR without an answer) for the SOA's
 * min(TTL, MINIMUM) per RFC 2308 §5, and not at all without an SOA (§5: SHOULD NOT). Other rcodes
 * (SERVFAIL, REFUSED, …) and answers with a TTL of 0 are never kept. Every entry is also cut to
 * `maxTtlS`. Bounded by entries and bytes; the least recently used go first, counted.
 */
import type { StoredAnswer } from './responses';
import { RCODE } from './wire';

export interface CachedAnswer extends StoredAnswer {
  rcode: number;
  /** What the question's name led to (message.ts chainAddresses), for the pod's memory: */
  addresses: ReadonlyArray<{ ip: string; ttl: number }>;
  /** and the names of its CNAME chain, the question's first. */
  names: readonly string[];
  /** The answer's data as flow records show it. */
  shown: readonly string[];
  storedAt: number;
  expiresAt: number;
}

export interface CacheOptions {
  maxEntries?: number;
  maxBytes?: number;
  /** Longest any answer is kept, seconds (default 3600). */
  maxTtlS?: number;
  now?: () => number;
}

export interface CacheStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  evicted: number;
}

/** How long an answer may be kept, seconds; 0: not at all. */
export function cacheTtlS(a: { rcode: number; answerCount: number; minAnswerTtl: number | undefined; negativeTtl: number | undefined }, maxTtlS: number): number {
  let ttl: number | undefined;
  if (a.rcode === RCODE.NOERROR && a.answerCount > 0) ttl = a.minAnswerTtl;
  else if (a.rcode === RCODE.NXDOMAIN || a.rcode === RCODE.NOERROR) ttl = a.negativeTtl;
  return Math.max(0, Math.min(ttl ?? 0, maxTtlS));
}

/** The cache key of a question: name (lowercase presentation form), type, class, DNSSEC OK. */
export function cacheKey(name: string, type: number, qclass: number, dnssecOk: boolean): string {
  return `${type}/${qclass}/${dnssecOk ? 1 : 0}/${name}`;
}

export class DnsCache {
  private readonly entries = new Map<string, CachedAnswer>();
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  readonly maxTtlS: number;
  private readonly now: () => number;
  private bytes = 0;
  private readonly counts = { hits: 0, misses: 0, evicted: 0 };

  constructor(opts: CacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.maxBytes = opts.maxBytes ?? 16 << 20;
    this.maxTtlS = opts.maxTtlS ?? 3600;
    this.now = opts.now ?? Date.now;
  }

  /** A live entry, made most recently used; an expired one is dropped. */
  get(key: string): CachedAnswer | undefined {
    const e = this.entries.get(key);
    if (e === undefined || e.expiresAt <= this.now()) {
      if (e !== undefined) this.drop(key, e);
      this.counts.misses++;
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, e);
    this.counts.hits++;
    return e;
  }

  /** Keep `answer` for `ttlS` seconds (nothing for 0, or for an answer larger than a tenth of the bytes). */
  set(key: string, answer: Omit<CachedAnswer, 'storedAt' | 'expiresAt'>, ttlS: number): void {
    const size = answer.msg.length + key.length;
    if (ttlS <= 0 || size > this.maxBytes / 10) return;
    const old = this.entries.get(key);
    if (old !== undefined) this.drop(key, old);
    const now = this.now();
    this.entries.set(key, { ...answer, storedAt: now, expiresAt: now + ttlS * 1000 });
    this.bytes += size;
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.drop(k, e);
      this.counts.evicted++;
    }
  }

  stats(): CacheStats {
    return { entries: this.entries.size, bytes: this.bytes, ...this.counts };
  }

  private drop(key: string, e: CachedAnswer): void {
    this.entries.delete(key);
    this.bytes -= e.msg.length + key.length;
  }
}
