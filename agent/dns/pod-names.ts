/**
 * What each pod resolved: per pod, name → the addresses the DNS proxy answered it with, each
 * until its TTL ran out. Egress host rules accept a destination only when it is in here for that
 * pod and that name (Cilium's toFQDNs guarantee): another pod's lookup, an address hard-coded or
 * resolved some other way, or an answer that has expired does not count.
 *
 * An address is kept for its TTL, but never less than `minRetentionMs` (applications connect a
 * moment after the answer, and many keep an answer a little past its TTL) nor more than
 * `maxRetentionMs`. Bounded: per pod at most `maxNames` names (least recently resolved dropped
 * first) of at most `maxAddresses` addresses (those expiring soonest dropped first); both counted.
 * An agent that stops hands what is still valid to the next one (snapshot / restore): a restart
 * does not deny connections to addresses pods resolved just before it.
 */
import { isIP } from 'node:net';

/** One remembered address: pod, name, address, valid until (ms since the epoch). */
export type RememberedAddress = [pod: string, name: string, ip: string, until: number];

export interface PodNamesOptions {
  maxNames?: number;
  maxAddresses?: number;
  minRetentionMs?: number;
  maxRetentionMs?: number;
  now?: () => number;
}

/** What egress needs: the addresses a pod resolved a name to and may still use. */
export interface ResolvedNames {
  addressesFor(pod: string, name: string): string[];
}

/** A pod's key in the memory: `namespace/name` of its workload. */
export function podKey(w: { namespace: string; name: string }): string {
  return `${w.namespace}/${w.name}`;
}

export class PodNames implements ResolvedNames {
  private readonly pods = new Map<string, Map<string, Map<string, number>>>();
  private readonly maxNames: number;
  private readonly maxAddresses: number;
  private readonly minRetentionMs: number;
  private readonly maxRetentionMs: number;
  private readonly now: () => number;
  /** Names and addresses dropped to stay within the bounds (not by expiry). */
  evicted = 0;

  constructor(opts: PodNamesOptions = {}) {
    this.maxNames = opts.maxNames ?? 1024;
    this.maxAddresses = opts.maxAddresses ?? 32;
    this.minRetentionMs = opts.minRetentionMs ?? 60_000;
    this.maxRetentionMs = opts.maxRetentionMs ?? 3_600_000;
    this.now = opts.now ?? Date.now;
  }

  /** `pod` was answered `addresses` for each of `names` (a name and its CNAME chain). */
  remember(pod: string, names: readonly string[], addresses: ReadonlyArray<{ ip: string; ttl: number }>): void {
    if (addresses.length === 0) return;
    let byName = this.pods.get(pod);
    if (byName === undefined) this.pods.set(pod, (byName = new Map()));
    const now = this.now();
    for (const name of names) {
      const until = addresses.map(({ ip, ttl }) => [ip, now + Math.min(this.maxRetentionMs, Math.max(this.minRetentionMs, ttl * 1000))] as const);
      this.keep(byName, name, until, now);
    }
  }

  /** Every address still valid, for the next agent (restore). */
  snapshot(): RememberedAddress[] {
    const now = this.now();
    const out: RememberedAddress[] = [];
    for (const [pod, byName] of this.pods) {
      for (const [name, ips] of byName) for (const [ip, until] of ips) if (until > now) out.push([pod, name, ip, until]);
    }
    return out;
  }

  /**
   * What a snapshot holds that is still valid, within the bounds and never longer than
   * `maxRetentionMs` from now; entries of another shape are skipped. Returns how many were taken.
   */
  restore(entries: unknown): number {
    if (!Array.isArray(entries)) return 0;
    const now = this.now();
    let taken = 0;
    for (const e of entries) {
      if (!Array.isArray(e) || e.length !== 4) continue;
      const [pod, name, ip, until] = e as unknown[];
      if (typeof pod !== 'string' || typeof name !== 'string' || typeof ip !== 'string' || typeof until !== 'number' || until <= now) continue;
      if (pod.length > 400 || name.length > 1100 || !isIP(ip)) continue;
      let byName = this.pods.get(pod);
      if (byName === undefined) this.pods.set(pod, (byName = new Map()));
      this.keep(byName, name, [[ip, Math.min(until, now + this.maxRetentionMs)]], now);
      taken++;
    }
    return taken;
  }

  /** `name` as egress has it (an SNI or Host: any case, maybe a trailing dot). */
  addressesFor(pod: string, name: string): string[] {
    const ips = this.pods.get(pod)?.get(name.toLowerCase().replace(/\.$/, ''));
    if (ips === undefined) return [];
    const now = this.now();
    const out: string[] = [];
    for (const [ip, until] of ips) {
      if (until > now) out.push(ip);
      else ips.delete(ip);
    }
    return out;
  }

  /** Forget every pod but these (pods that left the node). */
  retain(pods: ReadonlySet<string>): void {
    for (const pod of this.pods.keys()) if (!pods.has(pod)) this.pods.delete(pod);
  }

  /** Names remembered, over every pod. */
  get size(): number {
    let n = 0;
    for (const byName of this.pods.values()) n += byName.size;
    return n;
  }

  /** `name` of one pod now leads to `until` (address, valid until): merged, most recently resolved, bounded. */
  private keep(byName: Map<string, Map<string, number>>, name: string, until: ReadonlyArray<readonly [string, number]>, now: number): void {
    let ips = byName.get(name);
    if (ips === undefined) ips = new Map();
    else byName.delete(name); // re-inserted below: most recently resolved last
    byName.set(name, ips);
    for (const [ip, t] of until) ips.set(ip, Math.max(ips.get(ip) ?? 0, t));
    this.trimAddresses(ips, now);
    for (const n of byName.keys()) {
      if (byName.size <= this.maxNames) break;
      byName.delete(n);
      this.evicted++;
    }
  }

  private trimAddresses(ips: Map<string, number>, now: number): void {
    for (const [ip, until] of ips) if (until <= now) ips.delete(ip);
    if (ips.size <= this.maxAddresses) return;
    const soonest = [...ips].sort((a, b) => a[1] - b[1]).slice(0, ips.size - this.maxAddresses);
    for (const [ip] of soonest) ips.delete(ip);
    this.evicted += soonest.length;
  }
}
