/**
 * Policy end to end in the demo topology (collector + two agents + client, web-1, web-2, ext),
 * as an operator uses it: policy files dropped into the collector's policy directory, traffic
 * from inside the pods, verdicts read from the agents' flow records.
 */
import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readState, type DemoState } from '../../../cli/demo/demo';
import { denyFromYaml, fixturePath, JsonLines, requirePrivileges, spawnIn, tempDir, waitFor } from '../../harness';
import { demoPod, runPalisade, type Run } from './demo-session';
import { HOSTILE } from './hostile-requests';

const palisade = (args: string[], timeoutMs?: number): Promise<Run> => runPalisade(args, { timeoutMs });

const EXAMPLES = path.resolve(__dirname, '..', '..', '..', '..', 'deploy', 'examples', 'policies');

const DENY_GUEST = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-deny-guest
  namespace: default
spec:
  selector:
    matchLabels:
      app: web
  action: DENY
  rules:
    - to:
        - operation:
            paths: ["/echo"]
      when:
        - key: request.headers[x-user]
          values: ["guest"]
`;

const DENY_CLIENT_L4 = denyFromYaml({ name: 'web-deny-client', app: 'web', serviceAccount: 'client' });

interface Flow {
  event: 'flow';
  direction: string;
  source: { ip: string; identity?: string; workload?: string };
  destination: { ip: string; port: number; identity?: string; host?: string };
  protocol: string;
  http?: { method: string; path: string; status: number };
  verdict: string;
  reason: string;
  policy?: string;
  rule?: number;
  mtls: boolean;
}

describe('policy in the demo (palisade demo)', function () {
  this.timeout(240_000);
  let dir: string;
  let stateDir: string;
  let state: DemoState;
  let policyDir: string;
  const children: ChildProcess[] = [];

  before(async function () {
    requirePrivileges();
    dir = tempDir('demo-policy');
    stateDir = path.join(dir, 'state');
    const up = await palisade(['demo', 'up', '--state-dir', stateDir], 120_000);
    assert.equal(up.code, 0, up.stderr);
    state = readState(stateDir)!;
    assert.ok(state.policyDir && state.ext);
    policyDir = state.policyDir;
  });

  after(async function () {
    for (const c of children) c.kill('SIGKILL');
    if (dir) {
      await palisade(['demo', 'down', '--state-dir', stateDir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const pod = (name: string): ReturnType<typeof demoPod> => demoPod(state, name);

  /** curl from inside a pod; resolves with the HTTP status ('000' when the connection failed) and the body. */
  async function curl(from: string, url: string, extra: string[] = []): Promise<{ status: string; body: string }> {
    const out = path.join(dir, `curl-${Math.random().toString(36).slice(2)}`);
    const r = await palisade(['demo', 'exec', '--state-dir', stateDir, from, '--', 'curl', '-s', '-m', '5', '-o', out, '-w', '%{http_code}', ...extra, url]);
    const body = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
    fs.rmSync(out, { force: true });
    return { status: r.stdout.trim() || '000', body };
  }

  function setPolicies(files: Record<string, string>): void {
    for (const f of fs.readdirSync(policyDir)) if (!(f in files)) fs.rmSync(path.join(policyDir, f));
    for (const [name, text] of Object.entries(files)) {
      const tmp = path.join(policyDir, `.${name}.tmp`);
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, path.join(policyDir, name));
    }
  }

  const example = (name: string): string => fs.readFileSync(path.join(EXAMPLES, name), 'utf8');

  function flows(node: string): Flow[] {
    const text = fs.readFileSync(path.join(stateDir, 'logs', `agent-${node}.log`), 'utf8');
    return text
      .split('\n')
      .filter((l) => l.includes('"event":"flow"'))
      .map((l) => JSON.parse(l) as Flow);
  }

  function agentsAt(version: number): Promise<unknown> {
    return waitFor(
      () =>
        state.agents.every((a) => {
          const text = fs.readFileSync(a.log, 'utf8');
          return text.split('\n').some((l) => l.includes('"event":"policy-loaded"') && l.includes(`"version":${version}`));
        }) || undefined,
      5000,
      { what: `both agents to load policy version ${version}` },
    );
  }

  let version = 0; // an empty policy store (and an empty policy directory) is version 0
  async function enforce(files: Record<string, string>): Promise<void> {
    setPolicies(files);
    version += 1;
    await agentsAt(version);
  }

  it('an ALLOW policy lets GET /public from the client identity through and answers 403 to /admin and to other identities', async () => {
    const web1 = pod('web-1').ip;
    const web2 = pod('web-2').ip;
    assert.equal((await curl('client', `http://${web2}:8080/admin`)).status, '200', 'no policy yet: everything is allowed');
    await enforce({ 'web-allow-client.yaml': example('web-allow-client.yaml') });

    const pub = await curl('client', `http://${web2}:8080/public`);
    assert.equal(pub.status, '200');
    assert.equal(pub.body, 'public page of web-2\n');
    const admin = await curl('client', `http://${web2}:8080/admin`);
    assert.equal(admin.status, '403');
    assert.equal(admin.body, 'RBAC: access denied');
    assert.equal((await curl('web-1', `http://${web2}:8080/public`)).status, '403', 'another identity (sa/web) across nodes');
    assert.equal((await curl('client', `http://${web1}:8080/public`)).status, '200', 'same node: the local path');
    assert.equal((await curl('client', `http://${web1}:8080/admin`)).status, '403', 'same node: the local path');
    assert.equal((await curl('client', `http://${web2}:8080/public`, ['-X', 'POST'])).status, '403', 'POST is not in the rule');

    await waitFor(() => flows('node-2').some((f) => f.http?.path === '/admin' && f.verdict === 'denied') || undefined, 3000, { what: 'the denied flow' });
    const n2 = flows('node-2').filter((f) => f.direction === 'inbound' && f.http);
    const allowed = n2.find((f) => f.http!.path === '/public' && f.source.identity === 'spiffe://cluster.local/ns/default/sa/client');
    assert.ok(allowed, 'allowed flow recorded');
    assert.equal(allowed.verdict, 'allowed');
    assert.equal(allowed.policy, 'default/web-allow-client');
    assert.equal(allowed.rule, 0);
    assert.equal(allowed.mtls, true);
    assert.equal(allowed.http!.status, 200);
    const denied = n2.find((f) => f.http!.path === '/admin' && f.verdict === 'denied');
    assert.ok(denied);
    assert.equal(denied.reason, 'no-allow-policy-matched');
    assert.equal(denied.policy, 'default/web-allow-client');
    assert.equal(denied.http!.status, 403);
    const other = n2.find((f) => f.source.identity === 'spiffe://cluster.local/ns/default/sa/web' && f.verdict === 'denied');
    assert.ok(other, 'the other identity is recorded as denied');
  });

  it('no hostile spelling of a request gets past DENY rules: refused or normalized, never reaching the admin page', async () => {
    await enforce({ 'web-deny-admin.yaml': example('web-deny-admin.yaml'), 'web-deny-guest.yaml': DENY_GUEST });
    const casesFile = path.join(dir, 'hostile.json');
    fs.writeFileSync(casesFile, JSON.stringify(HOSTILE));
    const logBefore = fs.readFileSync(path.join(stateDir, 'logs', 'web-2.log'), 'utf8').length;
    const r = await palisade(['demo', 'exec', '--state-dir', stateDir, 'client', '--', process.execPath, fixturePath('http-raw.js'), pod('web-2').ip, '8080', casesFile], 200_000);
    assert.equal(r.code, 0, r.stderr);
    const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; statuses: number[]; body: string; closed: boolean });
    assert.equal(results.length, HOSTILE.length);
    const failures: string[] = [];
    let bypasses = 0;
    for (const [i, c] of HOSTILE.entries()) {
      const got = results[i]!;
      if (got.body.includes('admin page')) {
        bypasses += 1;
        failures.push(`${c.name}: BYPASS, reached the admin page`);
      }
      if (c.statuses) {
        if (JSON.stringify(got.statuses) !== JSON.stringify(c.statuses)) failures.push(`${c.name}: statuses ${JSON.stringify(got.statuses)}, want ${JSON.stringify(c.statuses)}`);
        continue;
      }
      const first = got.statuses[0];
      if (c.expect === 'deny' && first !== 403) failures.push(`${c.name}: got ${first ?? 'no status'}, want 403`);
      if (c.expect === 'reject' && first !== undefined && !(first >= 400 && first !== 403 && first < 600)) {
        failures.push(`${c.name}: got ${first}, want a 4xx/5xx refusal`);
      }
      if (c.expect === 'reject' && first === undefined && !got.closed) failures.push(`${c.name}: no answer and not closed`);
      if (c.expect === 'pass' && (first === undefined || first === 403 || first >= 500)) failures.push(`${c.name}: got ${first ?? 'no status'}, want it to reach the app`);
      // an HTTP/2 frame header: 3 bytes length, then type 0x04 (SETTINGS) on stream 0
      if (c.expect === 'h2' && !got.closed && (got.statuses.length > 0 || got.body.charCodeAt(3) !== 0x04)) failures.push(`${c.name}: got ${JSON.stringify(got.body.slice(0, 40))}, want HTTP/2's SETTINGS or a close`);
    }
    // What reached the server, as the server itself routes it (WHATWG URL: %2e, \ and dot segments).
    const reached = fs
      .readFileSync(path.join(stateDir, 'logs', 'web-2.log'), 'utf8')
      .slice(logBefore)
      .split('\n')
      .filter((l) => l.includes('"url"'))
      .map((l) => JSON.parse(l) as { method: string; url: string });
    for (const req of reached) {
      const p = new URL(req.url, 'http://x').pathname;
      if (p === '/admin' || p.startsWith('/admin/')) {
        bypasses += 1;
        failures.push(`the server received ${req.method} ${req.url} (routes to ${p})`);
      }
    }
    process.stdout.write(`      hostile requests: ${HOSTILE.length} cases, ${bypasses} bypasses, ${reached.length} reached the server\n`);
    assert.deepEqual(failures, []);
    assert.equal(bypasses, 0);
    assert.ok(HOSTILE.length >= 40);
  });

  it('overwrites a client-supplied x-forwarded-client-cert with the identity the mesh verified', async () => {
    const echo = await curl('client', `http://${pod('web-2').ip}:8080/echo`, ['-H', 'X-Forwarded-Client-Cert: By=spiffe://evil;URI=spiffe://cluster.local/ns/default/sa/admin', '-H', 'x-palisade-source: admin']);
    assert.equal(echo.status, '200');
    const headers = (JSON.parse(echo.body) as { headers: Record<string, string> }).headers;
    assert.equal(headers['x-forwarded-client-cert'], 'By=spiffe://cluster.local/ns/default/sa/web;URI=spiffe://cluster.local/ns/default/sa/client');
    assert.equal(headers['x-palisade-source'], undefined);
  });

  it('egress: an allowlisted pod reaches only the allowed name, at its real address; other pods are unaffected', async () => {
    await enforce({ 'client-egress.yaml': example('client-egress.yaml') });
    const ext = state.ext!;
    // The pod resolves the name through its node's DNS proxy (the demo's hosts file) unless `ip` forces an address.
    const tls = (name: string, ip?: string): string[] => [...(ip ? ['--resolve', `${name}:443:${ip}`] : []), '--cacert', ext.caFile];
    const plain = (name: string, ip?: string): string[] => (ip ? ['--resolve', `${name}:80:${ip}`] : []);
    const extLog = (): string => fs.readFileSync(ext.log, 'utf8');
    const blockedLines = (): number => extLog().split('\n').filter((l) => l.includes('blocked.example.test')).length;
    const blockedBefore = blockedLines();

    assert.equal((await curl('client', 'https://allowed.example.test/', tls('allowed.example.test'))).status, '200', 'allowed name over TLS');
    assert.equal((await curl('client', 'http://allowed.example.test/', plain('allowed.example.test'))).status, '200', 'allowed name over HTTP');
    assert.equal((await curl('client', 'https://blocked.example.test/', tls('blocked.example.test'))).status, '000', 'other name over TLS: reset');
    assert.equal((await curl('client', 'http://blocked.example.test/', plain('blocked.example.test'))).status, '403', 'other name over HTTP: 403');
    assert.equal((await curl('client', 'https://allowed.example.test/', tls('allowed.example.test', ext.unnamedIp))).status, '000', 'allowed SNI, wrong address');
    assert.equal((await curl('client', 'http://allowed.example.test/', plain('allowed.example.test', ext.unnamedIp))).status, '403', 'allowed Host, wrong address');
    assert.equal((await curl('client', `http://${ext.ip}/`)).status, '403', 'an address without a name matches no host rule');
    assert.equal((await curl('client', 'http://169.254.169.254/latest/meta-data/')).status, '000', 'cloud metadata');
    assert.equal((await curl('client', 'http://allowed.example.test:8080/', ['--resolve', `allowed.example.test:8080:${ext.ip}`])).status, '000', 'a port the rule does not list');
    // web-1 has no EgressPolicy: unaffected.
    assert.equal((await curl('web-1', 'https://blocked.example.test/', tls('blocked.example.test'))).status, '200');
    assert.equal((await curl('web-1', 'http://blocked.example.test/', plain('blocked.example.test'))).status, '200');

    assert.equal(blockedLines() - blockedBefore, 2, 'only web-1 reached blocked.example.test');
    assert.doesNotMatch(extLog(), new RegExp(`"local":"${ext.unnamedIp.replace(/\./g, '\\.')}"`), 'nothing reached the unnamed address');

    await waitFor(() => flows('node-1').some((f) => f.direction === 'egress' && f.reason === 'metadata-address') || undefined, 3000, { what: 'metadata flow' });
    const egress = flows('node-1').filter((f) => f.direction === 'egress' && f.source.workload === 'client');
    const find = (pred: (f: Flow) => boolean, what: string): Flow => {
      const f = egress.find(pred);
      assert.ok(f, what);
      return f;
    };
    const ok = find((f) => f.protocol === 'tls' && f.destination.host === 'allowed.example.test' && f.verdict === 'allowed', 'allowed TLS flow');
    assert.equal(ok.policy, 'default/client-egress');
    assert.equal(find((f) => f.protocol === 'tls' && f.destination.host === 'blocked.example.test', 'blocked TLS flow').reason, 'host-not-allowed');
    assert.equal(find((f) => f.destination.ip === ext.unnamedIp && f.protocol === 'tls', 'spoofed SNI flow').reason, 'host-address-mismatch');
    assert.equal(find((f) => f.destination.ip === '169.254.169.254', 'metadata flow').verdict, 'denied');
  });

  it('a policy change reaches new connections within one second, and a DENY closes established connections it now denies', async () => {
    await enforce({});
    const web2 = pod('web-2').ip;
    const poller = spawnIn(pod('client'), process.execPath, [fixturePath('http-poll.js'), web2, '8080', '/public', '50', '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const held = spawnIn(pod('client'), process.execPath, [fixturePath('http-keepalive.js'), web2, '8080', '/public', '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(poller, held);
    const polls = new JsonLines(poller.stdout!);
    const keep = new JsonLines(held.stdout!);
    await polls.waitFor((l) => l?.status === 200, 5000);
    await keep.waitFor((l) => l?.event === 'connected', 5000);
    await new Promise((r) => setTimeout(r, 500));

    const t0 = Date.now();
    setPolicies({ 'web-deny-client.yaml': DENY_CLIENT_L4 });
    const change = await polls.waitFor<{ t: number; status: number }>((l) => typeof l?.t === 'number' && l.status !== 200, 5000);
    const ms = change.t - t0;
    process.stdout.write(`      policy change to first refused new connection: ${ms} ms\n`);
    assert.ok(ms <= 1000, `took ${ms} ms`);
    const end = await keep.waitFor<{ ok: boolean; error?: string; requests: number }>((l) => l && 'ok' in l, 5000);
    assert.equal(end.error, 'closed early', 'the established connection was closed');
    assert.ok(end.requests > 1, 'it carried requests before the change');
    assert.ok(Date.now() - t0 < 3000);
    version += 1;
    await agentsAt(version);
    poller.kill();
  });

  it('a bad policy file is rejected with a precise message and the previous policies stay in force', async () => {
    await enforce({ 'web-deny-admin.yaml': example('web-deny-admin.yaml') });
    const collectorLog = (): string => fs.readFileSync(state.collector!.log, 'utf8');
    const bad = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: broken
spec:
  action: DENY
  rules:
    - from:
        - source:
            ipBlocks: ["10.0.0.0/33"]
      frm: []
---
apiVersion: security.istio.io/v1
kind: AuthorisationPolicy
metadata:
  name: typo
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: wild
spec:
  rules:
    - to:
        - operation:
            paths: ["/a*b"]
`;
    const before = collectorLog().length;
    setPolicies({ 'web-deny-admin.yaml': example('web-deny-admin.yaml'), 'broken.yaml': bad });
    await waitFor(() => collectorLog().slice(before).includes('policy change rejected') || undefined, 3000, { what: 'the collector to reject the file' });
    const line = collectorLog()
      .slice(before)
      .split('\n')
      .find((l) => l.includes('policy change rejected'))!;
    const problems = (JSON.parse(line) as { problems: string[] }).problems;
    assert.ok(problems.some((p) => /broken\.yaml:10:.*10\.0\.0\.0\/33/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /broken\.yaml:11:.*frm/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /broken\.yaml:14:.*AuthorisationPolicy/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /broken\.yaml:26:.*\/a\*b/.test(p)), problems.join('\n'));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await curl('client', `http://${pod('web-2').ip}:8080/admin`)).status, '403', 'the previous DENY still holds');
    assert.equal((await curl('client', `http://${pod('web-2').ip}:8080/public`)).status, '200');
    setPolicies({});
  });
});
