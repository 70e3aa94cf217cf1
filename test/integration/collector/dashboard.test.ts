/**
 * The dashboard's side of the collector over real TLS: the login (a single-use ticket for the
 * admin token, exchanged for an HttpOnly, Secure, SameSite=Strict cookie), refusal of every API
 * request without a live session, the graph and edge flows from flows agents sent, the control
 * API with the admin's rights (audited), and no secret in any URL, answer or log line.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { nodeCertPath, nodeKeyPath } from '../../../agent/mesh/node-identity';
import { run } from '../../../cli/program';
import type { RunningCollector } from '../../../collector/collector';
import { FlowStore } from '../../../collector/flows/store';
import { DASHBOARD_API, SESSION_COOKIE, type GraphResponse, type TicketResponse, type WorkloadResponse } from '../../../common/dashboard-api';
import type { FlowRecord } from '../../../common/flow';
import { encodeMessage } from '../../../common/mesh-protocol';
import { silentLogger } from '../../../common/log';
import { apiGet, FlowSession, type HttpAnswer } from './flows-fixtures';
import { CaTemplate, collector, joinedNodeDir, LogCapture, Stack, TempDirs, waitFor } from './helpers';

interface Req {
  cookie?: string;
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A request to the dashboard as a browser makes it (cookie, JSON body). */
function dash(col: RunningCollector, p: string, r: Req = {}): Promise<HttpAnswer> {
  const headers = { ...(r.cookie !== undefined ? { cookie: `${SESSION_COOKIE}=${r.cookie}` } : {}), ...r.headers };
  return apiGet(col, p, { headers }, r.method ?? (r.body === undefined ? 'GET' : 'POST'), r.body);
}

async function login(col: RunningCollector): Promise<{ cookie: string; setCookie: string; ticket: string }> {
  const t = await apiGet(col, DASHBOARD_API.ticket, { token: col.adminToken }, 'POST', {});
  assert.equal(t.status, 200, t.text);
  const { ticket } = JSON.parse(t.text) as TicketResponse;
  const s = await dash(col, DASHBOARD_API.session, { body: { ticket } });
  assert.equal(s.status, 200, s.text);
  const setCookie = String(s.headers['set-cookie']);
  const m = new RegExp(`${SESSION_COOKIE}=([A-Za-z0-9_-]+)`).exec(setCookie);
  assert.ok(m, setCookie);
  return { cookie: m[1]!, setCookie, ticket };
}

const now = Date.now();
const ep = (ip: string, workload?: string, port?: number): FlowRecord['source'] => ({
  ip,
  ...(port !== undefined ? { port } : {}),
  ...(workload !== undefined ? { workload, namespace: 'default', identity: `spiffe://cluster.local/ns/default/sa/${workload === 'client' ? 'client' : 'web'}` } : {}),
});

function flow(node: string, f: Partial<FlowRecord>): FlowRecord {
  return {
    time: new Date(now - 30_000).toISOString(),
    node,
    direction: 'inbound',
    source: ep('10.0.1.10', 'client'),
    destination: ep('10.0.2.10', 'web-2', 8080),
    protocol: 'http',
    http: { method: 'GET', path: '/', status: 200 },
    verdict: 'allowed',
    reason: 'no-policy',
    mtls: true,
    bytesSent: 100,
    bytesReceived: 200,
    durationMs: 3,
    ...f,
  };
}

/** What the two agents report: 40 requests client → web-2 (mTLS), 25 client → web-1 (same node), 5 denied, 7 egress. */
function traffic(): { n1: FlowRecord[]; n2: FlowRecord[] } {
  const n2 = [
    ...Array.from({ length: 40 }, () => flow('node-2', {})),
    ...Array.from({ length: 5 }, () =>
      flow('node-2', { http: { method: 'GET', path: '/admin', status: 403 }, verdict: 'denied', reason: 'denied-by-policy', policy: 'default/web-deny-admin' }),
    ),
  ];
  const n1 = [
    ...Array.from({ length: 25 }, () => flow('node-1', { destination: ep('10.0.1.11', 'web-1', 8080), mtls: false })),
    ...Array.from({ length: 7 }, () =>
      flow('node-1', { direction: 'egress', destination: { ip: '172.31.0.100', port: 443, host: 'allowed.example.test' }, protocol: 'tls', http: undefined, mtls: false }),
    ),
    // the source side of the cross-node requests: not counted again
    ...Array.from({ length: 3 }, () => flow('node-1', { direction: 'outbound', protocol: 'tcp', http: undefined })),
  ];
  return { n1, n2 };
}

describe('collector dashboard', function () {
  this.timeout(30_000);
  const dirs = new TempDirs();
  const suite = new Stack();
  let logs: LogCapture;
  let col: RunningCollector;
  let data: string;
  let node1: string;
  let cookie: string;

  before(async () => {
    const template = new CaTemplate(dirs);
    logs = new LogCapture();
    data = template.dataDir(dirs);
    col = await collector(suite, { dataDir: data, log: logs.logger, dashboardSessions: { idleMs: 60_000 } });
    let node2: string;
    [node1, node2] = await Promise.all([joinedNodeDir(dirs, col, data, 'node-1'), joinedNodeDir(dirs, col, data, 'node-2')]);
    const [a, b] = await Promise.all([FlowSession.open(suite, col, node1, 'node-1'), FlowSession.open(suite, col, node2, 'node-2')]);
    const labels = (name: string): Record<string, string> => ({ app: name, 'palisade.dev/workload': name });
    a.ws.send(encodeMessage({ type: 'register', workloads: [{ name: 'client', namespace: 'default', serviceAccount: 'client', ip: '10.0.1.10', labels: labels('client') }, { name: 'web-1', namespace: 'default', serviceAccount: 'web', ip: '10.0.1.11', labels: labels('web-1') }] }));
    b.ws.send(encodeMessage({ type: 'register', workloads: [{ name: 'web-2', namespace: 'default', serviceAccount: 'web', ip: '10.0.2.10', labels: labels('web-2') }] }));
    await waitFor(() => col.snapshot().workloads.length === 3, 5000, 'three workloads registered');
    const t = traffic();
    assert.equal((await a.send({ session: 's1', seq: 1, lost: 0, flows: t.n1 })).type, 'flows-ack');
    assert.equal((await b.send({ session: 's2', seq: 1, lost: 0, flows: t.n2 })).type, 'flows-ack');
    // a batch sent again (after a reconnect) is stored once, and counted once
    assert.equal((await b.send({ session: 's2', seq: 1, lost: 0, flows: t.n2 })).type, 'flows-ack');
    ({ cookie } = await login(col));
  });

  after(async () => {
    await suite.unwind();
    dirs.cleanup();
  });

  describe('login', () => {
    it('gives a ticket only for the admin token: none without it, none for a node certificate', async () => {
      assert.equal((await apiGet(col, DASHBOARD_API.ticket, {}, 'POST', {})).status, 401);
      assert.equal((await apiGet(col, DASHBOARD_API.ticket, { token: 'pla_wrong' }, 'POST', {})).status, 401);
      const cert = { certPem: fs.readFileSync(nodeCertPath(node1), 'utf8'), keyPem: fs.readFileSync(nodeKeyPath(node1), 'utf8') };
      const byNode = await apiGet(col, DASHBOARD_API.ticket, { cert }, 'POST', {});
      assert.equal(byNode.status, 401, byNode.text);
      assert.ok(logs.find('dashboard ticket refused', { reason: 'a node certificate may not open the dashboard' }));
    });

    it('exchanges a ticket once for an HttpOnly, Secure, SameSite=Strict session cookie', async () => {
      const { setCookie, ticket } = await login(col);
      assert.match(setCookie, /; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
      assert.ok(setCookie.startsWith('__Host-'), 'host-only, Secure, Path=/ by prefix');
      const again = await dash(col, DASHBOARD_API.session, { body: { ticket } });
      assert.equal(again.status, 401, 'a ticket is single use');
      assert.equal((await dash(col, DASHBOARD_API.session, { body: { ticket: col.adminToken } })).status, 401, 'the admin token is no ticket');
    });

    it('ends a session at logout', async () => {
      const s = await login(col);
      assert.equal((await dash(col, DASHBOARD_API.graph + `?since=${now - 60_000}`, { cookie: s.cookie })).status, 200);
      const out = await dash(col, DASHBOARD_API.logout, { cookie: s.cookie, body: {} });
      assert.equal(out.status, 200);
      assert.match(String(out.headers['set-cookie']), /Max-Age=0/);
      assert.equal((await dash(col, DASHBOARD_API.graph + `?since=${now - 60_000}`, { cookie: s.cookie })).status, 401);
    });
  });

  describe('sessions', () => {
    const routes: Array<[string, Req]> = [
      [`${DASHBOARD_API.graph}?since=0`, {}],
      [`${DASHBOARD_API.flows}?since=0&node=w:default/web-2`, {}],
      [`${DASHBOARD_API.workload}?name=default/web-2`, {}],
      [DASHBOARD_API.config, {}],
      [DASHBOARD_API.draft, { body: { edges: ['w:default/client->w:default/web-2'], since: 0, until: 1 } }],
      [`${DASHBOARD_API.control}status`, {}],
      [`${DASHBOARD_API.control}policies/apply`, { body: { files: [{ source: 'x', text: 'kind: List\nitems: []\n' }] } }],
    ];
    for (const [route, r] of routes) {
      it(`refuses ${route.split('?')[0]} without a valid session: no cookie, a forged one, the admin token`, async () => {
        for (const variant of [{}, { cookie: 'A'.repeat(43) }, { cookie: 'x' }, { headers: { authorization: `Bearer ${col.adminToken}` } }] as Req[]) {
          const res = await dash(col, route, { ...r, ...variant });
          assert.equal(res.status, 401, `${JSON.stringify(variant).slice(0, 40)}: ${res.text}`);
          assert.equal(JSON.parse(res.text).error.code, 'PALISADE_ERR_UNAUTHENTICATED');
        }
      });
    }

    it('gives the page its settings: no trace URL without --trace-url', async () => {
      const s = await login(col);
      const res = await dash(col, DASHBOARD_API.config, { cookie: s.cookie });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(JSON.parse(res.text), {});
    });

    it('refuses a session once it has been idle too long', async () => {
      const short = await collector(suite, { dataDir: new CaTemplate(dirs).dataDir(dirs), log: silentLogger(), dashboardSessions: { idleMs: 300 } });
      const s = await login(short);
      assert.equal((await dash(short, `${DASHBOARD_API.control}status`, { cookie: s.cookie })).status, 200);
      await new Promise((r) => setTimeout(r, 500));
      const res = await dash(short, `${DASHBOARD_API.control}status`, { cookie: s.cookie });
      assert.equal(res.status, 401);
      assert.match(JSON.parse(res.text).error.message, /session expired/);
    });

    it('refuses a cross-site POST even with the cookie', async () => {
      const res = await dash(col, DASHBOARD_API.draft, { cookie, body: { edges: [], since: 0, until: 1 }, headers: { origin: 'https://evil.example' } });
      assert.equal(res.status, 403);
      const site = await dash(col, DASHBOARD_API.draft, { cookie, body: { edges: [], since: 0, until: 1 }, headers: { 'sec-fetch-site': 'cross-site' } });
      assert.equal(site.status, 403);
    });
  });

  describe('the map', () => {
    const graph = async (q = ''): Promise<GraphResponse> => {
      const res = await dash(col, `${DASHBOARD_API.graph}?since=${now - 5 * 60_000}&until=${now + 1}${q}`, { cookie });
      assert.equal(res.status, 200, res.text);
      return JSON.parse(res.text) as GraphResponse;
    };
    const flowsOf = async (q: string): Promise<Array<FlowRecord & { id: number }>> => {
      const res = await dash(col, `${DASHBOARD_API.flows}?since=${now - 6 * 60_000}&until=${now + 1}&${q}&limit=1000`, { cookie });
      assert.equal(res.status, 200, res.text);
      return (JSON.parse(res.text) as { flows: Array<FlowRecord & { id: number }> }).flows;
    };

    it('shows each pair once with its counts, lock and denials, and egress as its own node', async () => {
      const g = await graph();
      const edge = (id: string) => g.edges.find((e) => e.id === id);
      const web2 = edge('w:default/client->w:default/web-2')!;
      assert.deepEqual([web2.requests, web2.flows, web2.lock, web2.mtls], [40, 40, 'full', 40], 'the batch sent twice counted once');
      const web1 = edge('w:default/client->w:default/web-1')!;
      assert.deepEqual([web1.requests, web1.lock, web1.local], [25, 'full', 25]);
      const denied = edge('w:default/client->w:default/web-2#denied')!;
      assert.deepEqual([denied.flows, denied.denied, denied.policies], [5, true, ['default/web-deny-admin']]);
      const egress = edge('w:default/client->host:allowed.example.test')!;
      assert.deepEqual([egress.flows, egress.egress], [7, true]);
      assert.equal(g.nodes.find((n) => n.id === 'host:allowed.example.test')!.kind, 'external');
      assert.equal(g.edges.length, 4, 'outbound records are not edges of their own');
      assert.ok(web2.p95Ms !== undefined && web2.p95Ms > 2 && web2.p95Ms <= 3);
    });

    it('narrows by verdict, protocol, workload and namespace', async () => {
      assert.deepEqual((await graph('&verdicts=denied')).edges.map((e) => e.id), ['w:default/client->w:default/web-2#denied']);
      assert.deepEqual((await graph('&protocols=tls')).edges.map((e) => e.target), ['host:allowed.example.test']);
      assert.deepEqual((await graph('&workload=default/web-1')).edges.map((e) => e.target), ['w:default/web-1']);
      assert.equal((await graph('&namespaces=other')).edges.length, 0);
      assert.equal((await graph('&namespaces=other,default')).edges.length, 4);
      assert.equal((await graph('&limit=1')).hidden.edges, 3);
    });

    it('lists exactly the flows of an edge, and of a node', async () => {
      const web2 = await flowsOf('source=w:default/client&target=w:default/web-2&denied=false');
      assert.equal(web2.length, 40);
      assert.ok(web2.every((f) => f.destination.workload === 'web-2' && f.verdict === 'allowed' && f.direction === 'inbound'));
      const denied = await flowsOf('source=w:default/client&target=w:default/web-2&denied=true');
      assert.equal(denied.length, 5);
      assert.equal((await flowsOf('source=w:default/client&target=host:allowed.example.test')).length, 7);
      assert.equal((await flowsOf('node=w:default/client')).length, 40 + 5 + 25 + 7);
      const newest = web2[0]!.id;
      assert.equal((await flowsOf(`source=w:default/client&target=w:default/web-2&denied=false&after=${newest}`)).length, 0, 'nothing newer than the newest');
    });

    it('refuses bad parameters in one line naming them', async () => {
      for (const [q, what] of [
        ['', /since is required/],
        [`?since=${now}&until=${now - 1}`, /before until/],
        [`?since=0&until=${now}`, /at most 48 h/],
        [`?since=${now - 1000}&verdicts=maybe`, /verdicts/],
        [`?since=${now - 1000}&bogus=1`, /bogus/],
      ] as Array<[string, RegExp]>) {
        const res = await dash(col, `${DASHBOARD_API.graph}${q}`, { cookie });
        assert.equal(res.status, 400, q);
        assert.match(JSON.parse(res.text).error.message, what);
      }
      const bad = await dash(col, `${DASHBOARD_API.flows}?since=${now - 1000}&node=web-2`, { cookie });
      assert.equal(bad.status, 400);
    });

    it('shows a workload with the policies selecting it and its egress rules', async () => {
      const res = await dash(col, `${DASHBOARD_API.workload}?name=default/client`, { cookie });
      assert.equal(res.status, 200, res.text);
      const w = JSON.parse(res.text) as WorkloadResponse;
      assert.equal(w.workload?.node, 'node-1');
      assert.deepEqual(w.policies, []);
    });
  });

  describe('policies from the map', () => {
    it('drafts from edges, tests against the recorded flows and applies as the admin, audited', async () => {
      const since = now - 5 * 60_000;
      const draft = await dash(col, DASHBOARD_API.draft, { cookie, body: { edges: ['w:default/client->w:default/web-2', 'w:default/client->host:allowed.example.test'], since, until: now + 1 } });
      assert.equal(draft.status, 200, draft.text);
      const { yaml } = JSON.parse(draft.text) as { yaml: string };
      assert.match(yaml, /principals:\n\s+- cluster\.local\/ns\/default\/sa\/client/);
      assert.match(yaml, /allowed\.example\.test/);
      const files = [{ source: 'dashboard-draft.yaml', text: yaml }];
      const test = await dash(col, `${DASHBOARD_API.control}policies/test`, { cookie, body: { files, since } });
      assert.equal(test.status, 200, test.text);
      const apply = await dash(col, `${DASHBOARD_API.control}policies/apply`, { cookie, body: { files } });
      assert.equal(apply.status, 200, apply.text);
      assert.equal(JSON.parse(apply.text).applied, true, apply.text);
      const audit = await apiGet(col, '/v1/audit?kind=policy-change', { token: col.adminToken });
      const records = JSON.parse(audit.text).records as Array<{ actor: string }>;
      assert.match(records[records.length - 1]!.actor, /^admin:[0-9a-f]{8}$/);
      assert.ok(logs.find('api write', { via: 'dashboard' }));
      const w = JSON.parse((await dash(col, `${DASHBOARD_API.workload}?name=default/web-2`, { cookie })).text) as WorkloadResponse;
      assert.deepEqual(w.policies.map((p) => `${p.action} ${p.name}`), ['ALLOW web-2-allow-drafted']);
      const c = JSON.parse((await dash(col, `${DASHBOARD_API.workload}?name=default/client`, { cookie })).text) as WorkloadResponse;
      assert.deepEqual(c.egress.map((r) => r.hosts), [['allowed.example.test']]);
    });
  });

  describe('palisade dashboard', () => {
    it('prints a link whose fragment logs in once, and never the admin token', async () => {
      const out: string[] = [];
      const err: string[] = [];
      const deps = { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t), logger: () => silentLogger(), waitForStop: () => new Promise<string>(() => undefined), env: {} };
      const code = await run(['dashboard', '--no-open', '--collector', `https://127.0.0.1:${col.port}`, '--token-file', path.join(data, 'admin.token'), '--ca', path.join(data, 'ca.crt')], deps);
      assert.equal(code, 0, err.join(''));
      const url = new URL(out.join('').trim());
      assert.equal(url.pathname, '/dashboard/');
      assert.equal(url.search, '', 'nothing a server would log');
      const ticket = /^#ticket=([A-Za-z0-9_-]{43})$/.exec(url.hash)?.[1];
      assert.ok(ticket, url.hash);
      assert.equal(`${out.join('')}${err.join('')}`.includes(col.adminToken), false);
      assert.equal((await dash(col, DASHBOARD_API.session, { body: { ticket } })).status, 200);
      assert.equal((await dash(col, DASHBOARD_API.session, { body: { ticket } })).status, 401);
    });
  });

  describe('the page', () => {
    it('is served with a strict Content-Security-Policy, from the collector only', async () => {
      const res = await dash(col, '/dashboard/');
      assert.equal(res.status, 200, 'make build bundles the page');
      assert.match(String(res.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
      assert.equal(res.headers['x-frame-options'], 'DENY');
      // everything it loads is the collector's (and the CSP lets it load nothing else)
      const loads = [...res.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      assert.ok(loads.length >= 2 && loads.every((s) => s.startsWith('/dashboard/assets/')), loads.join(' '));
      for (const asset of loads) assert.equal((await dash(col, asset)).status, 200, asset);
      assert.equal((await dash(col, '/dashboard')).status, 308);
      assert.equal((await dash(col, '/dashboard/nope.js')).status, 404);
    });

    it('puts no admin token, ticket or session id in any log line', async () => {
      const s = await login(col);
      const text = logs.text.join('\n');
      for (const secret of [col.adminToken, s.ticket, s.cookie, cookie]) assert.equal(text.includes(secret), false);
    });
  });

  describe('the rollup', () => {
    it('is rebuilt from the stored flows when a database of schema 1 is opened', async () => {
      const dir = dirs.make();
      const file = path.join(dir, 'flows.db');
      const store = FlowStore.open({ file, log: silentLogger() });
      const t = traffic();
      store.ingest('node-2', { session: 's', seq: 1, lost: 0, flows: t.n2 });
      const q = { fromMinute: Math.floor((now - 600_000) / 60_000), toMinute: Math.floor(now / 60_000) };
      const before = store.edgeTotals(q);
      await store.close();
      const db = new Database(file);
      db.exec('DROP TABLE edge_minutes');
      db.pragma('user_version = 1');
      db.close();
      const again = FlowStore.open({ file, log: silentLogger() });
      assert.deepEqual(again.edgeTotals(q), before);
      assert.equal(before.reduce((n, r) => n + r.flows, 0), 45);
      await again.close();
    });
  });
});
