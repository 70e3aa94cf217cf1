/**
 * The data-plane benchmark (`make bench`): Palisade against no mesh and against a haproxy pair,
 * same machine, same run, interleaved (direct, palisade-l4, palisade-l7, palisade-routed, haproxy; again; …).
 *
 *   node dist/test/bench/data-plane.js [--rounds N] [--scale F] [--smoke] [--out DIR]
 *        [--paths a,b] [--workloads a,b] [--cpu-prof DIR] [--agent-flags "--node-flag …"]
 *
 * Prints the table on stdout (progress on stderr) and writes <out>/<timestamp>.json and
 * <out>/latest.json (default out: bench/results). Root only; its own namespaces and cgroups.
 * See the README's "Performance" section for what each path and figure is.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { isRoot } from '../harness';
import { BULK_PATH, SMALL_PATH } from './data-plane/configs';
import { cpuUsageUsec } from './data-plane/budget';
import { AnonPeaks, memMb, pssMb } from './data-plane/memory';
import { ensureLoadgen, repoRoot, runLoadgen, type Workload } from './data-plane/loadgen';
import { readFilterDrops } from './data-plane/filter-drops';
import { describeDrops, dropsBetween, renderTable, silent, summarize, type Sample } from './data-plane/report';
import { buildStack, PATHS, PROXIES, type PathName, type ProxyName } from './data-plane/stack';
import { keepStallEvidence } from './data-plane/stall-evidence';

const BENCH_NICE = -10;

interface Options {
  rounds: number;
  scale: number;
  smoke: boolean;
  out: string;
  paths: PathName[];
  workloads: string[] | undefined;
  cpuProf: string | undefined;
  /** extra node flags for the agents, for measuring V8 settings (e.g. "--max-semi-space-size=2") */
  agentFlags: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 3, scale: 1, smoke: false, out: path.join(repoRoot(), 'bench', 'results'), paths: [...PATHS], workloads: undefined, cpuProf: undefined, agentFlags: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--smoke') o.smoke = true;
    else if (a === '--rounds') o.rounds = Number(val());
    else if (a === '--scale') o.scale = Number(val());
    else if (a === '--out') o.out = path.resolve(val());
    else if (a === '--paths') o.paths = val().split(',') as PathName[];
    else if (a === '--workloads') o.workloads = val().split(',');
    else if (a === '--cpu-prof') o.cpuProf = path.resolve(val());
    else if (a === '--agent-flags') o.agentFlags = val().split(/\s+/).filter(Boolean);
    else throw new Error(`unknown argument ${a} (see the header of test/bench/data-plane.ts)`);
  }
  if (o.smoke && !argv.includes('--rounds')) o.rounds = 1;
  if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > 20) throw new Error('--rounds: 1..20');
  if (!(o.scale > 0 && o.scale <= 10)) throw new Error('--scale: (0, 10]');
  for (const p of o.paths) if (!PATHS.includes(p)) throw new Error(`--paths: unknown path ${p} (${PATHS.join(', ')})`);
  return o;
}

/** The workloads, in the order each round runs them. Smoke: the same shapes, tiny. */
function workloads(o: Options): Workload[] {
  const s = o.smoke ? 0.04 : o.scale;
  const w = (x: number): number => Math.max(0.1, Math.round(x * s * 100) / 100);
  const all: Workload[] = [
    { id: 'rate4', title: '1000 req/s, 4 conns', short: '1k req/s, 4 conns', mode: 'rate', conns: 4, rate: 1000, path: SMALL_PATH, warmupS: w(1), durationS: w(8) },
    { id: 'rate64', title: '1000 req/s, 64 conns', short: '1k req/s, 64 conns', mode: 'rate', conns: 64, rate: 1000, path: SMALL_PATH, warmupS: w(1), durationS: w(8) },
    { id: 'sat16', title: '16 conns', short: '16 conns', mode: 'sat', conns: 16, path: SMALL_PATH, warmupS: w(0.5), durationS: w(3) },
    { id: 'sat64', title: '64 conns', short: '64 conns', mode: 'sat', conns: 64, path: SMALL_PATH, warmupS: w(0.5), durationS: w(3) },
    { id: 'conn16', title: 'no keep-alive, 16 concurrent', short: 'no keep-alive, 16 at once', mode: 'conn', conns: 16, path: SMALL_PATH, warmupS: w(0.5), durationS: w(3) },
    { id: 'bulk', title: '1 connection, back-to-back GETs of a 1 GiB file', short: '1 conn, GETs of 1 GiB', mode: 'bulk', conns: 1, path: BULK_PATH, warmupS: w(0.5), durationS: w(3) },
  ];
  if (o.smoke) Object.assign(all[5]!, { title: '1 connection, back-to-back GETs of a 64 MiB file', short: '1 conn, GETs of 64 MiB' });
  return o.workloads ? all.filter((x) => o.workloads!.includes(x.id)) : all;
}

function version(cmd: string, args: string[], re: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
    return re.exec(out)?.[1] ?? '?';
  } catch (err) {
    const e = err as { stderr?: string };
    return re.exec(String(e.stderr ?? ''))?.[1] ?? 'missing';
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const progress = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);
  if (!isRoot()) throw new Error('the data-plane benchmark needs root (network namespaces, eBPF, cgroups)');
  for (const tool of ['nginx', 'haproxy', 'openssl', 'curl', 'clang']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is not installed: run make deps-system (APT_PACKAGES in the Makefile)`);
    }
  }
  // Everything the bench starts inherits this: other work on the machine disturbs it less.
  // The proxies' budget cgroups get the same scheduler weight (budget.ts).
  os.setPriority(BENCH_NICE);
  const t0 = Date.now();
  const stamp = new Date(t0).toISOString().replace(/[:.]/g, '-');
  const bin = ensureLoadgen();
  const wl = workloads(o);
  const bulkBytes = o.smoke ? 64 << 20 : 1 << 30;
  if (o.cpuProf) fs.mkdirSync(o.cpuProf, { recursive: true });
  const stack = await buildStack({ bulkBytes, agentNodeFlags: [...o.agentFlags, ...(o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : [])], log: progress });
  const samples: Sample[] = [];
  const rssMb: Partial<Record<ProxyName, number>> = {};
  const throttling: Partial<Record<ProxyName, unknown>> = {};
  const setupS = (Date.now() - t0) / 1000;
  const rssNow = (): Partial<Record<ProxyName, number>> => Object.fromEntries(PROXIES.map((p) => [p, memMb(stack.proxies[p].child.pid, 'VmRSS')]));
  const memDetail = (): Record<string, Record<string, number | undefined>> =>
    Object.fromEntries(PROXIES.map((p) => [p, Object.fromEntries((['VmHWM', 'VmRSS', 'RssAnon', 'RssFile'] as const).map((f) => [f, memMb(stack.proxies[p].child.pid, f)]))]));
  const memIdleMb = memDetail();
  let memEndMb: ReturnType<typeof memDetail> = {};
  const pss: Partial<Record<ProxyName, ReturnType<typeof pssMb>>> = {};
  const anon = new AnonPeaks<ProxyName>(() => Object.fromEntries(PROXIES.map((p) => [p, stack.proxies[p].child.pid])));
  anon.start();
  progress(`setup ${setupS.toFixed(1)} s; ${o.rounds} round(s) of ${wl.map((w) => w.id).join(', ')} × ${o.paths.join(', ')}`);
  try {
    const cpuStats = PROXIES.map((p) => path.join(stack.proxies[p].cgroup, 'cpu.stat'));
    // Warm every path once (connections, pools, JIT), not recorded.
    for (const p of o.paths) {
      await runLoadgen(stack.topo, bin, stack.paths[p], { id: 'warm', title: 'warm-up', short: 'warm-up', mode: 'rate', conns: 16, rate: 1000, path: SMALL_PATH, warmupS: 0, durationS: o.smoke ? 0.2 : 2 }, []);
    }
    const nodes = stack.topo.nodes.map((n) => n.name);
    for (let round = 1; round <= o.rounds; round++) {
      for (const w of wl) {
        for (const p of o.paths) {
          const target = stack.paths[p];
          const dropsBefore = readFilterDrops(nodes);
          const before = process.cpuUsage();
          const runStarted = Date.now();
          const result = await runLoadgen(stack.topo, bin, target, w, cpuStats);
          if (result.stalled) {
            // at once, while the requests are still stuck
            const dir = path.join(o.out, `stalled-${stamp}`, `round${round}-${w.id}-${p}`);
            const agents = target.proxies.filter((n) => n.startsWith('agent-')).map((n) => stack.proxies[n]);
            await keepStallEvidence({
              topo: stack.topo,
              dir,
              result,
              startedMs: runStarted,
              agents,
              namespaces: [{ name: 'client-pod', target: target.pod }, ...stack.topo.nodes.map((n) => ({ name: n.name, target: n })), ...stack.topo.pods.filter((x) => x !== target.pod).map((x) => ({ name: `pod-${x.name}`, target: x }))],
              metrics: async (agent) => {
                const node = stack.topo.nodes[Number(agent.slice('agent-'.length)) - 1];
                if (node === undefined) return undefined;
                const r = await stack.topo.exec(node, 'curl', ['-s', '--max-time', '5', `http://${node.underlayIp}:15020/metrics`], { timeoutMs: 10_000 });
                return r.code === 0 ? r.stdout : `(curl exit ${r.code}: ${r.stderr.trim()})`;
              },
            }).then(
              () => progress(`STALLED: evidence (stuck ports ${(result.stalled_conns ?? []).map((c) => c.port).join(', ') || 'unknown'}, agents' warn/error lines, sockets, metrics) kept in ${dir}`),
              (err: Error) => progress(`STALLED: keeping the evidence in ${dir} failed: ${err.message}`),
            );
          }
          const after = process.cpuUsage(before);
          const filterDrops = dropsBetween(dropsBefore, readFilterDrops(nodes));
          const proxyCpuUsec = target.proxies.reduce((a, name) => a + (result.cpu_usec[PROXIES.indexOf(name)] ?? 0), 0);
          samples.push({ round, workload: w.id, path: p, result, proxyCpuUsec, collectorCpuUsec: after.user + after.system, rssAfterMb: rssNow(), filterDrops });
          progress(
            `round ${round} ${w.id.padEnd(6)} ${p.padEnd(11)} ${w.mode === 'bulk' ? `${result.gbit_s.toFixed(2)} Gbit/s` : `${result.rps.toFixed(0)} req/s`}` +
              ` p50 ${result.latency_us.p50} p99 ${result.latency_us.p99} µs, errors ${result.errors + result.timeouts + result.connect_errors}, non-2xx ${result.requests - result.status['2xx']}${silent(result) ? ' — SILENT: nothing was answered' : ''}` +
              `${result.stalled ? ` — STALLED: ${result.stalled} request(s) unanswered for over 1 s at the end` : ''}` +
              `${Object.keys(filterDrops).length ? ` — DROPPED by the pod filters: ${describeDrops(filterDrops)}` : ''}`,
          );
        }
      }
    }
    memEndMb = memDetail();
    anon.stop();
    for (const p of PROXIES) {
      pss[p] = pssMb(stack.proxies[p].child.pid);
      const mb = memMb(stack.proxies[p].child.pid, 'VmHWM');
      if (mb !== undefined) rssMb[p] = mb;
      throttling[p] = { ...stack.budget.throttling(p), cpuSecondsTotal: cpuUsageUsec(stack.proxies[p].cgroup) / 1e6 };
    }
  } finally {
    await stack.teardown();
  }
  const summary = summarize(samples, wl, rssMb, anon.peakMb);
  const wallS = (Date.now() - t0) / 1000;
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    kernel: os.release(),
    node: process.version,
    haproxy: version('haproxy', ['-v'], /version (\S+)/),
    nginx: version('sh', ['-c', 'nginx -v 2>&1'], /nginx\/(\S+)/),
  };
  const settings = {
    rounds: o.rounds,
    order: `each round: every workload, each path in turn (${o.paths.join(', ')})`,
    smoke: o.smoke,
    workloads: wl,
    cpuBudget: `${stack.budget.kind}: ${stack.budget.cores} core per proxy process (CFS quota ${stack.budget.cores * 100} ms per 100 ms${stack.budget.shares ? `, cpu.shares ${stack.budget.shares} = weight of nice ${BENCH_NICE}` : ''}); haproxy nbthread 1; bench processes at nice ${BENCH_NICE}`,
    agents: stack.agentSettings,
    haproxy: 'haproxy 2.6, nbthread 1, HTTP/1.1 keep-alive, TLS 1.3 mTLS between the nodes (RSA-2048, like the mesh), http-reuse always, ACL on caller CN + method + path',
    server: 'nginx-light, 1 process, access log off, 1 KiB file (sendfile), keep-alive',
    latency: 'open loop, each request timed from its scheduled send time (no coordinated omission); log-bucketed histogram',
    cpu: "usage_usec of each proxy's own cgroup v2 cpu.stat over the recorded period, both nodes summed",
    collector: 'runs inside the bench process (control plane, not a proxy); its CPU is reported separately',
  };
  const header = [
    `Palisade data plane vs no mesh vs a haproxy pair — ${o.rounds} round(s), interleaved; median [min…max] over rounds`,
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), Linux ${machine.kernel}, node ${machine.node}, haproxy ${machine.haproxy}, nginx ${machine.nginx}`,
    `CPU budget: ${settings.cpuBudget}`,
    `agents: ${stack.agentSettings.join(', ')}; mTLS (HBONE, TLS 1.3) between nodes on both Palisade paths`,
  ];
  const text = renderTable(summary, header);
  process.stdout.write(`${text}\n`);
  const doc = {
    schema: 'palisade-bench-data-plane/1',
    startedAt: new Date(t0).toISOString(),
    wallSeconds: Math.round(wallS * 10) / 10,
    setupSeconds: Math.round(setupS * 10) / 10,
    command: `node dist/test/bench/data-plane.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine,
    settings,
    checks: stack.checks,
    workDir: stack.dir,
    summary,
    memoryMb: { idle: memIdleMb, end: memEndMb, peakAnon: anon.peakMb, pssEnd: pss, agentFlags: o.agentFlags },
    proxies: throttling,
    table: text.split('\n'),
    samples,
  };
  fs.mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, `${stamp}.json`);
  fs.writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  fs.writeFileSync(path.join(o.out, 'latest.json'), `${JSON.stringify(doc, null, 2)}\n`);
  progress(`wrote ${file} and latest.json; wall time ${wallS.toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`[bench] failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
