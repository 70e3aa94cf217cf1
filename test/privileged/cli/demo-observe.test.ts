/**
 * Visibility end to end in the demo topology, as an operator uses it: after `palisade demo up`,
 * `palisade observe` works with no flags, shows both identities, mTLS, the HTTP request and the
 * verdict with its policy; `-f` shows a new flow within a second; each agent's :15020/metrics
 * carries Istio's standard series.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DemoState } from '../../../cli/demo/demo';
import { cliPath, JsonLines, requirePrivileges, spawnIn, waitFor } from '../../harness';
import { demoDown, demoPod, demoUp, runPalisade, type Run } from './demo-session';

interface Flow {
  direction: string;
  source: { ip: string; identity?: string; workload?: string };
  destination: { ip: string; port: number; identity?: string; workload?: string };
  protocol: string;
  http?: { method: string; path: string; status: number };
  verdict: string;
  reason: string;
  policy?: string;
  mtls: boolean;
}

const EXAMPLES = path.resolve(__dirname, '..', '..', '..', '..', 'deploy', 'examples', 'policies');

describe('observability in the demo (palisade observe, metrics)', function () {
  this.timeout(180_000);
  let dir: string;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  let state: DemoState;
  const children: ChildProcess[] = [];

  const palisade = (args: string[], timeoutMs?: number): Promise<Run> => runPalisade(args, { env, timeoutMs });

  before(async function () {
    requirePrivileges();
    ({ dir, stateDir, env, state } = await demoUp('demo-observe'));
    fs.copyFileSync(path.join(EXAMPLES, 'web-deny-admin.yaml'), path.join(state.policyDir!, 'web-deny-admin.yaml'));
    await waitFor(
      () => state.agents.every((a) => /"event":"policy-loaded".*"version":1/.test(fs.readFileSync(a.log, 'utf8'))) || undefined,
      5000,
      { what: 'both agents to load the policy' },
    );
  });

  after(async function () {
    for (const c of children) c.kill('SIGKILL');
    if (dir) await demoDown({ dir, stateDir, env });
  });

  const pod = (name: string): ReturnType<typeof demoPod> => demoPod(state, name);
  const curl = async (from: string, url: string): Promise<string> =>
    (await palisade(['demo', 'exec', '--state-dir', stateDir, from, '--', 'curl', '-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', url])).stdout;

  it('shows a request with both identities, mTLS, method, path and status, allowed — and a denied one with its policy — with no flags', async () => {
    const web2 = pod('web-2').ip;
    assert.equal(await curl('client', `http://${web2}:8080/public`), '200');
    assert.equal(await curl('client', `http://${web2}:8080/admin`), '403');
    let flows: Flow[] = [];
    await waitFor(
      async () => {
        const r = await palisade(['observe', '-o', 'json', '--to', 'web-2', '--protocol', 'http', '--last', '50']);
        assert.equal(r.code, 0, r.stderr);
        const parsed = JSON.parse(r.stdout) as Flow[] | { flows: Flow[] };
        flows = Array.isArray(parsed) ? parsed : parsed.flows;
        return (flows.some((f) => f.http?.path === '/public') && flows.some((f) => f.http?.path === '/admin')) || undefined;
      },
      5000,
      { what: 'observe to show both requests' },
    );
    const ok = flows.find((f) => f.http?.path === '/public')!;
    assert.equal(ok.source.identity, 'spiffe://cluster.local/ns/default/sa/client');
    assert.equal(ok.destination.identity, 'spiffe://cluster.local/ns/default/sa/web');
    assert.equal(ok.mtls, true);
    assert.equal(ok.http!.method, 'GET');
    assert.equal(ok.http!.status, 200);
    assert.equal(ok.verdict, 'allowed');
    const denied = flows.find((f) => f.http?.path === '/admin')!;
    assert.equal(denied.verdict, 'denied');
    assert.equal(denied.policy, 'default/web-deny-admin');
    assert.equal(denied.http!.status, 403);

    const table = await palisade(['observe', '--to', 'web-2', '--verdict', 'denied']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /denied/);
    assert.doesNotMatch(table.stdout, /\x1b\[/, 'no colour when stdout is not a terminal');
  });

  it('observe -f prints a new flow within one second of the request', async () => {
    const follower = spawn(process.execPath, [cliPath(), 'observe', '-f', '-o', 'jsonl', '--to', 'web-2', '--http-path', '/public/*', '--last', '1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(follower);
    const lines = new JsonLines(follower.stdout!);
    await new Promise((r) => setTimeout(r, 1500)); // connected and past the last page
    const marker = `/public/follow-${Date.now()}`;
    const poke = spawnIn(pod('client'), 'curl', ['-s', '-m', '5', '-o', '/dev/null', `http://${pod('web-2').ip}:8080${marker}`], { stdio: 'ignore' });
    await new Promise((r) => poke.once('exit', r));
    const answered = Date.now();
    await lines.waitFor((l) => l?.http?.path === marker, 3000);
    const ms = Date.now() - answered;
    process.stdout.write(`      request answered to flow printed by observe -f: ${ms} ms\n`);
    assert.ok(ms <= 1000, `took ${ms} ms`);
    follower.kill('SIGINT');
  });

  it("each agent's :15020/metrics carries Istio's standard series with the right labels, and no paths or IPs as labels", async () => {
    const node2 = state.topology.nodes.find((n) => n.name === 'node-2')!;
    const r = await new Promise<string>((resolve) => {
      const c = spawnIn(node2, 'curl', ['-s', '-m', '3', `http://${node2.underlayIp}:15020/metrics`], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.once('exit', () => resolve(out));
    });
    const series = r.split('\n').filter((l) => l.startsWith('istio_requests_total{'));
    const hit = series.find(
      (l) =>
        l.includes('reporter="destination"') &&
        l.includes('source_workload="client"') &&
        l.includes('destination_workload="web-2"') &&
        l.includes('source_principal="spiffe://cluster.local/ns/default/sa/client"') &&
        l.includes('response_code="200"') &&
        l.includes('connection_security_policy="mutual_tls"'),
    );
    assert.ok(hit, `istio_requests_total for client -> web-2:\n${series.join('\n')}`);
    assert.ok(r.includes('istio_request_duration_milliseconds_bucket{'), 'duration histogram');
    assert.ok(r.includes('istio_tcp_connections_opened_total') || r.includes('istio_tcp_sent_bytes_total'), 'TCP series');
    for (const line of r.split('\n').filter((l) => l && !l.startsWith('#'))) {
      assert.doesNotMatch(line, /="\/|="\d+\.\d+\.\d+\.\d+"/, `a path or IP as a label value: ${line}`);
    }
  });
});
