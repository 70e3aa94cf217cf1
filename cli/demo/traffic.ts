/**
 * `palisade demo traffic`: a steady, visible load from a demo pod (./load-client.ts runs in it) to a
 * Service of the demo (or any URL), a line a second with which backend answered, and a per-backend
 * tally when it ends (its duration, the load's end, or Ctrl-C). The target and the tally are pure
 * functions (table-tested); the rest runs the load and reads its lines.
 */
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { invalidArgument, PalisadeError } from '../../common/errors';
import { spawnIn } from '../../test/harness/proc';
import { distRoot } from './daemons';
import type { DemoService } from './services';

export { MAX_RATE, parseRate } from './settings';

export interface TrafficOptions {
  from: string;
  /** a Service of the demo (its first virtual IP and port), or http://HOST[:PORT][/PATH] */
  to: string;
  /** requests per second */
  rate: number;
  /** 0: until Ctrl-C */
  durationMs: number;
  path: string;
}

/** The URL `to` names: a demo Service's first virtual IP and port with `urlPath`, or the URL itself. */
export function trafficUrl(to: string, urlPath: string, services: DemoService[]): string {
  if (!urlPath.startsWith('/')) throw invalidArgument(`--path ${JSON.stringify(urlPath)}: must start with /`);
  const svc = services.find((s) => s.name === to);
  if (svc) return `http://${svc.ips[0]}:${svc.ports[0]!.port}${urlPath}`;
  if (/^http:\/\//.test(to)) {
    try {
      return new URL(to).toString();
    } catch {
      // a one-line refusal below
    }
  }
  throw invalidArgument(`--to ${JSON.stringify(to)}: a demo Service (${services.map((s) => s.name).join(', ')}) or an http:// URL`);
}

export interface LoadLine {
  backend?: string | null;
  status?: number;
  error?: string;
  event?: string;
  sent?: number;
  skipped?: number;
}

/** Counts answers per backend (`error <code>` for no answer, `HTTP <status>` for a non-2xx without a name). */
export class Tally {
  readonly total = new Map<string, number>();
  private window = new Map<string, number>();
  answers = 0;
  skipped = 0;

  add(l: LoadLine): void {
    if (l.event === 'done') {
      this.skipped = l.skipped ?? 0;
      return;
    }
    const key = l.error !== undefined ? `error ${l.error}` : l.backend && l.status !== undefined && l.status < 300 ? l.backend : `HTTP ${l.status ?? '?'}`;
    this.answers++;
    for (const m of [this.total, this.window]) m.set(key, (m.get(key) ?? 0) + 1);
  }

  /** What came in since the last call: `web-1 6  web-2 4`. */
  takeWindow(): string {
    const line = format(this.window);
    this.window = new Map();
    return line;
  }

  /** Per backend, with its share: `web-1 61 (51%)  web-2 59 (49%)`. */
  summary(): string {
    if (this.answers === 0) return 'no answers';
    return [...this.total]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, n]) => `${k} ${n} (${Math.round((100 * n) / this.answers)}%)`)
      .join('  ');
  }
}

function format(m: Map<string, number>): string {
  if (m.size === 0) return '-';
  return [...m]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, n]) => `${k} ${n}`)
    .join('  ');
}

/**
 * Run the load from `pod` to `url` and print a line a second; resolves with the tally when the
 * load ends by itself or `stop` resolves (Ctrl-C).
 */
export async function runTraffic(
  pod: { netnsPath: string; cgroupPath: string },
  url: string,
  opts: Pick<TrafficOptions, 'rate' | 'durationMs'>,
  say: (line: string) => void,
  stop: Promise<unknown>,
): Promise<{ tally: Tally; seconds: number }> {
  const child = spawnIn(pod, process.execPath, [path.join(distRoot(), 'cli', 'demo', 'load-client.js'), url, String(opts.rate), String(opts.durationMs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tally = new Tally();
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      tally.add(JSON.parse(line) as LoadLine);
    } catch {
      // not a line of the load client's
    }
  });
  const started = Date.now();
  const ticker = setInterval(() => say(`${String(Math.round((Date.now() - started) / 1000)).padStart(4)}s  ${tally.takeWindow()}`), 1000);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void stop.then(() => child.kill('SIGTERM'));
  const code = await exited;
  clearInterval(ticker);
  if (code !== 0 && tally.answers === 0) throw new PalisadeError('PALISADE_ERR_INTERNAL', `the load did not run in the pod: ${stderr.trim().split('\n')[0] ?? `exit ${code}`}`);
  return { tally, seconds: (Date.now() - started) / 1000 };
}
