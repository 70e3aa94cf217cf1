/**
 * What a host name resolves to, for the egress check "the original destination must be an
 * address of the name the client asked for" (SNI / Host cannot be spoofed onto another IP).
 *
 * A hosts file (`--hosts-file`, /etc/hosts format) answers first; otherwise the system's DNS
 * servers, cached for the record's TTL (clamped). Failures resolve to no addresses, which the
 * egress check turns into a denial: fail closed.
 */
import { promises as dns } from 'node:dns';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import { errorCode } from '../../common/errors';
import type { Logger } from '../../common/log';

export interface HostResolver {
  resolve(name: string): Promise<string[]>;
}

export interface ResolverOptions {
  hostsFile?: string;
  log: Logger;
  /** DNS answers are kept at least this long and at most maxTtlMs. */
  minTtlMs?: number;
  maxTtlMs?: number;
  /** How long a failed lookup is remembered. */
  negativeTtlMs?: number;
  timeoutMs?: number;
}

interface Cached {
  ips: string[];
  until: number;
}

/** Parse /etc/hosts text into name → addresses. Bad lines are returned, not thrown. */
export function parseHosts(text: string): { names: Map<string, string[]>; bad: number[] } {
  const names = new Map<string, string[]>();
  const bad: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const [ip, ...hosts] = line.split(/\s+/);
    if (!ip || !isIP(ip) || hosts.length === 0) {
      bad.push(i + 1);
      return;
    }
    for (const h of hosts) {
      const name = h.toLowerCase().replace(/\.$/, '');
      const list = names.get(name) ?? [];
      if (!list.includes(ip)) list.push(ip);
      names.set(name, list);
    }
  });
  return { names, bad };
}

export class CachingResolver implements HostResolver {
  private readonly log: Logger;
  private readonly cache = new Map<string, Cached>();
  private readonly inflight = new Map<string, Promise<string[]>>();
  private hosts: { names: Map<string, string[]>; mtimeMs: number; checked: number } | undefined;
  private readonly dns: dns.Resolver;
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly negativeTtl: number;

  constructor(private readonly opts: ResolverOptions) {
    this.log = opts.log.child({ component: 'resolver' });
    this.dns = new dns.Resolver({ timeout: opts.timeoutMs ?? 2000, tries: 2 });
    this.minTtl = opts.minTtlMs ?? 1000;
    this.maxTtl = opts.maxTtlMs ?? 300_000;
    this.negativeTtl = opts.negativeTtlMs ?? 5000;
    if (opts.hostsFile) this.loadHosts(true);
  }

  async resolve(name: string): Promise<string[]> {
    const key = name.toLowerCase().replace(/\.$/, '');
    const fromFile = this.fromHostsFile(key);
    if (fromFile) return fromFile;
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.ips;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.lookup(key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private fromHostsFile(name: string): string[] | undefined {
    if (!this.opts.hostsFile) return undefined;
    // Re-read when the file changes, looked at most once a second.
    if (!this.hosts || Date.now() - this.hosts.checked > 1000) this.loadHosts(false);
    return this.hosts?.names.get(name);
  }

  private loadHosts(first: boolean): void {
    const file = this.opts.hostsFile!;
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch (err) {
      if (first || this.hosts) this.log.warn({ file, error: errorCode(err) }, 'hosts file unreadable; using DNS only');
      this.hosts = { names: new Map(), mtimeMs: 0, checked: Date.now() };
      return;
    }
    if (this.hosts && this.hosts.mtimeMs === st.mtimeMs) {
      this.hosts.checked = Date.now();
      return;
    }
    const { names, bad } = parseHosts(fs.readFileSync(file, 'utf8'));
    if (bad.length) this.log.warn({ file, lines: bad }, 'hosts file lines ignored (want "IP name…")');
    this.hosts = { names, mtimeMs: st.mtimeMs, checked: Date.now() };
    this.log.info({ file, names: names.size }, 'hosts file loaded');
  }

  private async lookup(name: string): Promise<string[]> {
    const answers = await Promise.allSettled([this.dns.resolve4(name, { ttl: true }), this.dns.resolve6(name, { ttl: true })]);
    const ips: string[] = [];
    let ttl = Infinity;
    for (const a of answers) {
      if (a.status !== 'fulfilled') continue;
      for (const r of a.value) {
        ips.push(r.address);
        ttl = Math.min(ttl, r.ttl * 1000);
      }
    }
    if (ips.length === 0) {
      const err = answers.find((a) => a.status === 'rejected') as PromiseRejectedResult | undefined;
      this.log.debug({ name, error: errorCode(err?.reason) }, 'name did not resolve');
      this.cache.set(name, { ips, until: Date.now() + this.negativeTtl });
      return ips;
    }
    const keep = Math.min(this.maxTtl, Math.max(this.minTtl, Number.isFinite(ttl) ? ttl : this.minTtl));
    this.cache.set(name, { ips, until: Date.now() + keep });
    return ips;
  }
}
