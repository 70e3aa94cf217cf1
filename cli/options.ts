/** Option parsers shared by commands: each turns bad input into a one-line error. */
import { InvalidArgumentError } from 'commander';
import { isIPv4 } from 'node:net';
import { parsePositiveDuration } from '../common/duration';
import { invalidArgument } from '../common/errors';

/** A user's value inside an error message: JSON-quoted (nothing hidden), cut after 64 characters. */
export const quote = (v: string): string => JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v);

/** `v` if it is one of `allowed`, else `invalid FLAG "v": use a, b or c` (INVALID_ARGUMENT, exit 2). */
export function oneOfFlag<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(v)) return v as T;
  const list = allowed.length > 1 ? `${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}` : allowed.join('');
  throw invalidArgument(`invalid ${flag} ${quote(v)}: use ${list}`);
}

/** `10m` (that long ago) or an ISO 8601 time; epoch ms. */
export function parseSince(v: string, now: number): number {
  if (/^\d{4}-\d{2}-\d{2}T/.test(v)) {
    const t = Date.parse(v);
    if (!Number.isNaN(t) && t >= 0) return t;
    throw invalidArgument(`invalid --since ${quote(v)}: not a time like 2024-05-01T12:00:00Z`);
  }
  try {
    return Math.max(0, now - parsePositiveDuration(v, '--since'));
  } catch {
    throw invalidArgument(`invalid --since ${quote(v)}: expected a duration like 30s, 10m or 24h, or a time like 2024-05-01T12:00:00Z`);
  }
}

/** A repeatable option's values, in the order given (`-f a -f b`). */
export function collectValue(value: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), value];
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError(`not a port (1-65535): ${value}`);
  return n;
}

export function collectPort(value: string, prev: number[] = []): number[] {
  return [...prev, parsePort(value)];
}

export function parseIPv4(value: string): string {
  if (!isIPv4(value)) throw new InvalidArgumentError(`not an IPv4 address: ${value}`);
  return value;
}

export function parseCidr4(value: string): string {
  const [ip, len, extra] = value.split('/');
  const n = Number(len);
  if (extra !== undefined || !ip || !isIPv4(ip) || len === undefined || !/^\d+$/.test(len) || n > 32) {
    throw new InvalidArgumentError(`not an IPv4 CIDR like 10.96.0.0/12: ${value}`);
  }
  return `${ip}/${n}`;
}

export function collectCidr(value: string, prev: string[] = []): string[] {
  return [...prev, parseCidr4(value)];
}
