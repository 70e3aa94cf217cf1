/**
 * The demo's fixed settings and the option parser its command needs when it is declared: light on
 * purpose. `palisade` declares every command at start; the demo's code (demo.ts, traffic.ts, and
 * the test harness they run on) is loaded only when a demo command runs (cli/commands/demo.ts).
 */
import { invalidArgument } from '../../common/errors';

export const DEFAULT_DEMO_DIR = '/run/palisade/demo';
export const TRUST_DOMAIN = 'cluster.local';
export const WEB_PORT = 8080;
export const MAX_RATE = 500;

/** `palisade demo traffic --rate N`: requests per second, more than 0 and at most MAX_RATE. */
export function parseRate(v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0) || n > MAX_RATE) throw invalidArgument(`--rate ${JSON.stringify(v)}: requests per second, more than 0 and at most ${MAX_RATE}`);
  return n;
}
