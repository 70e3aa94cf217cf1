/**
 * Where the DNS proxy forwards: `--dns-upstream IP[:PORT]` (repeatable) when given, else the
 * IPv4 `nameserver` lines of the node's /etc/resolv.conf (as the agent sees it; IPv6 servers are
 * skipped, the proxy forwards over IPv4). Read once at start; bad values are one-line errors.
 */
import * as fs from 'node:fs';
import { isIPv4 } from 'node:net';
import { describeCause, invalidArgument, PalisadeError } from '../../common/errors';
import type { UpstreamServer } from './upstream';

/** More than resolv.conf's three, fewer than would make a silent upstream take minutes to give up on. */
export const MAX_UPSTREAMS = 4;
const DNS_PORT = 53;

/** `IP` or `IP:PORT` → a server; undefined for anything else. */
export function parseUpstream(value: string): UpstreamServer | undefined {
  const m = /^([0-9.]+)(?::(\d{1,5}))?$/.exec(value);
  const port = m?.[2] === undefined ? DNS_PORT : Number(m[2]);
  if (!m || !isIPv4(m[1]!) || port < 1 || port > 65535) return undefined;
  return { ip: m[1]!, port };
}

/** The IPv4 nameservers of resolv.conf text, in order (at most MAX_UPSTREAMS). */
export function parseResolvConf(text: string): UpstreamServer[] {
  const out: UpstreamServer[] = [];
  for (const raw of text.split('\n')) {
    const [key, value] = raw.replace(/[#;].*/, '').trim().split(/\s+/);
    if (key === 'nameserver' && value && isIPv4(value) && out.length < MAX_UPSTREAMS) out.push({ ip: value, port: DNS_PORT });
  }
  return out;
}

/** The servers of `--dns-upstream` values, or of `resolvConf` when there are none. */
export function upstreamServers(values: readonly string[] | undefined, resolvConf = '/etc/resolv.conf'): UpstreamServer[] {
  if (values && values.length > 0) {
    if (values.length > MAX_UPSTREAMS) throw invalidArgument(`--dns-upstream given ${values.length} times: at most ${MAX_UPSTREAMS} servers`);
    return values.map((v) => {
      const s = parseUpstream(v);
      if (!s) throw invalidArgument(`--dns-upstream ${JSON.stringify(v.slice(0, 64))} is not an IPv4 address with an optional port, like 10.96.0.10 or 10.96.0.10:53`);
      return s;
    });
  }
  let text: string;
  try {
    text = fs.readFileSync(resolvConf, 'utf8');
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `cannot read ${resolvConf} for the DNS proxy's upstream servers: ${describeCause(err)} (or give --dns-upstream)`, {
      cause: err,
    });
  }
  const servers = parseResolvConf(text);
  if (servers.length === 0) {
    throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `${resolvConf} names no IPv4 nameserver for the DNS proxy to forward to (give --dns-upstream IP)`);
  }
  return servers;
}

/** `--dns-domain`: the cluster domain mesh names end in (`cluster.local`). */
export function validateDnsDomain(domain: string): void {
  const ok = domain.length <= 200 && domain.split('.').every((l) => /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(l));
  if (!ok) throw invalidArgument(`--dns-domain ${JSON.stringify(domain.slice(0, 64))} is not a lowercase DNS name like cluster.local`);
}
