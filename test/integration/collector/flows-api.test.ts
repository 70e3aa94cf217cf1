import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunningCollector } from '../../../collector/collector';
import type { ErrorResponse, FlowsResponse, StatsResponse } from '../../../common/flows-api';
import type { FlowRecord } from '../../../common/flow';
import { generateKeyPair, nodeSpiffeId } from '../../../common/pki';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import {
  FILTER_CASES,
  FlowSession,
  apiGet,
  flowsPath,
  follow,
  knownFlows,
  nodeCreds,
  type ApiCredentials,
} from './flows-fixtures';
import { CaTemplate, closed, collector, joinedNodeDir, LogCapture, opened, refusal, Stack, TempDirs, token as joinToken, waitFor } from './helpers';

/** Every line of a Prometheus text exposition, checked; samples by `name{labels}`. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|\+Inf|-Inf))$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const m = sample.exec(line);
    assert.ok(m, `not a Prometheus line: ${JSON.stringify(line)}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return samples;
}

const tagsOf = (r: FlowsResponse): number[] => r.flows.map((f) => f.bytesSent);

function mark(tag: number, node: string, f: Partial<FlowRecord> = {}): FlowRecord {
  return {
    time: new Date().toISOString(),
    node,
    direction: 'outbound',
    source: { ip: '10.9.0.1', workload: 'web', namespace: 'shop' },
    destination: { ip: '10.9.0.2', port: 80, workload: 'api', namespace: 'shop' },
    protocol: 'tcp',
    verdict: 'allowed',
    reason: 'allowed-by-policy',
    mtls: true,
    bytesSent: tag,
    bytesReceived: 0,
    durationMs: 1,
    ...f,
  };
}

describe('collector flow API', () => {
  const suiteDirs = new TempDirs();
  const suite = new Stack();
  const stack = new Stack();
  let template: CaTemplate;
  before(() => {
    template = new CaTemplate(suiteDirs);
  });
  after(async () => {
    await suite.unwind();
    suiteDirs.cleanup();
  });
  afterEach(() => stack.unwind());

  describe('queries, stats and auth (a known set of flows sent by two agents)', () => {
    let logs: LogCapture;
    let col: RunningCollector;
    let data: string;
    let dirA: string;
    let admin: ApiCredentials;
    const known = knownFlows();

    before(async () => {
      logs = new LogCapture();
      data = template.dataDir(suiteDirs);
      col = await collector(suite, { dataDir: data, log: logs.logger });
      admin = { token: col.adminToken };
      let dirB: string;
      [dirA, dirB] = await Promise.all([joinedNodeDir(suiteDirs, col, data, 'node-a'), joinedNodeDir(suiteDirs, col, data, 'node-b')]);
      const [a, b] = await Promise.all([FlowSession.open(suite, col, dirA, 'node-a'), FlowSession.open(suite, col, dirB, 'node-b')]);
      assert.equal((await a.send({ session: 'agent-1', seq: 1, lost: 2, flows: known.a })).type, 'flows-ack');
      assert.equal((await b.send({ session: 'agent-1', seq: 1, lost: 0, flows: known.b })).type, 'flows-ack');
    });

    describe('GET /v1/flows', () => {
      for (const [what, filters, tags] of FILTER_CASES) {
        it(`narrows by ${what}`, async () => {
          const res = await apiGet(col, flowsPath(filters), admin);
          assert.equal(res.status, 200, res.text);
          assert.match(String(res.headers['content-type']), /^application\/json/);
          const body = JSON.parse(res.text) as FlowsResponse;
          assert.deepEqual(tagsOf(body), tags);
          assert.equal(body.count, tags.length);
        });
      }

      it('answers each flow as the agent sent it, with a numeric id and its origin (session/batch/index)', async () => {
        const body = JSON.parse((await apiGet(col, flowsPath({ node: 'node-a' }), admin)).text) as FlowsResponse;
        for (const f of body.flows) {
          const { id, origin, ...record } = f;
          assert.ok(Number.isSafeInteger(id) && id > 0);
          assert.match(origin ?? '', /^[A-Za-z0-9._-]+\/\d+\/\d+$/);
          assert.deepEqual(record, known.a.find((k) => k.bytesSent === f.bytesSent));
        }
      });

      const bad: Array<[string, string]> = [
        ['verdict=maybe', 'verdict'],
        ['protocol=sctp', 'protocol'],
        ['direction=up', 'direction'],
        ['since=yesterday', 'since'],
        ['until=-1', 'until'],
        ['limit=-5', 'limit'],
        ['limit=lots', 'limit'],
        ['colour=red', 'colour'],
      ];
      for (const [query, param] of bad) {
        it(`answers ${query} with 400 and one line naming ${param}`, async () => {
          const res = await apiGet(col, `/v1/flows?${query}`, admin);
          assert.equal(res.status, 400);
          const body = JSON.parse(res.text) as ErrorResponse;
          assert.equal(body.error.code, 'PALISADE_ERR_INVALID_ARGUMENT');
          assert.ok(body.error.message.includes(param), body.error.message);
          assert.ok(!body.error.message.includes('\n'));
        });
      }
    });

    it('GET /v1/stats counts stored and lost flows per node', async () => {
      const res = await apiGet(col, '/v1/stats', admin);
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.text) as StatsResponse, {
        stored: 8,
        lost: { 'node-a': 2, 'node-b': 0 },
        nodes: { 'node-a': { stored: 7, lost: 2 }, 'node-b': { stored: 1, lost: 0 } },
      });
    });

    it('GET /healthz answers ok', async () => {
      const res = await apiGet(col, '/healthz', admin);
      assert.equal(res.status, 200);
      assert.equal(res.text, 'ok\n');
    });

    it('GET /metrics is Prometheus text counting flows, store size and requests by status', async () => {
      await apiGet(col, '/v1/stats'); // one refused request
      await apiGet(col, '/v1/flows', admin);
      const res = await apiGet(col, '/metrics', admin);
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^text\/plain/);
      const m = parsePrometheus(res.text);
      assert.equal(m.get('palisade_collector_flows_ingested_total'), 8);
      assert.equal(m.get('palisade_collector_flow_store_rows'), 8);
      assert.ok((m.get('palisade_collector_flow_store_bytes') ?? 0) > 0);
      assert.ok((m.get('palisade_collector_api_requests_total{route="/v1/stats",status="401"}') ?? 0) >= 1);
      assert.ok((m.get('palisade_collector_api_requests_total{route="/v1/flows",status="200"}') ?? 0) >= 1);
      assert.match(res.text, /^# TYPE palisade_collector_flows_deleted_total counter$/m);
      assert.match(res.text, /^# TYPE palisade_collector_flows_refused_total counter$/m);
    });

    it('answers an unknown path with 404 and other methods with 405, after authenticating', async () => {
      assert.equal((await apiGet(col, '/v1/nothing', admin)).status, 404);
      assert.equal((await apiGet(col, '/v1/nothing')).status, 401);
      const post = await apiGet(col, '/v1/flows', admin, 'POST');
      assert.equal(post.status, 405);
      assert.equal(post.headers.allow, 'GET, HEAD');
    });

    describe('auth', () => {
      const refusedWith = async (creds: ApiCredentials, reason: RegExp): Promise<void> => {
        const before = logs.lines.length;
        for (const p of ['/v1/flows', '/v1/stats', '/metrics', '/healthz']) {
          const res = await apiGet(col, p, creds);
          assert.equal(res.status, 401, `${p}: ${res.text}`);
          const body = JSON.parse(res.text) as ErrorResponse;
          assert.equal(body.error.code, 'PALISADE_ERR_UNAUTHENTICATED');
          assert.ok(!body.error.message.includes('\n'));
        }
        const warned = logs.lines.slice(before).filter((l) => l.msg === 'api request refused');
        assert.equal(warned.length, 4, 'one warn line per refused request');
        assert.ok(warned.every((l) => l.level === 40 && l.remote === '127.0.0.1' && reason.test(String(l.reason))), JSON.stringify(warned[0]));
      };

      it('refuses a request without credentials (401, one warn line with the remote address)', async () => {
        await refusedWith({}, /no admin token and no client certificate/);
      });

      it('refuses a wrong token and never logs it', async () => {
        const wrong = `pla_${'A'.repeat(43)}`;
        await refusedWith({ token: wrong }, /wrong token/);
        assert.ok(!logs.text.some((l) => l.includes(wrong) || l.includes(col.adminToken)));
      });

      it('refuses a join token: it is not the admin token', async () => {
        await refusedWith({ token: joinToken(data, 'node-a') }, /wrong token/);
      });

      it('refuses a node certificate from another CA', async () => {
        const otherDir = suiteDirs.make('palisade-other-ca-');
        const other = CertificateAuthority.loadOrCreate(otherDir, 'cluster.local');
        const key = await generateKeyPair();
        const certPem = other.issue(key.publicKeyPem, { uri: nodeSpiffeId('cluster.local', 'node-a'), usage: 'node', commonName: 'node-a', ttlSeconds: 3600 });
        await refusedWith({ cert: { certPem, keyPem: key.privateKeyPem } }, /client certificate not trusted/);
      });

      it('refuses a workload certificate from our CA: only node certificates are accepted', async () => {
        const key = await generateKeyPair();
        const certPem = col.ca.issue(key.publicKeyPem, { uri: 'spiffe://cluster.local/ns/shop/sa/web', usage: 'workload', ttlSeconds: 3600 });
        await refusedWith({ cert: { certPem, keyPem: key.privateKeyPem } }, /not a node identity/);
      });

      it('accepts the admin token on every endpoint', async () => {
        for (const p of ['/v1/flows', '/v1/stats', '/metrics', '/healthz']) assert.equal((await apiGet(col, p, admin)).status, 200, p);
      });

      it('accepts a node certificate of the mesh CA', async () => {
        const res = await apiGet(col, flowsPath({ verdict: 'denied' }), { cert: nodeCreds(dirA) });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(tagsOf(JSON.parse(res.text) as FlowsResponse), [4, 2]);
      });

      it('refuses a follow upgrade without credentials before upgrading', async () => {
        const { ws } = follow(col, {}, {}, stack);
        const r = await refusal(ws);
        assert.equal(r.status, 401);
        assert.equal((r.body as unknown as ErrorResponse).error.code, 'PALISADE_ERR_UNAUTHENTICATED');
      });

      it('refuses a follow upgrade with bad filters (400 naming the parameter)', async () => {
        const { ws } = follow(col, { verdict: 'nope' as never }, admin, stack);
        const r = await refusal(ws);
        assert.equal(r.status, 400);
        assert.match((r.body as unknown as ErrorResponse).error.message, /verdict/);
      });

      it('keeps the admin token in <data dir>/admin.token, mode 0600, the same across restarts', async () => {
        const file = path.join(data, 'admin.token');
        assert.equal(fs.statSync(file).mode & 0o777, 0o600);
        assert.match(fs.readFileSync(file, 'utf8'), /^pla_[A-Za-z0-9_-]{43}\n$/);
        assert.equal(fs.readFileSync(file, 'utf8').trim(), col.adminToken);
      });
    });
  });

  describe('flows sent through agent sessions', () => {
    let col: RunningCollector;
    let data: string;
    const agentDirs = new Map<string, string>();
    let admin: ApiCredentials;
    let logs: LogCapture;

    const stats = async (): Promise<StatsResponse> => JSON.parse((await apiGet(col, '/v1/stats', admin)).text) as StatsResponse;
    const session = (node: string): Promise<FlowSession> => FlowSession.open(stack, col, agentDirs.get(node)!, node);

    before(async () => {
      logs = new LogCapture();
      data = template.dataDir(suiteDirs);
      col = await collector(suite, { dataDir: data, log: logs.logger });
      admin = { token: col.adminToken };
      const nodes = ['node-c', 'node-d', 'node-e', 'node-f'];
      const dirs = await Promise.all(nodes.map((n) => joinedNodeDir(suiteDirs, col, data, n)));
      nodes.forEach((n, i) => agentDirs.set(n, dirs[i]));
    });

    it('follow streams a matching flow within 1 s, and not a non-matching one', async () => {
      const { ws, frames } = follow(col, { node: 'node-c', verdict: 'denied' }, admin, stack);
      await opened(ws);
      const s = await session('node-c');
      const sent = Date.now();
      await s.send({ session: 'p', seq: 1, lost: 0, flows: [mark(101, 'node-c'), mark(102, 'node-c', { verdict: 'denied', reason: 'denied-by-policy' })] });
      await s.send({ session: 'p', seq: 2, lost: 0, flows: [mark(103, 'node-c', { verdict: 'denied', reason: 'denied-by-policy' })] });
      await waitFor(() => frames.length >= 2, 2_000, 'two followed flows');
      assert.ok(frames[0].at - sent < 1_000, `first frame after ${frames[0].at - sent} ms`);
      const got = frames.map((f) => JSON.parse(f.text) as FlowsResponse['flows'][number]);
      assert.deepEqual(got.map((f) => f.bytesSent), [102, 103]);
      // what follow sent is what the query answers
      const listed = JSON.parse((await apiGet(col, flowsPath({ node: 'node-c', verdict: 'denied' }), admin)).text) as FlowsResponse;
      assert.deepEqual([...listed.flows].reverse(), got);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(frames.length, 2, 'nothing else arrived');
    });

    it('follow also works for a node certificate and closes with 1001 when the collector stops', async () => {
      const ownData = template.dataDir(suiteDirs);
      const own = await collector(stack, { dataDir: ownData, log: new LogCapture().logger });
      const dir = await joinedNodeDir(suiteDirs, own, ownData, 'node-z');
      const { ws, frames } = follow(own, {}, { cert: nodeCreds(dir) }, stack);
      await opened(ws);
      const s = await FlowSession.open(stack, own, dir, 'node-z');
      await s.send({ session: 'p', seq: 1, lost: 0, flows: [mark(7, 'node-z')] });
      await waitFor(() => frames.length === 1, 2_000, 'the followed flow');
      const end = closed(ws);
      await own.stop();
      assert.equal((await end).code, 1001);
    });

    it('acknowledges a resent batch (also after a reconnect) without storing it twice', async () => {
      const first = await session('node-d');
      const batch = { session: 'agent-7', seq: 1, lost: 0, flows: [mark(1, 'node-d'), mark(2, 'node-d'), mark(3, 'node-d')] };
      assert.equal((await first.send(batch)).type, 'flows-ack');
      assert.equal((await first.send(batch)).type, 'flows-ack');
      first.ws.close();
      await closed(first.ws);
      const second = await session('node-d');
      assert.deepEqual(await second.send(batch), { type: 'flows-ack', session: 'agent-7', seq: 1 });
      assert.equal((await second.send({ session: 'agent-7', seq: 2, lost: 0, flows: [mark(4, 'node-d'), mark(5, 'node-d')] })).type, 'flows-ack');
      assert.equal((await stats()).nodes['node-d'].stored, 5);
      const listed = JSON.parse((await apiGet(col, flowsPath({ node: 'node-d' }), admin)).text) as FlowsResponse;
      assert.deepEqual(tagsOf(listed).sort(), [1, 2, 3, 4, 5]);
      const m = parsePrometheus((await apiGet(col, '/metrics', admin)).text);
      assert.equal(m.get('palisade_collector_flow_batches_duplicate_total'), 2);
    });

    it("refuses a batch naming another node: error, close 4400, nothing stored", async () => {
      const s = await session('node-e');
      const end = closed(s.ws);
      const reply = await s.send({ session: 'p', seq: 1, lost: 0, flows: [mark(1, 'node-e'), mark(2, 'node-c')] });
      assert.equal(reply.type, 'error');
      assert.equal(reply.code, 'PALISADE_ERR_PROTOCOL');
      assert.match(String(reply.message), /flows\[1\] names node "node-c"/);
      assert.equal((await end).code, 4400);
      const st = await stats();
      assert.equal(st.nodes['node-e'], undefined);
      assert.ok(!s.replies.some((r) => r.type === 'flows-ack'));
      const m = parsePrometheus((await apiGet(col, '/metrics', admin)).text);
      assert.equal(m.get('palisade_collector_flows_refused_total{reason="wrong-node"}'), 2);
      assert.ok(logs.lines.some((l) => l.node === 'node-e' && /names node/.test(String(l.reason))));
    });

    it("reports each node's lost flows: the sum over its agent sessions' running totals", async () => {
      const s = await session('node-f');
      await s.send({ session: 'run-1', seq: 1, lost: 3, flows: [mark(1, 'node-f')] });
      await s.send({ session: 'run-1', seq: 2, lost: 5, flows: [] });
      await s.send({ session: 'run-2', seq: 1, lost: 4, flows: [mark(2, 'node-f')] });
      const st = await stats();
      assert.equal(st.lost['node-f'], 9);
      assert.deepEqual(st.nodes['node-f'], { stored: 2, lost: 9 });
    });
  });

  describe('retention', () => {
    it('deletes by rows and by age while the collector runs, visible through the API', async () => {
      const data = template.dataDir(suiteDirs);
      const col = await collector(stack, { dataDir: data, log: new LogCapture().logger, flowMaxRows: 5, flowRetentionMs: 3_600_000, flowRetentionIntervalMs: 100 });
      const admin = { token: col.adminToken };
      const dir = await joinedNodeDir(suiteDirs, col, data, 'node-r');
      const s = await FlowSession.open(stack, col, dir, 'node-r');
      const now = Date.now();
      const at = (ms: number): string => new Date(ms).toISOString();
      // 2 flows 2 h old (beyond the age limit), then 6 recent ones: 8 > 5 rows
      const batch = [1, 2].map((t) => mark(t, 'node-r', { time: at(now - 7_200_000 + t) }));
      for (let t = 3; t <= 8; t++) batch.push(mark(t, 'node-r', { time: at(now - 10_000 + t) }));
      assert.equal((await s.send({ session: 'p', seq: 1, lost: 0, flows: batch })).type, 'flows-ack');
      const list = async (): Promise<number[]> => tagsOf(JSON.parse((await apiGet(col, flowsPath({}), admin)).text) as FlowsResponse);
      let left: number[] = [];
      for (let i = 0; i < 100 && (left = await list()).length !== 5; i++) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(left, [8, 7, 6, 5, 4]);
      const m = parsePrometheus((await apiGet(col, '/metrics', admin)).text);
      assert.equal((m.get('palisade_collector_flows_deleted_total{reason="age"}') ?? 0) + (m.get('palisade_collector_flows_deleted_total{reason="size"}') ?? 0), 3);
      assert.equal(m.get('palisade_collector_flow_store_rows'), 5);
      // a flow older than the retention that arrives late is deleted by age at the next pass
      await s.send({ session: 'p', seq: 2, lost: 0, flows: [mark(9, 'node-r', { time: at(now - 7_200_000) })] });
      for (let i = 0; i < 100 && (left = await list()).length !== 5; i++) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(left, [8, 7, 6, 5, 4]);
      const after = parsePrometheus((await apiGet(col, '/metrics', admin)).text);
      assert.ok((after.get('palisade_collector_flows_deleted_total{reason="age"}') ?? 0) >= 1);
    });
  });
});
