/**
 * `make bench-scale`: the mesh simulator (docs/architecture.md "The scale simulator"). One real
 * collector in its own process, N simulated agents (real joins, real TLS sessions, the real
 * protocol) spread over K agent processes, this one coordinating, then the scenarios; prints a table and writes
 * bench/results/scale-<time>.json. Figures, not assertions: it fails only when a scenario
 * could not run. Run: node dist/test/bench/scale/main.js [--nodes N] [--pods-per-node P]
 * [--flow-rate F] [--scenarios a,b] [--duration S] [--processes K] [--smoke] [--out DIR]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { certificateCost, type CertificateCost, type CostModel } from './cost-model';
import type { ScenarioResult } from './measure';
import { parseOptions, type SimOptions } from './options';
import { RUN } from './scenarios';
import { SimMesh, type SetupFigures } from './sim-mesh';

export interface ScaleReport {
  time: string;
  machine: { cpus: number; cpuModel: string; node: string; loadAverageAtStart: number[] };
  options: SimOptions;
  setup: SetupFigures & { nodes: number; pods: number; collectorRssMb: number };
  costModel: CostModel | null;
  simulator: SimulatorFigures;
  certificateCost: CertificateCost;
  scenarios: ScenarioResult[];
}

/** What the simulator itself did: its processes and, over the whole run, the frames its agents received. */
export interface SimulatorFigures {
  processes: number;
  pids: number[];
  /** CPU seconds of each agent process over the run. */
  cpuSecondsByProcess: number[];
  /** Registry and policies frames received by all agents, and those searched for a watched pod's address. */
  frames: number;
  framesSearched: number;
  does: string;
}

/** What a simulated agent does with a registry or policies frame, and what it leaves out. */
export const SIMULATED_AGENT = 'receives every frame whole through its own TLS session and the WebSocket framing, reads type and version (a delta\'s toVersion) from the frame\'s head, answers policies with policy-status; the agent that made a change searches the frame\'s bytes for its new pod\'s address. It does not JSON.parse, check or apply snapshots or deltas and keeps no registry (a real agent\'s cost of that: "agent parse+check")';

const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function row(cells: Array<string | number | null>): string {
  const widths = [18, 6, 7, 8, 8, 8, 13, 6, 7, 9, 7, 7];
  return cells.map((c, k) => String(c ?? '-').padStart(widths[k] ?? 8)).join(' ');
}

function table(results: readonly ScenarioResult[]): void {
  log(row(['scenario', 'nodes', 'pods', 'p50 ms', 'p99 ms', 'max ms', 'bytes/change', 'cores', 'rss MB', 'flows/s', 'csrFail', 'missed']));
  for (const r of results) {
    log(row([r.scenario, r.nodes, r.pods, r.p50Ms, r.p99Ms, r.maxMs, r.bytesPerChange, r.cpuCores, r.rssMb, r.flowsPerSecond, r.csrFailed, r.missed]));
    if (r.error) log(`  ${r.scenario} failed: ${r.error}`);
    else log(`  simulator: ${r.simulatorCpuCores} cores, agent processes' event loop late by ≤ ${r.simulatorLoopDelayMs.p99Ms} ms p99, ${r.simulatorLoopDelayMs.maxMs} ms max`);
    if (Object.keys(r.details).length > 0) log(`  ${JSON.stringify(r.details)}`);
  }
}

async function main(): Promise<number> {
  let opts: SimOptions;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench-scale: ${(err as Error).message}\n`);
    return 2;
  }
  const loadAverageAtStart = os.loadavg().map((l) => Math.round(l * 100) / 100);
  log(`mesh simulator: ${opts.nodes} nodes × ${opts.podsPerNode} pods, ${opts.flowRate} flows/s, on ${os.cpus().length} CPUs (load ${loadAverageAtStart.join(' ')})`);
  log(`  a simulated agent ${SIMULATED_AGENT}`);
  const mesh = new SimMesh(opts);
  let report: ScaleReport | undefined;
  try {
    const setup = await mesh.start(log);
    const first = mesh.agents[0]!;
    if (Object.keys(setup.collectorWarnings).length > 0) log(`  collector warnings: ${JSON.stringify(setup.collectorWarnings)}`);
    // changes travel as deltas: the cost model reads a whole snapshot of the full mesh (in agent 0's process)
    const snapshot = await first.requestSnapshot(true);
    setup.registryFrameBytes = snapshot.registryBytes;
    const model = snapshot.model;
    if (model) {
      log(`  registry frame: ${model.frameBytes} bytes for ${model.workloads} workloads (${model.bytesPerWorkload} B each); encode ${model.encodeMs} ms, agent parse+check ${model.agentParseMs} ms`);
      log(`  at 1000×100: ${(model.target.frameBytes / 1e6).toFixed(1)} MB per snapshot, ${(model.target.bytesPerChange / 1e9).toFixed(1)} GB if all 1000 agents get one (a collector restart; changes are deltas), ~${model.target.agentParseMs} ms to parse on each agent`);
    }
    const certificates = certificateCost(mesh.keyFor(0));
    log(`  one certificate: CSR read and checked ${certificates.readCsrMs} ms, signed ${certificates.issueMs} ms (node-forge, in the collector's thread)`);
    report = {
      time: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, loadAverageAtStart },
      options: opts,
      setup: { ...setup, nodes: opts.nodes, pods: opts.nodes * opts.podsPerNode, collectorRssMb: Math.round(mesh.collector.usage().rssMb) },
      costModel: model,
      simulator: { processes: mesh.processes.count, pids: mesh.processes.pids, cpuSecondsByProcess: [], frames: 0, framesSearched: 0, does: SIMULATED_AGENT },
      certificateCost: certificates,
      scenarios: [],
    };
    await mesh.startFlows();
    for (const name of opts.scenarios) {
      log(`scenario ${name}…`);
      try {
        report.scenarios.push(await RUN[name](mesh));
      } catch (err) {
        log(`  ${name} failed: ${(err as Error).stack ?? String(err)}`);
        report.scenarios.push({ scenario: name, error: (err as Error).message } as ScenarioResult);
      }
    }
    table(report.scenarios);
    const t = await mesh.totals();
    Object.assign(report.simulator, { cpuSecondsByProcess: mesh.processes.cpuSeconds().map((c) => Math.round(c * 10) / 10), frames: t.frames, framesSearched: t.searched });
    log(`simulator: ${report.simulator.processes} agent processes, CPU s ${report.simulator.cpuSecondsByProcess.join(' / ')}; ${t.frames} registry/policies frames received, ${t.searched} searched for a watched pod`);
  } finally {
    await mesh.stop().catch((err: unknown) => log(`cleanup failed: ${String(err)}`));
  }
  fs.mkdirSync(opts.out, { recursive: true });
  const file = path.join(opts.out, `scale-${report.time.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  log(`written: ${file}`);
  return report.scenarios.some((s) => s.error !== undefined) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
