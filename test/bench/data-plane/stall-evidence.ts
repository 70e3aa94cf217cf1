/**
 * What a run that ends with stalled requests (`STALLED`: unanswered for over a second at its end)
 * leaves behind, taken at once while the requests are still stuck: the loadgen's result (each
 * stalled request's local port, how long it waited, what of it went and came), the agents'
 * warn/error lines since the run began (and anything they wrote that was not a log line), their
 * metrics, and `ss -tanoi` in the client pod, the server pods and both nodes (the stuck connection
 * by its port, the proxies' connections with their queues and timers). One directory per run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NsTarget } from '../../harness/proc';
import type { Topology } from '../../harness';
import type { LoadgenResult } from './loadgen';
import type { ProxyProcess } from './stack';

/** pino's levels: warn and above */
const WARN = 40;

export interface StallRun {
  topo: Topology;
  /** where to write (made if missing) */
  dir: string;
  result: LoadgenResult;
  /** when the run began (ms since the epoch): log lines from then on */
  startedMs: number;
  agents: readonly ProxyProcess[];
  /** the namespaces to list sockets in, by name */
  namespaces: ReadonlyArray<{ name: string; target: NsTarget }>;
  /** an agent's metrics (text), by its name; undefined when it cannot be read */
  metrics(agent: string): Promise<string | undefined>;
}

/** The agent lines of level warn and above logged at or after `sinceMs`. */
export function warnLines(lines: readonly unknown[], sinceMs: number): unknown[] {
  return lines.filter((l) => {
    const r = l as { level?: unknown; time?: unknown } | null;
    if (r === null || typeof r !== 'object' || typeof r.level !== 'number' || r.level < WARN) return false;
    const t = typeof r.time === 'string' ? Date.parse(r.time) : typeof r.time === 'number' ? r.time : NaN;
    return !(t < sinceMs);
  });
}

/** Write the evidence of a stalled run into `run.dir`; returns the files written. */
export async function keepStallEvidence(run: StallRun): Promise<string[]> {
  fs.mkdirSync(run.dir, { recursive: true });
  const written: string[] = [];
  const write = (name: string, text: string): void => {
    const file = path.join(run.dir, name);
    fs.writeFileSync(file, text.endsWith('\n') || text === '' ? text : `${text}\n`);
    written.push(file);
  };
  write('loadgen.json', JSON.stringify(run.result, null, 2));
  // sockets first: the stuck connections are still there
  for (const ns of run.namespaces) {
    const r = await run.topo.exec(ns.target, 'ss', ['-tanoi'], { timeoutMs: 10_000 }).catch((err: Error) => ({ stdout: '', stderr: err.message }));
    write(`ss-${ns.name}.txt`, r.stdout || `(ss failed: ${r.stderr.trim()})`);
  }
  for (const a of run.agents) {
    const lines = a.logs ? warnLines(a.logs.lines, run.startedMs) : [];
    write(`${a.name}-warn.jsonl`, lines.map((l) => JSON.stringify(l)).join('\n'));
    if (a.logs && a.logs.other.length > 0) write(`${a.name}-other.txt`, a.logs.other.join('\n'));
    const m = await run.metrics(a.name).catch(() => undefined);
    write(`${a.name}-metrics.txt`, m ?? '(metrics not readable)');
  }
  const ports = (run.result.stalled_conns ?? []).map((c) => c.port).filter((p) => p > 0);
  write(
    'README.txt',
    [
      `stalled: ${run.result.stalled} request(s) unanswered for over 1 s at the end of the run`,
      `the client's local port of each: ${ports.join(', ') || 'unknown'} (grep ":<port> " in ss-*.txt)`,
      'agent-*-warn.jsonl: the agents\' warn/error lines since the run began; agent-*-metrics.txt: their metrics at the end',
    ].join('\n'),
  );
  return written;
}
