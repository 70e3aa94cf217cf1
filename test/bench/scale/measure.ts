/**
 * What one scenario costs and how fast its changes spread: the collector's CPU and RSS, bytes
 * pushed to agents, flows stored, certificate failures over the scenario's wall time, and the
 * arrival of each change at each agent.
 */
import * as os from 'node:os';
import type { ScenarioName } from './options';
import type { AgentProxy } from './agent-proxy';
import type { SimMesh } from './sim-mesh';
import { now, sleep } from './timing';
import type { LoopDelay, WorkerTotals } from './worker-messages';
import { firstArrival, spread, type Spread } from './stats';

export interface ScenarioResult extends Spread {
  scenario: ScenarioName;
  nodes: number;
  pods: number;
  /** What p50/p99/max time: a change reaching an agent, or (steady) a flow batch's acknowledgement. */
  latencyOf: string;
  changes: number;
  /** (change, agent) pairs that never arrived within the scenario's wait. */
  missed: number;
  /** Per change, the time until the last agent had it. */
  everyAgentP99Ms: number | null;
  /** Registry and policies frames to agents, payload bytes, over the changes made. */
  bytesPerChange: number | null;
  bytesToAgents: number;
  cpuCores: number;
  /** Collector CPU seconds over the scenario, and per change: the cost that does not depend on how loaded the machine is. */
  cpuSeconds: number;
  cpuSecondsPerChange: number | null;
  rssMb: number;
  /** The collector's process.memoryUsage() in MB at the end (rss, heapUsed, external, arrayBuffers). */
  memoryMb: Record<string, number> | undefined;
  flowsPerSecond: number;
  flowsHeld: number;
  csrFailed: number;
  durationS: number;
  /** The simulator's own CPU (agent processes and coordinator), cores over the scenario. */
  simulatorCpuCores: number;
  /** The agent processes' event-loop delay over the scenario (worst process): how late an arrival may be noted. */
  simulatorLoopDelayMs: LoopDelay;
  loadAverage: number[];
  details: Record<string, unknown>;
  error?: string;
}

/** A change: made at `t` (now()), in force from registry or policies `version`. */
export interface Change {
  t: number;
  version: number;
  owner?: AgentProxy;
}

type Kind = 'registry' | 'policies';

type Totals = WorkerTotals;

export class Measurement {
  private readonly t0 = now();
  private readonly cpu0: number;
  private readonly sim0: number;
  private readonly warnings: Record<string, number>;

  private constructor(
    private readonly mesh: SimMesh,
    private readonly scenario: ScenarioName,
    private readonly before: Totals,
  ) {
    mesh.resetRss();
    this.cpu0 = mesh.collector.usage().cpuSeconds;
    this.sim0 = mesh.simulatorCpuSeconds();
    this.warnings = mesh.collector.warnings();
  }

  static async begin(mesh: SimMesh, scenario: ScenarioName): Promise<Measurement> {
    await mesh.processes.all({ op: 'loop-delay' }); // from now on
    return new Measurement(mesh, scenario, await mesh.totals());
  }

  get started(): number {
    return this.t0;
  }

  async end(latencyOf: string, changes: number, latency: { samples: number[]; missed: number; everyAgent: number[] }, details: Record<string, unknown>): Promise<ScenarioResult> {
    const wall = (now() - this.t0) / 1000;
    const after = await this.mesh.totals();
    const sim = this.mesh.simulatorCpuSeconds() - this.sim0;
    const delays = await this.mesh.processes.all<LoopDelay>({ op: 'loop-delay' });
    const cpu = this.mesh.collector.usage().cpuSeconds - this.cpu0;
    const push = after.pushBytes - this.before.pushBytes;
    const round = (v: number, d = 1): number => Math.round(v * 10 ** d) / 10 ** d;
    return {
      scenario: this.scenario,
      nodes: this.mesh.agents.length,
      pods: this.mesh.pods.reduce((s, p) => s + p.count, 0),
      latencyOf,
      changes,
      ...spread(latency.samples),
      missed: latency.missed,
      everyAgentP99Ms: spread(latency.everyAgent).p99Ms,
      bytesPerChange: changes > 0 ? Math.round(push / changes) : null,
      bytesToAgents: after.bytesIn - this.before.bytesIn,
      cpuCores: round(cpu / wall, 2),
      cpuSeconds: round(cpu, 2),
      cpuSecondsPerChange: changes > 0 ? round(cpu / changes, 3) : null,
      rssMb: round(this.mesh.maxRssMb),
      memoryMb: this.mesh.collector.memory(),
      flowsPerSecond: Math.round((after.flowsAcked - this.before.flowsAcked) / wall),
      flowsHeld: after.flowsHeld - this.before.flowsHeld,
      csrFailed: after.csrFailed - this.before.csrFailed,
      durationS: round(wall),
      simulatorCpuCores: round(sim / wall, 2),
      simulatorLoopDelayMs: { p99Ms: Math.max(...delays.map((d) => d.p99Ms)), maxMs: Math.max(...delays.map((d) => d.maxMs)) },
      loadAverage: os.loadavg().map((l) => round(l, 2)),
      details: { ...details, ...warningsSince(this.warnings, this.mesh.collector.warnings()) },
    };
  }
}

/** For each change, when each agent (but its owner) had it; pairs that never came are `missed`. */
export function propagation(agents: readonly AgentProxy[], changes: readonly Change[], kind: Kind): { samples: number[]; missed: number; everyAgent: number[] } {
  const samples: number[] = [];
  const everyAgent: number[] = [];
  let missed = 0;
  for (const c of changes) {
    let last = 0;
    for (const a of agents) {
      if (a === c.owner) continue;
      const arrival = firstArrival(a[kind], c.version, c.t);
      if (arrival === undefined) {
        missed += 1;
        continue;
      }
      samples.push(arrival.t - c.t);
      last = Math.max(last, arrival.t - c.t);
    }
    everyAgent.push(last);
  }
  return { samples, missed, everyAgent };
}

/** Wait until every agent has `version` (or later) of `kind` since `since`, or the time is up. */
export async function everyAgentHas(agents: readonly AgentProxy[], kind: Kind, version: number, since: number, timeoutMs: number): Promise<boolean> {
  const until = now() + timeoutMs;
  while (now() < until) {
    if (agents.every((a) => firstArrival(a[kind], version, since) !== undefined)) return true;
    await sleep(50);
  }
  return false;
}

/** `{collectorWarnings: {line: count}}` for the lines logged since `before`, or nothing. */
function warningsSince(before: Record<string, number>, now: Record<string, number>): { collectorWarnings?: Record<string, number> } {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) if (v > (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
  return Object.keys(out).length > 0 ? { collectorWarnings: out } : {};
}
