/**
 * The collector's event loop under load (issue #15 item 2), figures only: a collector in this
 * process, `agents` real node sessions in a worker thread (test/bench/loop/agents.ts) sending
 * `batch`-flow batches (default 500; an agent at a low rate sends what 100 ms held) at a fixed rate, and a 1,000-policy apply pushed to them
 * (sent, and its answer read, by a client in another thread: loop/client.ts). For (a) ingest,
 * (b) apply, (c) both: event-loop delay p50/p99/max (monitorEventLoopDelay, 1 ms resolution),
 * event-loop utilization, GC pauses (PerformanceObserver 'gc'), flows stored per second,
 * acknowledgement latency, the slowest /healthz, the longest turn of the event loop by the thread's
 * CPU (what the delay would be on an idle machine, ±1 ms: loop/stalls.ts), the collector's CPU per
 * 1,000 flows stored by thread (the agents' and the client's threads left out), and the load average.
 * Run: node [--cpu-prof] dist/test/bench/collector-loop.js [--stalls[=MS]] [agents=8] [flows/s=10000] [seconds=10] [batch=500] [health=on|off]
 * health off: /healthz is not asked (its client and server run on the collector's thread: their CPU
 * would count as the collector's). --stalls: each run also lists its longest stalls over MS (default
 * 5) with what ran during each (loop/stalls.ts; its profiler and 1 ms timer cost the thread a little).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import type { RunningCollector } from '../../collector/collector';
import { HealthPoller, keepAlive, loopDelay } from '../integration/collector/event-loop-fixtures';
import { collector, joinedNodeDir, Stack, TempDirs } from '../integration/collector/helpers';
import type { AgentsInput, AgentsReport } from './loop/agents';
import type { ClientAnswer, ClientInput } from './loop/client';
import { StallWatch, TurnCpu } from './loop/stalls';
import { microsPerFlow, threadCpu, threadCpuSince, type ThreadCpu } from './loop/thread-cpu';

/** The load's threads: their CPU is not the collector's. */
const AGENTS_THREAD = 'bench-agents';
const CLIENT_THREAD = 'bench-client';
const POLICIES = 1_000;
const silent = pino({ level: 'silent' });

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const load = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' ');

/** GC pauses on this thread while it runs. */
function gcPauses(): { stop: () => { count: number; maxMs: number; totalMs: number; over10: number } } {
  const pauses: number[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) pauses.push(e.duration);
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    stop: () => {
      obs.disconnect();
      return { count: pauses.length, maxMs: Math.max(0, ...pauses), totalMs: pauses.reduce((a, b) => a + b, 0), over10: pauses.filter((p) => p > 10).length };
    },
  };
}

class Agents {
  private readonly worker: Worker;
  private constructor(input: AgentsInput) {
    this.worker = new Worker(path.join(__dirname, 'loop', 'agents.js'), { workerData: input, name: AGENTS_THREAD });
  }

  static async start(input: AgentsInput): Promise<Agents> {
    const a = new Agents(input);
    await a.next('running');
    return a;
  }

  async stop(): Promise<AgentsReport> {
    this.worker.postMessage('stop');
    const m = await this.next('report');
    await this.worker.terminate();
    return m.report as AgentsReport;
  }

  private next(type: string): Promise<{ type: string; report?: AgentsReport; message?: string }> {
    return new Promise((resolve, reject) => {
      const on = (m: { type: string; message?: string }): void => {
        if (m.type === 'error') reject(new Error(m.message));
        else if (m.type === type) resolve(m);
        else return;
        this.worker.off('message', on);
      };
      this.worker.on('message', on);
      this.worker.once('error', reject);
    });
  }
}

/** The collector's CPU (every thread but the agents'), per second and per 1,000 flows stored, by thread. */
function collectorCpu(cpu: ThreadCpu, stored: number, elapsed: number): string {
  let total = 0;
  const parts: string[] = [];
  for (const [name, s] of [...cpu].sort((a, b) => b[1] - a[1])) {
    if (name === AGENTS_THREAD || name === CLIENT_THREAD || s <= 0) continue;
    total += s;
    parts.push(`${name} ${s.toFixed(2)}`);
  }
  const per1k = stored > 0 ? `${((total * 1000) / stored).toFixed(3)} s per 1,000 flows` : 'no flows';
  const perFlow = stored > 0 ? `; µs per flow: ${microsPerFlow(cpu, stored)}` : '';
  return `collector CPU ${total.toFixed(2)} s (${((total / elapsed) * 100).toFixed(0)} % of a core), ${per1k}; by thread (s): ${parts.join(', ')}${perFlow}`;
}

async function main(): Promise<void> {
  const stallsArg = process.argv.slice(2).find((a) => a.startsWith('--stalls'));
  const stallsMs = stallsArg === undefined ? undefined : Number(stallsArg.split('=')[1] ?? 5);
  const args = process.argv.slice(2).filter((a) => a !== stallsArg);
  const agents = Number(args[0] ?? 8);
  const rate = Number(args[1] ?? 10_000);
  const seconds = Number(args[2] ?? 10);
  const batch = Number(args[3] ?? 500);
  const askHealth = args[4] !== 'off';
  const intervalMs = (batch * agents * 1000) / rate;
  const dirs = new TempDirs();
  const stack = new Stack();
  try {
    const data = dirs.make();
    const col: RunningCollector = await collector(stack, { dataDir: data, log: silent, policyParseDeadlineMs: 120_000, flowRetentionIntervalMs: 3_600_000 });
    const agentDirs: string[] = [];
    for (let i = 0; i < agents; i++) agentDirs.push(await joinedNodeDir(dirs, col, data, `node-${i}`));
    const client = new Worker(path.join(__dirname, 'loop', 'client.js'), {
      workerData: { port: col.port, caPem: col.ca.certPem, token: col.adminToken, policies: POLICIES } satisfies ClientInput,
      name: CLIENT_THREAD,
    });
    stack.push(() => void client.terminate());
    console.log(`collector event loop: node ${process.version}, ${agents} agents × ${batch}-flow batches, ${rate} flows/s offered, ${seconds} s per run`);
    let round = 0;
    // the request is made and its answer read in the client's thread (loop/client.ts), not this one
    const apply = async (): Promise<string> => {
      const answered = new Promise<ClientAnswer>((resolve, reject) => {
        client.once('message', resolve);
        client.once('error', reject);
      });
      client.postMessage({ round: ++round });
      const r = await answered;
      if (r.status !== 200) throw new Error(`apply answered ${r.status}: ${r.text}`);
      return `${r.ms.toFixed(0)} ms`;
    };
    for (const what of ['idle', 'ingest', 'apply', 'ingest+apply'] as const) {
      const ingest = what.startsWith('ingest') ? await Agents.start({ url: col.url, caPem: col.ca.certPem, dirs: agentDirs, intervalMs, batch }) : undefined;
      const storedBefore = col.flows.rows();
      const health = askHealth ? new HealthPoller(col, { token: col.adminToken, agent: keepAlive(stack) }) : undefined;
      const stalls = stallsMs === undefined ? undefined : await StallWatch.start(stallsMs);
      const turns = new TurnCpu(Infinity);
      const loop = loopDelay();
      const gc = gcPauses();
      const elu0 = performance.eventLoopUtilization();
      const cpu0 = threadCpu();
      const loadAtStart = load();
      const t = performance.now();
      const applied: string[] = [];
      if (what.endsWith('apply')) {
        // create 1,000, then change all of them, spread over the run
        applied.push(await apply());
        await new Promise((r) => setTimeout(r, Math.max(0, (seconds * 1000) / 2 - (performance.now() - t))));
        applied.push(await apply());
      }
      await new Promise((r) => setTimeout(r, Math.max(0, seconds * 1000 - (performance.now() - t))));
      const elapsed = (performance.now() - t) / 1000;
      const stored = col.flows.rows() - storedBefore;
      const elu = performance.eventLoopUtilization(elu0).utilization;
      const cpu = threadCpuSince(cpu0);
      const d = loop.stop();
      const g = gc.stop();
      const turnCpu = turns.stop();
      const longest = await stalls?.stop();
      const h = await health?.stop();
      const report = ingest ? await ingest.stop() : undefined;
      console.log(
        `${what.padEnd(13)} load ${loadAtStart} → ${load()}: loop delay p50 ${d.p50.toFixed(1)} / p99 ${d.p99.toFixed(1)} / max ${d.max.toFixed(1)} ms, ` +
          `utilization ${(elu * 100).toFixed(0)} %, GC ${g.count} pauses max ${g.maxMs.toFixed(1)} ms (${g.over10} > 10 ms, ${g.totalMs.toFixed(0)} ms total), ` +
          (h ? `/healthz ${h.answered}× slowest ${h.maxMs.toFixed(1)} ms` : '/healthz not asked') +
          (report
            ? `; stored ${Math.round(stored / elapsed)} flows/s, acks p50 ${pct(report.ackMs, 50).toFixed(1)} / p99 ${pct(report.ackMs, 99).toFixed(1)} / max ${pct(report.ackMs, 100).toFixed(1)} ms, ` +
              `${report.acked}/${report.sent} batches acked, ${report.heldBack} held back by the window`
            : '') +
          (applied.length ? `; applies ${applied.join(', ')}` : ''),
      );
      console.log(`${''.padEnd(13)} ${turnCpu}; ${collectorCpu(cpu, stored, elapsed)}`);
      if (longest) console.log(longest.length ? longest.join('\n') : `  no stall over ${stallsMs} ms`);
    }
  } finally {
    await stack.unwind();
    dirs.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  },
);
