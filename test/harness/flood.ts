/** Floods from a pod (test/fixtures/tcp-flood.js) and the agent's metrics as its node reads them. */
import type { ChildProcess } from 'node:child_process';
import { parsePromText, sample } from '../unit/agent/metrics/prom-text';
import { fixturePath } from './fixtures';
import { collect, type NsTarget } from './proc';
import type { Topology } from './topology';

export interface FloodSpec {
  ip: string;
  port: number;
  count: number;
  concurrency?: number;
  /** bytes each connection sends once connected */
  send?: number;
  /** with `send`: the ClientHello body length its first record announces */
  hello?: number;
  /** keep the connections open this long after the last one was opened */
  holdMs?: number;
  /** without holdMs: how long each connection waits for the peer to close it */
  waitMs?: number;
}

export interface FloodResult {
  attempted: number;
  connected: number;
  failedToConnect: number;
  closedByPeer: number;
  resetByPeer: number;
  openAtEnd: number;
  errors: Record<string, number>;
  ms: number;
}

/** Start a flood in `target`; `done` resolves with its result once it has finished. */
export function startFlood(topo: Topology, target: NsTarget, spec: FloodSpec, timeoutMs = 180_000): { child: ChildProcess; done: Promise<FloodResult> } {
  const child = topo.spawn(target, process.execPath, [fixturePath('tcp-flood.js'), JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const done = collect(child, { timeoutMs }).then((r) => {
    const last = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(last) as FloodResult;
    } catch {
      throw new Error(`tcp-flood produced no result (code ${r.code}, signal ${r.signal}): ${r.stdout} ${r.stderr}`);
    }
  });
  return { child, done };
}

/** The agent's /metrics, fetched from inside `node` (metrics are served to the node only). */
export async function nodeMetrics(topo: Topology, node: NsTarget, address: string): Promise<ReturnType<typeof parsePromText>> {
  const r = await topo.exec(node, 'curl', ['-s', '-m', '5', `http://${address}/metrics`]);
  if (r.code !== 0) throw new Error(`metrics at ${address} unreadable from the node (curl ${r.code}): ${r.stderr}`);
  return parsePromText(r.stdout);
}

/** One sample of the agent's /metrics (nodeMetrics), whose labels include `labels`; throws if it is not exported. */
export async function nodeMetric(topo: Topology, node: NsTarget, address: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const s = sample(await nodeMetrics(topo, node, address), name, labels);
  if (!s) throw new Error(`${name}${Object.keys(labels).length ? JSON.stringify(labels) : ''} is not in the metrics at ${address}`);
  return s.value;
}
