/**
 * `make bench`'s data-plane benchmark, run small (--smoke: one round, fractions of a second per
 * workload) so the script cannot rot: it must build its world (two agents, the haproxy pair,
 * nginx, namespaces), pass its own setup checks (L7 policy enforced, mTLS client certificate
 * required), drive every path, print the table, write the JSON, and leave nothing behind.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cgroup2Root, listNetnsSync, requirePrivileges, tempDir } from '../../harness';
import { cgroupV1CpuMount } from '../../bench/data-plane/budget';

const PATHS = ['direct', 'palisade-l4', 'palisade-l7', 'palisade-routed', 'haproxy'];
const WORKLOADS = ['rate4', 'rate64', 'sat16', 'sat64', 'conn16', 'bulk'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  pid: number;
  ms: number;
}

function runBench(out: string, timeoutMs: number): Promise<Run> {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'data-plane.js');
  const started = Date.now();
  const child = spawn(process.execPath, [script, '--smoke', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, pid: child.pid!, ms: Date.now() - started });
    }),
  );
}

describe('make bench: data-plane benchmark, smoke run (real agents, haproxy, nginx)', function () {
  this.timeout(120_000);
  let out: string;
  let run: Run;
  let doc: any;

  before(async function () {
    requirePrivileges();
    out = tempDir('bench-smoke');
    run = await runBench(out, 90_000);
    const latest = path.join(out, 'latest.json');
    if (fs.existsSync(latest)) doc = JSON.parse(fs.readFileSync(latest, 'utf8'));
  });

  after(function () {
    if (out) fs.rmSync(out, { recursive: true, force: true });
  });

  it('exits 0 within a minute and prints the table with every path and the targets', function () {
    assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr.slice(-3000)}`);
    assert.ok(run.ms < 60_000, `took ${run.ms} ms`);
    const header = run.stdout.split('\n').find((l) => l.startsWith('metric'));
    assert.ok(header, `no table header in:\n${run.stdout}`);
    for (const p of PATHS) assert.ok(header.includes(p), `column ${p} in ${header}`);
    for (const row of ['latency p50 (1k req/s, 4 conns)', 'p99 (1k req/s, 64 conns)', 'max req/s (64 conns)', 'new conn/s', 'bulk (1 conn', 'proxy CPU s/1000 req', 'peak RSS']) {
      assert.ok(run.stdout.includes(row), `row "${row}" printed`);
    }
    assert.match(run.stdout, /targets \(benchmark figures, not test assertions\):\n(\s+(met|MISSED)\s+.+\n?)+/);
    assert.ok(fs.readdirSync(out).some((f) => /^\d{4}-\d\d-\d\dT.+\.json$/.test(f)), 'a timestamped JSON next to latest.json');
  });

  it('proved each path is what it claims before measuring (L7 and haproxy answer 403 outside their rules)', function () {
    assert.ok(doc, 'latest.json written');
    assert.match(doc.checks['palisade-l7'], /GET \/admin -> 403, POST -> 403/);
    assert.match(doc.checks.haproxy, /GET \/admin -> 403, POST -> 403, no client cert -> (?!200)/);
    assert.match(doc.checks['palisade-l4'], /\/admin -> 404/);
    assert.match(doc.checks['palisade-routed'], /\/admin -> 404/, 'the routed path reaches the L4 server through its route');
    assert.match(doc.settings.cpuBudget, /^cgroup-v1-cpu|^cgroup-v2-cpu\.max/);
  });

  it('measured every workload on every path, without failures, with plausible figures', function () {
    for (const w of WORKLOADS) {
      for (const p of PATHS) {
        const s = doc.samples.find((x: any) => x.workload === w && x.path === p);
        assert.ok(s, `a sample for ${w} on ${p}`);
        const r = s.result;
        const where = `${w} on ${p}: ${JSON.stringify(r)}`;
        // bulk: one long response, maybe not finished within the smoke run's fraction of a second
        assert.ok(w === 'bulk' ? r.body_bytes > 0 : r.requests > 0, where);
        assert.equal(r.status['2xx'], r.requests, `every answer 2xx, ${where}`);
        assert.equal(r.errors + r.timeouts + r.connect_errors, 0, where);
        assert.deepEqual(s.filterDrops, {}, `the pod filters dropped none of the bench's packets, ${w} on ${p}`);
        if (w.startsWith('rate')) assert.ok(r.rps > 500 && r.rps < 1100, `about 1000 req/s, ${where}`);
        if (w === 'bulk') assert.ok(r.gbit_s > 0.01 && r.body_bytes > 1 << 20, where);
        else assert.ok(r.latency_us.p50 > 0 && r.latency_us.p99 >= r.latency_us.p50 && r.latency_us.p99 < 2_000_000, where);
        if (p !== 'direct' && w !== 'bulk') assert.ok(s.proxyCpuUsec > 0, `the proxies of ${p} did the work (${w})`);
        if (p === 'direct') assert.equal(s.proxyCpuUsec, 0);
      }
    }
    const metric = (id: string): any => doc.summary.metrics.find((m: any) => m.id === id);
    for (const p of PATHS) assert.ok(metric('rate4.added_p99_us').values[p], `added p99 for ${p}`);
    assert.ok(metric('sat64.rps').ratio['palisade-l7'] > 0, 'a Palisade / haproxy ratio');
    assert.ok(metric('sat64.rps').ratio['palisade-routed'] > 0, 'the routed path\'s ratio');
    const cpu = metric('rate4.proxy_cpu_s_per_1000').values;
    for (const p of ['palisade-l4', 'palisade-l7', 'palisade-routed', 'haproxy']) assert.ok(cpu[p].median > 0 && cpu[p].median < 10, `CPU per 1000 req of ${p}: ${cpu[p].median}`);
    for (const a of ['agent-1', 'agent-2', 'haproxy-1', 'haproxy-2']) assert.ok(doc.summary.rssMb[a] > 1 && doc.summary.rssMb[a] < 4096, `RSS of ${a}`);
    assert.ok(doc.summary.targets.length >= 5 && doc.summary.targets.every((t: any) => typeof t.met === 'boolean'));
  });

  it('leaves no namespaces, pins, cgroups or work directory behind', function () {
    const pid = run.pid;
    assert.deepEqual(listNetnsSync().filter((n) => n.startsWith(`palisade-${pid}-`)), [], 'network namespaces');
    assert.deepEqual(fs.readdirSync(cgroup2Root()).filter((n) => n.startsWith(`palisade-test-${pid}-`)), [], 'cgroup v2 subtree');
    const v1 = cgroupV1CpuMount();
    if (v1) assert.deepEqual(fs.readdirSync(v1).filter((n) => n.startsWith(`palisade-bench-${pid}-`)), [], 'cgroup v1 cpu budgets');
    const pins = '/sys/fs/bpf/palisade';
    if (fs.existsSync(pins)) assert.deepEqual(fs.readdirSync(pins).filter((n) => n.startsWith(`pl${pid}-`)), [], 'bpffs pins');
    assert.ok(doc.workDir && !fs.existsSync(doc.workDir), `work directory ${doc.workDir} removed`);
  });
});
