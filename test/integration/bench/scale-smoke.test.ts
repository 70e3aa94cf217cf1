/**
 * The mesh simulator's smoke run (`--smoke`, test/bench/scale/): a real collector process and
 * simulated agents with real joins, TLS sessions and the real protocol, spread over two agent
 * processes (so changes made in one are timed arriving in the other), every scenario once. It
 * must complete every scenario, every agent must get every change, no certificate request may
 * fail, and the JSON report must be written.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SCENARIOS, SMOKE } from '../../bench/scale/options';
import type { ScaleReport } from '../../bench/scale/main';
import { scaled } from '../../harness/time';

const RUN_MS = scaled(240_000);

describe('mesh simulator (make bench-scale --smoke)', function () {
  this.timeout(RUN_MS + 30_000);
  let out: string;
  let report: ScaleReport;
  let stdout = '';

  before(async function () {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-scale-test-'));
    const child = spawn(process.execPath, [path.resolve(__dirname, '../../bench/scale/main.js'), '--smoke', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_MS);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    clearTimeout(timer);
    assert.equal(code, 0, `the simulator exited ${code}:\n${stdout}`);
    const files = fs.readdirSync(out).filter((f) => /^scale-.*\.json$/.test(f));
    assert.equal(files.length, 1, `one scale-<time>.json in ${out}: ${files.join(', ')}`);
    report = JSON.parse(fs.readFileSync(path.join(out, files[0]!), 'utf8')) as ScaleReport;
  });

  after(() => fs.rmSync(out, { recursive: true, force: true }));

  it('runs every scenario on the smoke mesh, with the figures the issue asks for', () => {
    assert.deepEqual(report.scenarios.map((s) => s.scenario), [...SCENARIOS]);
    assert.equal(report.setup.nodes, SMOKE.nodes);
    for (const s of report.scenarios) {
      assert.equal(s.error, undefined, `${s.scenario}: ${s.error}`);
      for (const field of ['nodes', 'pods', 'cpuCores', 'cpuSeconds', 'rssMb', 'flowsPerSecond'] as const) assert.ok(Number.isFinite(s[field]), `${s.scenario}.${field}`);
      assert.ok(s.nodes >= SMOKE.nodes! && s.pods >= SMOKE.nodes! * SMOKE.podsPerNode!, `${s.scenario}: ${s.nodes} nodes, ${s.pods} pods`);
      assert.ok(s.rssMb > 0 && s.cpuSeconds > 0, `${s.scenario}: collector measured (${s.cpuSeconds} CPU s, ${s.rssMb} MB)`);
      assert.ok(s.p50Ms !== null && s.p99Ms !== null && s.maxMs !== null && s.p50Ms <= s.p99Ms && s.p99Ms <= s.maxMs, `${s.scenario}: latencies ${s.p50Ms}/${s.p99Ms}/${s.maxMs}`);
    }
    assert.ok(stdout.includes('bytes/change'), 'the table is printed');
  });

  it('gets every change to every agent', () => {
    for (const s of report.scenarios.filter((x) => x.scenario !== 'steady')) {
      assert.ok(s.changes > 0, `${s.scenario} made changes`);
      assert.equal(s.missed, 0, `${s.scenario}: ${s.missed} (change, agent) pairs never arrived`);
      assert.ok(s.bytesPerChange !== null && s.bytesPerChange > 0, `${s.scenario}: bytes per change`);
      // every agent but the one that made the change, for every change (collector restart: all, once)
      const agents = s.scenario === 'collector-restart' || s.scenario === 'policy-change' ? s.nodes : s.nodes - 1;
      // pod-churn times every pod it replaces at this rate (every 10th past 100 pods/s)
      const timed = s.scenario === 'pod-churn' ? (s.details.podsTimed as number) : s.changes;
      if (s.scenario === 'pod-churn') assert.equal(timed, s.changes, 'every replaced pod timed at the smoke\'s rate');
      assert.equal(s.samples, timed * agents, `${s.scenario}: ${s.samples} arrivals for ${timed} changes × ${agents} agents`);
    }
    const join = report.scenarios.find((s) => s.scenario === 'node-join')!;
    assert.equal(join.details.ownPodsLanded, true);
    assert.ok(typeof join.details.fullStateMs === 'number');
    assert.equal(report.scenarios.find((s) => s.scenario === 'collector-restart')!.details.complete, true);
  });

  it('runs the agents in two processes, each receiving frames, and says what a simulated agent does', () => {
    assert.equal(report.options.processes, 2);
    assert.equal(report.simulator.processes, 2);
    assert.equal(new Set(report.simulator.pids).size, 2, `two agent processes: ${report.simulator.pids.join(', ')}`);
    assert.ok(report.simulator.cpuSecondsByProcess.every((c) => c > 0), `each did work: ${report.simulator.cpuSecondsByProcess.join(' / ')} CPU s`);
    assert.ok(report.simulator.frames > 0 && report.simulator.framesSearched > 0, `${report.simulator.frames} frames, ${report.simulator.framesSearched} searched`);
    assert.ok(stdout.includes('a simulated agent receives every frame whole'), 'what a simulated agent does is printed');
    for (const s of report.scenarios) {
      const lag = s.simulatorLoopDelayMs;
      assert.ok(lag.maxMs > 0 && lag.p99Ms <= lag.maxMs, `${s.scenario}: the agent processes' event-loop delay measured (${lag.p99Ms}/${lag.maxMs} ms)`);
    }
  });

  it('stores flows and fails no certificate request', () => {
    assert.equal(report.setup.csrFailed, 0);
    for (const s of report.scenarios) assert.equal(s.csrFailed, 0, `${s.scenario}: ${s.csrFailed} certificate requests failed`);
    assert.ok(report.scenarios.find((s) => s.scenario === 'steady')!.flowsPerSecond > 0, 'flows stored in steady state');
  });
});
