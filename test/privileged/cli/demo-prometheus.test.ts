/**
 * Real Prometheus reads the agents' metrics: `palisade demo up --with-prometheus` starts Debian's
 * prometheus on the demo's node network, scraping both agents' :15020 every second; after known
 * traffic the queries behind Istio's standard dashboards and Kiali's graph, asked of its HTTP API
 * on this host, return that traffic: requests per (source, destination, response code), TCP
 * connections and bytes (web-1 and web-2 to an echo server in the client pod), the mTLS share, and a p95 from the request duration histogram in the
 * buckets the requests' own p90…max span.
 *
 * Counters appear at their first flow, and rate() cannot count a series' first value: one
 * request per series first, then the counted traffic, then the [1m] window evaluated at an
 * instant whose window starts between the two (so it holds exactly the counted traffic).
 */
import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { DemoState } from '../../../cli/demo/demo';
import { DURATION_BUCKETS_MS } from '../../../agent/metrics/flow-metrics';
import { spawnIn, waitFor } from '../../harness';
import { demoDown, demoPod, demoUp, runPalisade, type DemoRun } from './demo-session';

const EXAMPLES = path.resolve(__dirname, '..', '..', '..', '..', 'deploy', 'examples', 'policies');
/** What the raw TCP client sends on each connection; the echo server sends it back and closes. */
const PROBE = 'PALISADE-TCP-PROBE\n';
/** A plain TCP service in the client pod (no policy selects it, so its traffic stays TCP; the web pods' HTTP-level policy would deny raw TCP). */
const ECHO_PORT = 9000;
const ECHO_SERVER = `require('net').createServer((s) => s.on('data', (d) => s.end(d)).on('error', () => {})).listen(${ECHO_PORT}, () => console.log('listening'));`;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Run `node -e script args…` in a pod; resolves to its stdout. */
function nodeIn(state: DemoState, pod: string, script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawnIn(demoPod(state, pod), process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.once('error', reject);
    c.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`node -e in ${pod}: exit ${code}`))));
  });
}

/** GETs, one connection for all of them; resolves to the status codes. */
const HTTP_CLIENT = `
const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
(async () => {
  const codes = [];
  for (const url of process.argv.slice(1)) {
    codes.push(await new Promise((ok, fail) => http.get(url, { agent }, (r) => { r.resume(); r.on('end', () => ok(r.statusCode)); }).on('error', fail)));
  }
  agent.destroy();
  console.log(codes.join(' '));
})();`;

/** N connections one after the other, each sending PROBE and reading until the server closes. */
const TCP_CLIENT = `
const net = require('net');
const [host, port, n, probe] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
(async () => {
  let answered = 0;
  for (let i = 0; i < n; i++) {
    await new Promise((ok, fail) => {
      const s = net.connect(port, host, () => s.end(probe));
      let got = 0;
      s.on('data', (d) => (got += d.length)).on('error', fail).on('close', () => { if (got > 0) answered++; ok(); });
    });
  }
  console.log(answered);
})();`;

describe('real Prometheus scrapes both agents of the demo (palisade demo up --with-prometheus)', function () {
  this.timeout(240_000);
  let run: DemoRun;
  let state: DemoState;
  let prom: string;

  const query = async (q: string, time?: number): Promise<Sample[]> => {
    const params = new URLSearchParams({ query: q });
    if (time !== undefined) params.set('time', String(time / 1000));
    const res = await fetch(`${prom}/api/v1/query?${params}`);
    const body = (await res.json()) as { status: string; data?: { resultType: string; result: Sample[] }; error?: string };
    assert.equal(body.status, 'success', `${q}: ${body.error}`);
    return body.data!.result;
  };
  /** The result as `label=value,…` → number, for the labels named. */
  const byLabels = (samples: Sample[], labels: string[], scale = 1): Record<string, number> =>
    Object.fromEntries(samples.map((s) => [labels.map((l) => s.metric[l]).join(' '), Number(s.value[1]) * scale]));
  const get = async (state: DemoState, pod: string, urls: string[]): Promise<string> => (await nodeIn(state, 'client', HTTP_CLIENT, urls.map((u) => `http://${demoPod(state, pod).ip}:8080${u}`))).trim();
  /** n TCP connections from `pod` to the client pod's echo server */
  const tcp = async (pod: string, n: number): Promise<void> => {
    assert.equal((await nodeIn(state, pod, TCP_CLIENT, [demoPod(state, 'client').ip, String(ECHO_PORT), String(n), PROBE])).trim(), String(n), `${n} TCP connections from ${pod} answered`);
  };
  let echo: ChildProcess | undefined;

  before(async function () {
    const port = await freePort();
    prom = `http://127.0.0.1:${port}`;
    run = await demoUp('demo-prometheus', ['--with-prometheus', '--prometheus-listen', `127.0.0.1:${port}`]);
    state = run.state;
    // HTTP-level policies on the web pods: their proxies parse (and count) requests
    fs.copyFileSync(path.join(EXAMPLES, 'web-deny-admin.yaml'), path.join(state.policyDir!, 'web-deny-admin.yaml'));
    await waitFor(() => state.agents.every((a) => /"event":"policy-loaded".*"version":1/.test(fs.readFileSync(a.log, 'utf8'))) || undefined, 10_000, { what: 'both agents to load the policy' });
    echo = spawnIn(demoPod(state, 'client'), process.execPath, ['-e', ECHO_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      echo!.stdout!.once('data', () => resolve());
      echo!.once('exit', (code) => reject(new Error(`the echo server exited (${code})`)));
    });
  });

  after(async function () {
    echo?.kill('SIGKILL');
    if (run) await demoDown(run);
  });

  it('scrapes both agents on the node network', async () => {
    const targets = await waitFor(
      async () => {
        const body = (await (await fetch(`${prom}/api/v1/targets?state=active`)).json()) as { data: { activeTargets: Array<{ scrapeUrl: string; health: string; labels: Record<string, string> }> } };
        const t = body.data.activeTargets;
        return (t.length === 2 && t.every((x) => x.health === 'up') && t) || undefined;
      },
      15_000,
      { what: 'both agents to be scraped' },
    );
    assert.deepEqual(targets.map((t) => [t.labels.node, t.scrapeUrl]).sort(), state.topology.nodes.map((n) => [n.name, `http://${n.underlayIp}:15020/metrics`]).sort());
    const up = await query('up{job="palisade-agents"}');
    assert.deepEqual(up.map((s) => s.value[1]), ['1', '1']);
  });

  it("answers Istio's and Kiali's queries with the traffic sent: requests by code, TCP connections and bytes, mTLS, p95", async () => {
    // every series once (its first value is never counted by rate), then wait until Prometheus has them
    assert.equal(await get(state, 'web-2', ['/public', '/admin']), '200 403');
    assert.equal(await get(state, 'web-1', ['/public']), '200');
    await tcp('web-2', 1);
    await tcp('web-1', 1);
    await waitFor(
      async () =>
        (await query('count(istio_requests_total{reporter="destination"})'))[0]?.value[1] === '3' &&
        (await query('count(istio_tcp_connections_opened_total{reporter="destination"})'))[0]?.value[1] === '2',
      15_000,
      { what: 'Prometheus to hold the three request series and the two TCP series' },
    );
    await new Promise((r) => setTimeout(r, 3000));

    // the counted traffic
    const started = Date.now();
    assert.equal(await get(state, 'web-2', Array.from({ length: 30 }, (_, i) => `/public/${i}`)), Array(30).fill('200').join(' '));
    assert.equal(await get(state, 'web-1', Array.from({ length: 20 }, (_, i) => `/public/${i}`)), Array(20).fill('200').join(' '));
    assert.equal(await get(state, 'web-2', ['/admin', '/admin/x', '/admin', '/admin/y']), '403 403 403 403');
    await tcp('web-2', 6);
    await tcp('web-1', 3);
    const sent = Date.now();
    // a [1m] window from 1.5 s before the traffic: it holds all of it and none of the first requests
    const at = started - 1500 + 60_000;
    assert.ok(sent < at - 3000, `the traffic took ${sent - started} ms: too long for one window`);
    const wait = at + 2000 - Date.now();
    process.stdout.write(`      waiting ${Math.round(wait / 1000)} s for the [1m] window to close\n`);
    await new Promise((r) => setTimeout(r, wait));

    // Istio's "Istio Workload Dashboard" / Kiali's graph: requests by source, destination and code
    const requests = byLabels(
      await query('sum(rate(istio_requests_total{reporter="destination"}[1m])) by (source_workload, destination_workload, response_code)', at),
      ['source_workload', 'destination_workload', 'response_code'],
      60,
    );
    assert.deepEqual(Object.keys(requests).sort(), ['client web-1 200', 'client web-2 200', 'client web-2 403']);
    const within5 = (got: number | undefined, want: number, what: string): void => assert.ok(got !== undefined && Math.abs(got - want) <= want * 0.05, `${what}: ${got}, sent ${want}`);
    within5(requests['client web-2 200'], 30, 'client → web-2 200 per minute');
    within5(requests['client web-1 200'], 20, 'client → web-1 200 per minute');
    within5(requests['client web-2 403'], 4, 'client → web-2 403 per minute');

    // Kiali's lock: the mTLS share of the requests (client → web-2 crosses nodes over mTLS; web-1 is node-local)
    const mtls = byLabels(await query('sum(rate(istio_requests_total{reporter="destination",connection_security_policy="mutual_tls"}[1m])) by (destination_workload)', at), ['destination_workload'], 60);
    assert.deepEqual(Object.keys(mtls), ['web-2']);
    within5(mtls['web-2'], 34, 'client → web-2 over mTLS per minute');

    // the istio_tcp_* equivalents
    const tcpRates = async (metric: string): Promise<Record<string, number>> =>
      byLabels(await query(`sum(rate(${metric}{reporter="destination"}[1m])) by (source_workload, destination_workload)`, at), ['source_workload', 'destination_workload'], 60);
    const opened = await tcpRates('istio_tcp_connections_opened_total');
    assert.deepEqual(Object.keys(opened).sort(), ['web-1 client', 'web-2 client']);
    within5(opened['web-2 client'], 6, 'TCP connections web-2 → client');
    within5(opened['web-1 client'], 3, 'TCP connections web-1 → client');
    const received = await tcpRates('istio_tcp_received_bytes_total');
    within5(received['web-2 client'], 6 * PROBE.length, 'TCP bytes web-2 → client');
    within5(received['web-1 client'], 3 * PROBE.length, 'TCP bytes web-1 → client');
    const sentBack = await tcpRates('istio_tcp_sent_bytes_total');
    within5(sentBack['web-2 client'], 6 * PROBE.length, 'TCP bytes client → web-2 (the echo)');
    within5(sentBack['web-1 client'], 3 * PROBE.length, 'TCP bytes client → web-1 (the echo)');

    // the request duration histogram: p95 per pair, in the bucket where the real p95 lies
    const p95 = byLabels(
      await query('histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200"}[1m])) by (le, source_workload, destination_workload))', at),
      ['source_workload', 'destination_workload'],
    );
    const obs = await runPalisade(['observe', '-o', 'json', '--protocol', 'http', '--last', '200'], { env: run.env });
    assert.equal(obs.code, 0, obs.stderr);
    const parsed = JSON.parse(obs.stdout) as unknown;
    const flows = (Array.isArray(parsed) ? parsed : (parsed as { flows: unknown[] }).flows) as Array<{ time: string; direction: string; destination: { workload?: string }; http?: { status: number }; durationMs: number }>;
    for (const [pod, n] of [['web-2', 30], ['web-1', 20]] as const) {
      const ms = flows
        .filter((f) => f.direction === 'inbound' && f.destination.workload === pod && f.http?.status === 200 && Date.parse(f.time) >= started - 1000)
        .map((f) => f.durationMs)
        .sort((a, b) => a - b);
      assert.equal(ms.length, n, `${pod}: the collector holds the ${n} requests`);
      const real = ms[Math.ceil(0.95 * n) - 1]!;
      // The histogram is the agent's own timing of each request, the flows' durationMs the same
      // request rounded to whole ms and timed at another point: with 20 requests the 19th decides a
      // p95, so the estimate must lie in the buckets spanned by the flows' p90 and their slowest.
      const bucket = (v: number): number => DURATION_BUCKETS_MS.findIndex((le) => v <= le);
      const lo = bucket(ms[Math.ceil(0.9 * n) - 1]!);
      const hi = bucket(ms[n - 1]! + 1);
      const lower = lo <= 0 ? 0 : DURATION_BUCKETS_MS[lo - 1]!;
      const upper = hi < 0 ? Infinity : DURATION_BUCKETS_MS[hi]!;
      const got = p95[`client ${pod}`];
      assert.ok(got !== undefined && got >= lower && got <= upper, `client → ${pod}: Prometheus p95 ${got} ms; the flows' p95 is ${real} ms, their p90…max ${ms[Math.ceil(0.9 * n) - 1]}…${ms[n - 1]} ms: buckets (${lower}, ${upper}]`);
      process.stdout.write(`      client → ${pod}: p95 ${got!.toFixed(2)} ms (Prometheus), ${real} ms (the flows)\n`);
    }
  });

  it('says so when demo up runs again and keeps the demo: its flows, policies, audit log, processes and Prometheus', async () => {
    const snapshot = async (): Promise<string[]> => {
      const out = await Promise.all([['observe', '-o', 'json', '--last', '1000'], ['audit', 'list', '-o', 'json'], ['status', '-o', 'json']].map((a) => runPalisade(a, { env: run.env })));
      for (const o of out) assert.equal(o.code, 0, o.stderr);
      const st = JSON.parse(out[2]!.stdout) as { policyVersion: number; flows: { stored: number }; audit: { records: number } };
      return [out[0]!.stdout, out[1]!.stdout, JSON.stringify([st.policyVersion, st.flows.stored, st.audit.records])];
    };
    const before = await snapshot();
    const again = await runPalisade(['demo', 'up', '--state-dir', run.stateDir], { env: run.env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^a demo is already up \(since .*\): kept as it is, with its flows, policies and audit log \(--recreate starts over\)$/m);
    assert.match(again.stdout, new RegExp(`curl -s '${prom.replace(/[.]/g, '\\.')}/api/v1/query`));
    const st = await runPalisade(['demo', 'status', '--state-dir', run.stateDir, '-o', 'json'], { env: run.env });
    const status = JSON.parse(st.stdout) as { prometheus: { running: boolean; listen: string } | null };
    assert.deepEqual(status.prometheus && [status.prometheus.running, status.prometheus.listen], [true, prom.slice('http://'.length)]);
    assert.equal((await fetch(`${prom}/-/ready`)).status, 200);
    assert.deepEqual(fs.readdirSync(state.policyDir!), ['web-deny-admin.yaml']);
    const after = await snapshot();
    assert.ok((JSON.parse(before[0]!) as unknown[]).length > 50, 'the flows of the test above');
    assert.deepEqual(after, before, 'the same flows, audit log and status');
  });
});
