/** Option parsers shared by commands: each turns bad input into a one-line error. */
import { InvalidArgumentError } from 'commander';
import { isIPv4 } from 'node:net';

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
