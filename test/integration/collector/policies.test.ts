/**
 * The collector's versioned policies as a user drives them: `palisade policy|egress|status|audit`
 * run in-process against a real collector on loopback (real HTTPS, the mesh CA), with a real
 * agent session (CollectorClient over TLS WebSocket) that registers `client` and `web`, compiles
 * every `policies` frame and reports the version it enforces.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { parse } from 'yaml';
import { nodeCertPath, nodeKeyPath } from '../../../agent/mesh/node-identity';
import { encodeFlow } from '../../../agent/flows/wire';
import type { RunningCollector } from '../../../collector/collector';
import type { AuditRecord, EgressListResponse, StatusResponse } from '../../../common/control-api';
import type { FlowRecord } from '../../../common/flow';
import { denyFromYaml } from '../../harness/policies';
import { apiGet, type ApiCredentials } from './flows-fixtures';
import { CaTemplate, collector, joinedNodeDir, LogCapture, Stack, TempDirs, waitFor } from './helpers';
import {
  adminAuthor,
  cliFor,
  egressYaml,
  frameNames,
  json,
  listPolicies,
  refused,
  startAgent,
  writeFile,
  type Cli,
  type TestAgent,
} from './policies-fixtures';

const NODE = 'node-1';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("the collector's policies through the CLI (real collector, real agent)", function () {
  this.timeout(30_000);
  const dirs = new TempDirs();
  const suite = new Stack();
  let col: RunningCollector;
  let data: string;
  let agentDir: string;
  let files: string;
  let agent: TestAgent;
  let cli: Cli;

  before(async () => {
    data = new CaTemplate(dirs).dataDir(dirs);
    files = dirs.make('palisade-policy-files-');
    col = await collector(suite, { dataDir: data, log: new LogCapture().logger, auditSummaryIntervalMs: 200 });
    agentDir = await joinedNodeDir(dirs, col, data, NODE);
    agent = await startAgent(suite, col, agentDir, NODE);
    cli = cliFor(col, data, dirs.make('palisade-home-'));
  });
  after(async () => {
    await suite.unwind();
    dirs.cleanup();
  });

  /** The agent's next frames after `from`, once one with `version` has arrived (within 1 s). */
  async function framesUpTo(from: number, version: number): Promise<TestAgent['frames']> {
    await waitFor(() => agent.frames.slice(from).some((f) => f.version === version), 1_000, `a policies frame with version ${version}`);
    return agent.frames.slice(from);
  }

  /** `status -o json` once it shows the agent connected and enforcing `version` (within 1 s). */
  async function agentAt(version: number): Promise<StatusResponse> {
    const deadline = Date.now() + 1_000;
    for (;;) {
      const s = json<StatusResponse>(await cli('status', '-o', 'json'));
      const node = s.nodes.find((n) => n.node === NODE);
      if (s.policyVersion === version && node?.connected && node.policyVersion === version && !node.policyProblems) return s;
      if (Date.now() > deadline) assert.fail(`the agent is not at policy version ${version} within 1 s: ${JSON.stringify(s)}`);
      await sleep(20);
    }
  }

  const version = (): number => col.policies.version;

  it('apply, list, get, dry run, history and delete: each change a version the agent receives and enforces', async () => {
    const v0 = version();
    const seen = agent.frames.length;
    const both = writeFile(
      files,
      'web.yaml',
      `${denyFromYaml({ name: 'web-deny-client', app: 'web', serviceAccount: 'client' })}---\n${denyFromYaml({ name: 'web-deny-admin', app: 'web', serviceAccount: 'admin', ports: [8080] })}`,
    );
    const applied = await cli('policy', 'apply', '-f', both);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(
      applied.stdout,
      `created AuthorizationPolicy default/web-deny-admin\ncreated AuthorizationPolicy default/web-deny-client\npolicy version ${v0 + 1}\n`,
    );
    const pushed = await framesUpTo(seen, v0 + 1);
    assert.deepEqual(pushed.map((f) => f.version), [v0 + 1]);
    assert.deepEqual(frameNames(pushed[0]!), ['AuthorizationPolicy default/web-deny-admin', 'AuthorizationPolicy default/web-deny-client']);
    await agentAt(v0 + 1);

    const list = await cli('policy', 'list');
    assert.equal(list.code, 0, list.stderr);
    const author = adminAuthor(col);
    assert.match(author, /^admin:[0-9a-f]{8}$/);
    const listed = await listPolicies(cli);
    for (const name of ['web-deny-admin', 'web-deny-client']) {
      const p = listed.policies.find((x) => x.name === name)!;
      assert.deepEqual([p.kind, p.namespace, p.origin, p.version, p.author], ['AuthorizationPolicy', 'default', 'api', v0 + 1, author]);
      assert.match(list.stdout, new RegExp(`^${p.id} +AuthorizationPolicy +default/${name} +api +v${v0 + 1} +\\S+ +${author}$`, 'm'));
    }
    assert.match(list.stdout, new RegExp(`^policy version ${v0 + 1}\nID +KIND +NAME +ORIGIN +VERSION +UPDATED +AUTHOR\n`));

    // get prints YAML that applies back as unchanged
    const got = await cli('policy', 'get', 'default/web-deny-client');
    assert.equal(got.code, 0, got.stderr);
    assert.equal((parse(got.stdout) as { metadata: { name: string } }).metadata.name, 'web-deny-client');
    const again = await cli('policy', 'apply', '-f', writeFile(files, 'got.yaml', got.stdout));
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, `unchanged AuthorizationPolicy default/web-deny-client\nnothing changed (policy version ${v0 + 1})\n`);
    assert.equal(version(), v0 + 1);

    // a dry run shows the diff and changes nothing
    const edited = writeFile(files, 'edited.yaml', denyFromYaml({ name: 'web-deny-client', app: 'web', serviceAccount: 'intruder' }));
    const dry = await cli('policy', 'apply', '--dry-run', '-f', edited);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^would update AuthorizationPolicy default\/web-deny-client\n/);
    assert.match(dry.stdout, /^ {4}-.*cluster\.local\/ns\/default\/sa\/client/m);
    assert.match(dry.stdout, /^ {4}\+.*cluster\.local\/ns\/default\/sa\/intruder/m);
    assert.match(dry.stdout, new RegExp(`\ndry run: nothing applied \\(policy version stays ${v0 + 1}\\)\n$`));
    assert.equal(version(), v0 + 1);
    assert.equal((await listPolicies(cli)).version, v0 + 1);
    assert.match((await cli('policy', 'get', 'web-deny-client')).stdout, /sa\/client/);

    const updated = await cli('policy', 'apply', '-f', edited);
    assert.equal(updated.stdout, `updated AuthorizationPolicy default/web-deny-client\npolicy version ${v0 + 2}\n`);
    const deleted = await cli('policy', 'delete', 'web-deny-admin');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, `deleted AuthorizationPolicy default/web-deny-admin\npolicy version ${v0 + 3}\n`);
    const last = await framesUpTo(seen, v0 + 3);
    assert.deepEqual(last.map((f) => f.version), [v0 + 1, v0 + 2, v0 + 3]);
    assert.deepEqual(frameNames(last[2]!), ['AuthorizationPolicy default/web-deny-client']);
    await agentAt(v0 + 3);
    const after = await listPolicies(cli);
    assert.equal(after.version, v0 + 3);
    assert.deepEqual(after.policies.map((p) => p.name).filter((n) => n.startsWith('web-deny')), ['web-deny-client']);
    assert.doesNotMatch((await cli('policy', 'list')).stdout, /web-deny-admin/);

    // history: newest first; with a name, that policy's changes with their diffs
    const history = await cli('policy', 'history');
    assert.equal(history.code, 0, history.stderr);
    const rows = history.stdout.split('\n').slice(1, 4);
    assert.match(rows[0]!, new RegExp(`^v${v0 + 3} +\\S+ +${author} +delete +delete AuthorizationPolicy default/web-deny-admin$`));
    assert.match(rows[1]!, new RegExp(`^v${v0 + 2} +\\S+ +${author} +apply +update AuthorizationPolicy default/web-deny-client$`));
    assert.match(rows[2]!, new RegExp(`^v${v0 + 1} +\\S+ +${author} +apply +create AuthorizationPolicy default/web-deny-admin, create AuthorizationPolicy default/web-deny-client$`));
    const one = await cli('policy', 'history', 'web-deny-client');
    assert.equal(one.code, 0, one.stderr);
    const heads = one.stdout.split('\n').filter((l) => l.startsWith('v'));
    assert.deepEqual(
      heads.map((l) => l.replace(/ {2}\S+ {2}/, ' ')),
      [`v${v0 + 2} ${author}  apply: update AuthorizationPolicy default/web-deny-client`, `v${v0 + 1} ${author}  apply: create AuthorizationPolicy default/web-deny-client`],
    );
    const [updateDiff, createDiff] = one.stdout.split(/^v\d+ .*\n/m).slice(1);
    assert.match(updateDiff!, /^ {4}-.*sa\/client$/m);
    assert.match(updateDiff!, /^ {4}\+.*sa\/intruder$/m);
    assert.ok(createDiff!.split('\n').filter(Boolean).every((l) => l.startsWith('    +')), createDiff);
    // a deleted policy's history, by its full name
    const gone = await cli('policy', 'history', 'AuthorizationPolicy/default/web-deny-admin');
    assert.match(gone.stdout, new RegExp(`^v${v0 + 3} .*delete AuthorizationPolicy default/web-deny-admin\n( {4}-.*\n)+v${v0 + 1} `));
  });

  it('a file with one valid and one invalid policy: one line naming the bad one, nothing applied, nothing pushed', async () => {
    const before = await listPolicies(cli);
    const seen = agent.frames.length;
    const bad = writeFile(
      files,
      'half-bad.yaml',
      `${denyFromYaml({ name: 'fine', app: 'web', serviceAccount: 'a' })}---\n${denyFromYaml({ name: 'broken', app: 'web', serviceAccount: 'b' }).replace('action: DENY', 'action: MAYBE')}`,
    );
    const r = await cli('policy', 'apply', '-f', bad);
    refused(r, /AuthorizationPolicy default\/broken/);
    assert.ok(r.stderr.includes(bad), r.stderr);
    assert.doesNotMatch(r.stderr, /default\/fine/);
    assert.deepEqual(await listPolicies(cli), before);
    assert.equal(version(), before.version);
    // the next frame the agent gets is the next good change's: the bad apply pushed nothing
    const good = await cli('policy', 'apply', '-f', writeFile(files, 'good.yaml', denyFromYaml({ name: 'fine', app: 'web', serviceAccount: 'a' })));
    assert.equal(good.code, 0, good.stderr);
    assert.deepEqual((await framesUpTo(seen, before.version + 1)).map((f) => f.version), [before.version + 1]);
    await agentAt(before.version + 1);
  });

  it('egress allow / deny / remove: one EgressPolicy per rule on the workload, listed with its ID, enforced by the agent', async () => {
    const v0 = version();
    const allow = await cli('egress', 'allow', 'client', 'api.example.com', '10.9.0.0/16', '--port', '443');
    assert.equal(allow.code, 0, allow.stderr);
    const m = new RegExp(
      `^created EgressPolicy default/client-allow-(\\d+)\npolicy version ${v0 + 1}\negress rule (\\d+): client may reach api\\.example\\.com, 10\\.9\\.0\\.0/16 on port 443\n$`,
    ).exec(allow.stdout);
    assert.ok(m && m[1] === m[2], allow.stdout);
    const id = Number(m[1]);
    const manifest = json<Record<string, unknown>>(await cli('policy', 'get', `EgressPolicy/default/client-allow-${id}`, '-o', 'json'));
    assert.deepEqual(manifest.spec, {
      selector: { matchLabels: { 'palisade.dev/workload': 'client' } },
      allow: [
        { hosts: ['api.example.com'], ports: [443] },
        { cidrs: ['10.9.0.0/16'], ports: [443] },
      ],
    });
    await agentAt(v0 + 1);
    const listed = await cli('egress', 'list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ID +WORKLOADS +ACTION +DESTINATIONS +PROTOCOL +PORTS +POLICY +ORIGIN\n/);
    assert.match(listed.stdout, new RegExp(`^${id} +default/client +allow +api\\.example\\.com +TCP +443 +default/client-allow-${id} +api$`, 'm'));
    assert.match(listed.stdout, new RegExp(`^${id} +default/client +allow +10\\.9\\.0\\.0/16 +TCP +443 +default/client-allow-${id} +api$`, 'm'));

    const deny = await cli('egress', 'deny', 'client', 'evil.example.com');
    assert.equal(deny.code, 0, deny.stderr);
    const denyId = Number(/^egress rule (\d+): client may not reach evil\.example\.com$/m.exec(deny.stdout)?.[1]);
    assert.ok(denyId > id, deny.stdout);
    await agentAt(v0 + 2);
    const rules = json<EgressListResponse>(await cli('egress', 'list', '--workload', 'default/client', '-o', 'json'));
    const denyRule = rules.rules.find((r) => r.id === denyId);
    assert.deepEqual(
      denyRule && [denyRule.action, denyRule.hosts, denyRule.ports, denyRule.workloads],
      ['deny', ['evil.example.com'], [], ['default/client']],
    );
    assert.match((await cli('egress', 'list')).stdout, new RegExp(`^${denyId} +default/client +deny +evil\\.example\\.com +TCP +any +default/client-deny-${denyId} +api$`, 'm'));

    const udp = await cli('egress', 'allow', 'client', '10.9.0.0/16', '--port', '53', '--protocol', 'udp');
    assert.equal(udp.code, 0, udp.stderr);
    const udpId = Number(/^egress rule (\d+): client may reach UDP to 10\.9\.0\.0\/16 on port 53$/m.exec(udp.stdout)?.[1]);
    assert.ok(udpId > denyId, udp.stdout);
    const udpManifest = json<Record<string, unknown>>(await cli('policy', 'get', `EgressPolicy/default/client-allow-${udpId}`, '-o', 'json'));
    assert.deepEqual((udpManifest.spec as { allow: unknown }).allow, [{ cidrs: ['10.9.0.0/16'], ports: [53], protocol: 'UDP' }]);
    assert.match((await cli('egress', 'list')).stdout, new RegExp(`^${udpId} +default/client +allow +10\\.9\\.0\\.0/16 +UDP +53 +default/client-allow-${udpId} +api$`, 'm'));
    assert.equal((await cli('egress', 'remove', String(udpId))).code, 0);
    await agentAt(v0 + 4);

    const removed = await cli('egress', 'remove', String(id));
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, `deleted EgressPolicy default/client-allow-${id}\npolicy version ${v0 + 5}\n`);
    await agentAt(v0 + 5);
    const rest = json<EgressListResponse>(await cli('egress', 'list', '-o', 'json'));
    assert.deepEqual(rest.rules.filter((r) => r.id === id), []);
    assert.ok(rest.rules.some((r) => r.id === denyId));
    assert.doesNotMatch((await cli('egress', 'list')).stdout, new RegExp(`^${id} `, 'm'));

    const status = await cli('status');
    assert.deepEqual([status.code, status.stderr], [0, '']);
    assert.match(status.stdout, new RegExp(`^policy version ${v0 + 5}; `));
    assert.match(status.stdout, new RegExp(`^${NODE} +yes +v${v0 + 5} +current +2 +\\S+$`, 'm'));
  });

  it('bad input is one line on stderr, a non-zero exit, and changes nothing', async () => {
    const shared = writeFile(files, 'shared.yaml', `${denyFromYaml({ name: 'shared', app: 'web', serviceAccount: 'x' })}---\n${egressYaml('shared', 'shared.example.com')}`);
    assert.equal((await cli('policy', 'apply', '-f', shared)).code, 0);
    const before = await listPolicies(cli);
    const egressBefore = json<EgressListResponse>(await cli('egress', 'list', '-o', 'json'));
    const cases: Array<[string[], RegExp]> = [
      [['egress', 'allow', 'nobody', 'a.example.com'], /unknown workload "nobody" \(registered: default\/client, default\/web\)/],
      [['egress', 'allow', 'client', 'bad host'], /invalid destination "bad host"/],
      [['egress', 'allow', 'client', 'exa*mple.com'], /invalid destination "exa\*mple\.com"/],
      [['egress', 'allow', 'client', '10.0.0.0/33'], /invalid destination "10\.0\.0\.0\/33"/],
      [['egress', 'deny', 'client', '300.1.1.1'], /invalid destination "300\.1\.1\.1"/],
      [['egress', 'allow', 'client', 'a.example.com', '--port', '70000'], /not a port \(1-65535\): 70000/],
      [['egress', 'allow', 'client', 'a.example.com', '--port', '0'], /not a port \(1-65535\): 0\b/],
      [['egress', 'allow', 'client', '10.0.0.0/8', '--protocol', 'sctp'], /invalid --protocol "sctp": use tcp, udp or icmp/],
      [['egress', 'allow', 'client', 'dns.example.com', '--protocol', 'udp'], /"dns\.example\.com" is a host: host rules are TCP only/],
      [['egress', 'allow', 'client', '10.0.0.0/8', '--port', '7', '--protocol', 'icmp'], /ICMP has no ports/],
      [['egress', 'remove', '9999'], /no egress rule with ID 9999/],
      [['policy', 'delete', 'nosuch'], /no policy "nosuch"/],
      [['policy', 'delete', 'default/nosuch'], /no policy "default\/nosuch"/],
      [['policy', 'get', 'nosuch'], /no policy "nosuch"/],
      [['policy', 'get', 'shared'], /"shared" names 2 policies \(AuthorizationPolicy\/default\/shared, EgressPolicy\/default\/shared\): name it as Kind\/namespace\/name/],
      [['policy', 'delete', 'shared'], /"shared" names 2 policies/],
    ];
    for (const [argv, pattern] of cases) {
      const r = await cli(...argv);
      try {
        refused(r, pattern);
      } catch (err) {
        (err as Error).message = `palisade ${argv.join(' ')}: ${(err as Error).message}`;
        throw err;
      }
    }
    assert.equal(version(), before.version);
    assert.deepEqual(await listPolicies(cli), before);
    assert.deepEqual(json<EgressListResponse>(await cli('egress', 'list', '-o', 'json')), egressBefore);
    // the full name settles the ambiguity
    assert.equal((await cli('policy', 'get', 'EgressPolicy/default/shared')).code, 0);
  });

  it('every write needs the admin token: none or a wrong one is 401, a node certificate 403; a node certificate may read', async () => {
    assert.equal((await cli('egress', 'deny', 'web', 'auth-probe.example.com')).code, 0);
    const before = await listPolicies(cli);
    const probe = before.policies.find((p) => p.kind === 'EgressPolicy' && p.name.startsWith('web-deny-'))!;
    const writes: Array<[string, unknown]> = [
      ['/v1/policies/apply', { files: [{ source: 'x.yaml', text: denyFromYaml({ name: 'sneaky', app: 'web', serviceAccount: 'x' }) }] }],
      ['/v1/policies/delete', { name: `${probe.kind}/${probe.namespace}/${probe.name}` }],
      ['/v1/egress/rules', { workload: 'client', action: 'allow', destinations: ['sneaky.example.com'] }],
      ['/v1/egress/remove', { id: probe.id }],
    ];
    const node: ApiCredentials = { cert: { certPem: fs.readFileSync(nodeCertPath(agentDir), 'utf8'), keyPem: fs.readFileSync(nodeKeyPath(agentDir), 'utf8') } };
    const callers: Array<[string, ApiCredentials, number, string]> = [
      ['no credentials', {}, 401, 'PALISADE_ERR_UNAUTHENTICATED'],
      ['a wrong token', { token: 'pla_wrongwrongwrongwrongwrongwrongwrongwrongwro' }, 401, 'PALISADE_ERR_UNAUTHENTICATED'],
      ['a node certificate', node, 403, 'PALISADE_ERR_FORBIDDEN'],
    ];
    for (const [route, body] of writes) {
      for (const [who, creds, status, code] of callers) {
        const res = await apiGet(col, route, creds, 'POST', body);
        assert.equal(res.status, status, `${route} with ${who}: ${res.text}`);
        assert.equal((JSON.parse(res.text) as { error: { code: string } }).error.code, code, `${route} with ${who}`);
      }
    }
    assert.equal(version(), before.version);
    assert.deepEqual(await listPolicies(cli), before);
    for (const route of ['/v1/status', '/v1/policies', '/v1/egress']) {
      const res = await apiGet(col, route, node);
      assert.equal(res.status, 200, `${route}: ${res.text}`);
    }
    const status = JSON.parse((await apiGet(col, '/v1/status', node)).text) as StatusResponse;
    assert.equal(status.policyVersion, before.version);
    // the same request with the admin token goes through: the others were refused for who sent them
    const admin = await apiGet(col, '/v1/egress/remove', { token: col.adminToken }, 'POST', { id: probe.id });
    assert.equal(admin.status, 200, admin.text);
    assert.equal(version(), before.version + 1);
  });

  it('denied flows an agent reports are summarized into a denied-flows audit record', async () => {
    const id = (sa: string): string => `spiffe://cluster.local/ns/default/sa/${sa}`;
    const flow = (f: Partial<FlowRecord>): FlowRecord => ({
      time: new Date().toISOString(),
      node: NODE,
      direction: 'outbound',
      source: { ip: '10.1.0.1', port: 40000, workload: 'client', namespace: 'default', identity: id('client') },
      destination: { ip: '10.1.0.2', port: 8080, workload: 'web', namespace: 'default', identity: id('web') },
      protocol: 'tcp',
      verdict: 'denied',
      reason: 'denied-by-policy',
      policy: 'default/web-deny-client',
      mtls: true,
      bytesSent: 0,
      bytesReceived: 0,
      durationMs: 1,
      ...f,
    });
    const flows = [
      flow({}),
      flow({ verdict: 'allowed', reason: 'allowed-by-policy', policy: undefined }),
      flow({}),
      flow({ direction: 'egress', destination: { ip: '203.0.113.9', port: 443, host: 'evil.example.com' }, protocol: 'tls', reason: 'host-not-allowed', policy: undefined, mtls: false }),
    ];
    const before = json<AuditRecord[]>(await cli('audit', 'list', '--kind', 'denied-flows', '-o', 'json')).length;
    const acked = new Promise((resolve) => agent.session.once('flows-ack', resolve));
    assert.ok(agent.session.sendFlows({ session: 'policy-store-test', seq: 1, lost: 0, flows: flows.map((f) => encodeFlow(f).json!) }));
    await acked;
    let records: AuditRecord[] = [];
    const deadline = Date.now() + 3_000;
    while (records.length <= before && Date.now() < deadline) {
      await sleep(50);
      records = json<AuditRecord[]>(await cli('audit', 'list', '--kind', 'denied-flows', '-o', 'json'));
    }
    assert.equal(records.length, before + 1, 'one summary record');
    const r = records[records.length - 1]!;
    assert.deepEqual([r.kind, r.actor], ['denied-flows', 'collector']);
    assert.deepEqual(r.data.groups, [
      { source: 'default/client', destination: 'default/web', reason: 'denied-by-policy', policy: 'default/web-deny-client', count: 2 },
      { source: 'default/client', destination: 'evil.example.com', reason: 'host-not-allowed', count: 1 },
    ]);
    assert.deepEqual([r.data.total, r.data.dropped], [3, 0]);
    const table = await cli('audit', 'list', '--kind', 'denied-flows');
    assert.match(table.stdout, new RegExp(`^${r.seq} +\\S+ +denied-flows +collector +3 denied flows in 2 groups \\(`, 'm'));
  });

  it('audit: one policy-change record per version, verify intact; an edited record fails verify and is named', async () => {
    const current = version();
    assert.ok(current >= 5, `earlier tests made versions (${current})`);
    const records = json<AuditRecord[]>(await cli('audit', 'list', '--kind', 'policy-change', '--limit', '10000', '-o', 'json'));
    assert.deepEqual(
      records.map((r) => (r.data as { version: number }).version),
      Array.from({ length: current }, (_, i) => i + 1),
    );
    const author = adminAuthor(col);
    assert.ok(records.every((r) => r.kind === 'policy-change' && r.actor === author), JSON.stringify(records.map((r) => r.actor)));
    const first = records[0]!;
    assert.deepEqual(first.data, {
      version: 1,
      action: 'apply',
      changes: [
        { op: 'create', kind: 'AuthorizationPolicy', namespace: 'default', name: 'web-deny-admin' },
        { op: 'create', kind: 'AuthorizationPolicy', namespace: 'default', name: 'web-deny-client' },
      ],
    });
    const table = await cli('audit', 'list', '--kind', 'policy-change');
    assert.match(table.stdout, new RegExp(`^${first.seq} +\\S+ +policy-change +${author} +v1 apply: create AuthorizationPolicy default/web-deny-admin, create AuthorizationPolicy default/web-deny-client$`, 'm'));

    const total = json<AuditRecord[]>(await cli('audit', 'list', '--limit', '10000', '-o', 'json')).length;
    const ok = await cli('audit', 'verify');
    assert.deepEqual([ok.code, ok.stderr], [0, '']);
    assert.match(ok.stdout, new RegExp(`^audit log intact: ${total} records, head seq \\d+\n$`));

    // someone edits record `first` in audit.db behind the collector's back
    const db = new Database(path.join(data, 'audit.db'));
    const original = (db.prepare('SELECT data FROM audit WHERE seq = ?').get(first.seq) as { data: string }).data;
    try {
      assert.equal(db.prepare('UPDATE audit SET data = ? WHERE seq = ?').run(original.replace('web-deny-admin', 'web-deny-other'), first.seq).changes, 1);
      const broken = await cli('audit', 'verify');
      assert.equal(broken.code, 1);
      assert.equal(broken.stdout, `record ${first.seq} was modified: its hash does not match its content\n`);
      assert.equal(broken.stderr, `palisade: audit log verification failed: 1 problem, first at record ${first.seq}\n`);
    } finally {
      db.prepare('UPDATE audit SET data = ? WHERE seq = ?').run(original, first.seq);
      db.close();
    }
    assert.equal((await cli('audit', 'verify')).code, 0, 'intact again once restored');
  });
});
