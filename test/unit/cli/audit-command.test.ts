/**
 * `palisade audit list|verify` against a local HTTPS server with a mesh-CA certificate for
 * palisade-collector. It answers from a real AuditLog (tampered through a second SQLite
 * connection where a case needs it), or with canned answers for the malformed-answer cases.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { AuditLog } from '../../../collector/audit/audit-log';
import { auditSummary, problemLine } from '../../../cli/commands/audit';
import type { CliDeps, TerminalDeps } from '../../../cli/deps';
import { run } from '../../../cli/program';
import type { AuditKind } from '../../../common/control-api';
import { silentLogger } from '../../../common/log';
import { COLLECTOR_SERVERNAME } from '../../../common/mesh-protocol';
import { generateKeyPair } from '../../../common/pki';
import { CertificateAuthority } from '../../../collector/mesh-ca';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

interface Seen {
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
}

const T0 = Date.parse('2024-05-01T12:00:00Z');

describe('palisade audit', function () {
  this.timeout(60_000);
  let root = '';
  let caFile = '';
  let url = '';
  let server: https.Server;
  let audit: AuditLog | undefined;
  let dataDir = '';
  /** path → raw answer body, instead of the audit log's. */
  let canned = new Map<string, string>();
  let seen: Seen[] = [];

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-audit-cli-'));
    const ca = CertificateAuthority.loadOrCreate(path.join(root, 'ca'), 'cluster.local');
    caFile = path.join(root, 'ca', 'ca.crt');
    const key = await generateKeyPair();
    const cert = ca.issue(key.publicKeyPem, { dnsNames: [COLLECTOR_SERVERNAME], commonName: COLLECTOR_SERVERNAME, usage: 'server', ttlSeconds: 3600 });
    server = https.createServer({ key: key.privateKeyPem, cert, minVersion: 'TLSv1.3' }, (req, res) => {
      const u = new URL(req.url ?? '/', 'https://x');
      seen.push({ path: u.pathname, query: u.searchParams, authorization: req.headers.authorization });
      const send = (status: number, body: string): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      const raw = canned.get(u.pathname);
      if (raw !== undefined) return send(200, raw);
      if (u.pathname === '/v1/audit' && audit) {
        const q = u.searchParams;
        const records = audit.list({
          since: q.has('since') ? Number(q.get('since')) : undefined,
          limit: q.has('limit') ? Number(q.get('limit')) : undefined,
          kind: (q.get('kind') ?? undefined) as AuditKind | undefined,
        });
        return send(200, JSON.stringify({ records }));
      }
      if (u.pathname === '/v1/audit/verify' && audit) return send(200, JSON.stringify(audit.verify()));
      return send(404, JSON.stringify({ error: { code: 'PALISADE_ERR_NOT_FOUND', message: `no endpoint ${u.pathname}` } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(root, { recursive: true, force: true });
  });

  beforeEach(() => {
    canned = new Map();
    seen = [];
    dataDir = fs.mkdtempSync(path.join(root, 'data-'));
    let t = T0;
    audit = AuditLog.open({ dataDir, log: silentLogger(), now: () => (t += 60_000) });
    audit.append('policy-change', 'admin', { version: 1, action: 'apply', changes: [{ op: 'create', kind: 'EgressPolicy', namespace: 'default', name: 'x' }] });
    audit.append('denied-flows', 'collector', {
      window: { start: '2024-05-01T12:01:50.000Z', end: '2024-05-01T12:02:00.000Z' },
      groups: [{ source: 'a', destination: 'b', reason: 'r', count: 9 }, { source: 'c', destination: 'd', reason: 'r', count: 3 }],
      total: 12,
      dropped: 0,
    });
    const changes = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ op: 'delete', kind: 'AuthorizationPolicy', namespace: 'prod', name }));
    audit.append('policy-change', 'policy-dir', { version: 2, action: 'policy-dir', changes });
  });
  afterEach(() => {
    audit?.close();
    audit = undefined;
  });

  /** `palisade audit ARGV` with the server's settings in the env and an empty config dir. */
  async function cli(argv: string[]): Promise<Result> {
    const out: Omit<Result, 'code'> = { stdout: '', stderr: '' };
    const env = { XDG_CONFIG_HOME: path.join(root, 'xdg'), HOME: root, PALISADE_COLLECTOR: url, PALISADE_TOKEN: 'tok', PALISADE_CA: caFile };
    const deps: CliDeps & TerminalDeps = {
      stdout: (t) => void (out.stdout += t),
      stderr: (t) => void (out.stderr += t),
      logger: silentLogger,
      waitForStop: () => new Promise<string>(() => undefined),
      env,
    };
    return { code: await run(['audit', ...argv], deps), ...out };
  }

  function tamper(sql: string): void {
    const db = new Database(path.join(dataDir, 'audit.db'));
    db.exec(sql);
    db.close();
  }

  describe('list', () => {
    it('prints SEQ TIME KIND ACTOR SUMMARY, oldest first', async () => {
      const r = await cli(['list']);
      assert.deepEqual([r.code, r.stderr], [0, '']);
      assert.equal(
        r.stdout,
        [
          'SEQ  TIME                      KIND           ACTOR       SUMMARY',
          '1    2024-05-01T12:01:00.000Z  policy-change  admin       v1 apply: create EgressPolicy default/x',
          '2    2024-05-01T12:02:00.000Z  denied-flows   collector   12 denied flows in 2 groups (10s)',
          '3    2024-05-01T12:03:00.000Z  policy-change  policy-dir  v2 policy-dir: delete AuthorizationPolicy prod/a, delete AuthorizationPolicy prod/b, delete AuthorizationPolicy prod/c, +2 more',
          '',
        ].join('\n'),
      );
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.path, '/v1/audit');
      assert.equal(seen[0]!.authorization, 'Bearer tok');
      assert.deepEqual([...seen[0]!.query], [['limit', '100']]);
    });

    it('sends --since, --limit and --kind', async () => {
      const before = Date.now();
      const r = await cli(['list', '--since', '10m', '--limit', '5', '--kind', 'denied-flows']);
      assert.equal(r.code, 0, r.stderr);
      const q = seen[0]!.query;
      assert.deepEqual([q.get('limit'), q.get('kind')], ['5', 'denied-flows']);
      const since = Number(q.get('since'));
      assert.ok(since >= before - 600_000 && since <= Date.now() - 600_000, `since ${since}`);
    });

    it('prints -o json as one array of the records', async () => {
      const r = await cli(['list', '--kind', 'policy-change', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), audit!.list({ kind: 'policy-change' }));
    });

    it('says so on stderr when nothing matches', async () => {
      canned.set('/v1/audit', '{"records":[]}');
      assert.deepEqual(await cli(['list']), { code: 0, stdout: '', stderr: 'no audit records match\n' });
      assert.deepEqual(await cli(['list', '-o', 'json']), { code: 0, stdout: '[]\n', stderr: '' });
    });

    it('makes control characters from the collector visible', async () => {
      const record = { seq: 1, time: 't\u001b[2J', kind: 'policy-change', actor: 'ad\u0007min', data: { version: 1, action: 'apply', changes: [{ op: 'create', kind: 'EgressPolicy', namespace: 'default', name: 'x\u009b31m' }] }, prev: '0', hash: '1' };
      canned.set('/v1/audit', JSON.stringify({ records: [record] }));
      const r = await cli(['list']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(r.stdout), JSON.stringify(r.stdout));
      assert.match(r.stdout, /t\\x1b\[2J +policy-change +ad\\x07min +v1 apply: create EgressPolicy default\/x\\x9b31m\n$/);
    });
  });

  describe('verify', () => {
    it('passes on an untouched log: exit 0', async () => {
      assert.deepEqual(await cli(['verify']), { code: 0, stdout: 'audit log intact: 3 records, head seq 3\n', stderr: '' });
      assert.equal(seen[0]!.path, '/v1/audit/verify');
    });

    it('fails naming an edited record: exit 1', async () => {
      tamper(`UPDATE audit SET actor = 'someone' WHERE seq = 2`);
      assert.deepEqual(await cli(['verify']), {
        code: 1,
        stdout: 'record 2 was modified: its hash does not match its content\n',
        stderr: 'palisade: audit log verification failed: 1 problem, first at record 2\n',
      });
    });

    it('fails naming a deleted last record and a swap', async () => {
      tamper('DELETE FROM audit WHERE seq = 3');
      let r = await cli(['verify']);
      assert.deepEqual([r.code, r.stdout], [1, 'record 3: records after 2 are missing (head says 3)\n']);
      tamper('UPDATE audit SET seq = 9 WHERE seq = 1; UPDATE audit SET seq = 1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 9');
      r = await cli(['verify']);
      assert.equal(r.code, 1);
      assert.equal(
        r.stdout,
        [
          'record 1 holds the content of record 2 (records swapped or moved)',
          'record 2 holds the content of record 1 (records swapped or moved)',
          'record 3: records after 2 are missing (head says 3)',
          '',
        ].join('\n'),
      );
      assert.equal(r.stderr, 'palisade: audit log verification failed: 3 problems, first at record 1\n');
    });

    it('prints -o json and still exits 1 when the log is broken', async () => {
      assert.deepEqual(JSON.parse((await cli(['verify', '-o', 'json'])).stdout), { ok: true, records: 3, head: 3, problems: [] });
      tamper('DELETE FROM audit WHERE seq = 2');
      const r = await cli(['verify', '-o', 'json']);
      assert.equal(r.code, 1);
      assert.deepEqual(JSON.parse(r.stdout), { ok: false, records: 2, head: 1, problems: [{ seq: 2, problem: 'record 2 is missing (deleted)' }] });
      assert.equal(r.stderr, 'palisade: audit log verification failed: 1 problem, first at record 2\n');
    });
  });

  describe('refusals', () => {
    const bad: Array<[string[], string]> = [
      [['list', '--limit', '0'], 'invalid --limit "0": expected a whole number from 1 to 10000'],
      [['list', '--limit', '10001'], 'invalid --limit "10001": expected a whole number from 1 to 10000'],
      [['list', '--limit', 'ten'], 'invalid --limit "ten": expected a whole number from 1 to 10000'],
      [['list', '--limit', '2.5'], 'invalid --limit "2.5": expected a whole number from 1 to 10000'],
      [['list', '--kind', 'policy'], 'invalid --kind "policy": use policy-change, denied-flows or trust-refusal'],
      [['list', '--since', '10 minutes'], 'invalid --since "10 minutes": expected a duration like 30s, 10m, 24h or 30d'],
      [['list', '--since', '0s'], 'invalid --since "0s": must be more than zero'],
      [['list', '-o', 'yaml'], 'invalid -o "yaml": use table or json'],
      [['verify', '-o', 'table'], 'invalid -o "table": use text or json'],
      [['list', '--token', 'a', '--token-file', '/b'], 'give --token or --token-file, not both'],
    ];
    for (const [argv, message] of bad) {
      it(`refuses ${argv.join(' ')} in one line, exit 2, before sending anything`, async () => {
        assert.deepEqual(await cli(argv), { code: 2, stdout: '', stderr: `palisade: ${message}\n` });
        assert.equal(seen.length, 0);
      });
    }

    const answers: Array<[string, string, string, string]> = [
      ['list', '/v1/audit', '{}', 'expected {records}'],
      ['list', '/v1/audit', '{"records":[{"seq":"1"}]}', "a record's seq must be an integer"],
      ['list', '/v1/audit', '{"records":[{"seq":1,"time":"t","kind":"k","actor":"a","prev":"p","hash":"h","data":[]}]}', "a record's data must be an object"],
      ['verify', '/v1/audit/verify', '{"ok":true}', 'expected {ok, records, head, problems}'],
      ['verify', '/v1/audit/verify', '{"ok":true,"records":1,"head":1,"problems":[{"seq":1,"problem":"x"}]}', 'ok disagrees with the problems listed'],
      ['verify', '/v1/audit/verify', '{"ok":false,"records":1,"head":1,"problems":["x"]}', 'a problem must be {seq, problem}'],
    ];
    for (const [cmd, where, body, what] of answers) {
      it(`refuses a malformed answer to ${cmd} (${body.slice(0, 40)}) in one line, exit 1`, async () => {
        canned.set(where, body);
        assert.deepEqual(await cli([cmd]), { code: 1, stdout: '', stderr: `palisade: the collector sent a malformed answer to ${where}: ${what}\n` });
      });
    }

    it('refuses an answer that is not JSON in one line', async () => {
      canned.set('/v1/audit/verify', 'ok');
      assert.deepEqual(await cli(['verify']), { code: 1, stdout: '', stderr: `palisade: the collector at ${url} sent a malformed answer to /v1/audit/verify: the answer is not JSON\n` });
    });

    it('says in one line when the collector has no audit API', async () => {
      const saved = audit;
      audit = undefined;
      const r = await cli(['verify']);
      audit = saved;
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^palisade: the collector at \S+ has no \/v1\/audit\/verify \(404\): is it a Palisade collector with this API\?\n$/);
    });
  });

  it('names the record in every problem line', () => {
    assert.equal(problemLine({ seq: 3, problem: 'record 3 was modified' }), 'record 3 was modified');
    assert.equal(problemLine({ seq: 3, problem: 'records 3 to 5 are missing (deleted)' }), 'records 3 to 5 are missing (deleted)');
    assert.equal(problemLine({ seq: 3, problem: 'record 30 was modified' }), 'record 3: record 30 was modified');
    assert.equal(problemLine({ seq: 7, problem: 'audit.head is\u001b missing' }), 'record 7: audit.head is\\x1b missing');
  });

  describe('auditSummary of policy changes written to the Kubernetes API (Kubernetes mode)', () => {
    const rec = (data: Record<string, unknown>) => ({ seq: 1, time: '2024-05-01T12:00:00.000Z', kind: 'policy-change' as const, actor: 'admin:0123abcd', data, prev: '', hash: '' });
    const changes = [{ op: 'create', kind: 'AuthorizationPolicy', namespace: 'shop', name: 'deny' }];
    it('names the replica it went through', () => {
      assert.equal(auditSummary(rec({ action: 'apply', via: 'kubernetes', replica: 'collector-0', changes })), 'apply via the Kubernetes API at collector-0: create AuthorizationPolicy shop/deny');
    });
    it('and why it failed, when it did', () => {
      assert.equal(auditSummary(rec({ action: 'apply', via: 'kubernetes', replica: 'collector-0', changes, failed: 'conflict: x' })), 'apply via the Kubernetes API at collector-0: create AuthorizationPolicy shop/deny — failed: conflict: x');
    });
    it('a local change keeps its version', () => {
      assert.equal(auditSummary(rec({ version: 3, action: 'apply', changes })), 'v3 apply: create AuthorizationPolicy shop/deny');
    });
  });

  describe('auditSummary of trust refusals', () => {
    const rec = (data: Record<string, unknown>) => ({ seq: 1, time: '2024-05-01T12:00:00.000Z', kind: 'trust-refusal' as const, actor: 'node:node-a', data, prev: '', hash: '' });
    it('names the event and the reason', () => {
      assert.equal(auditSummary(rec({ event: 'join', reason: 'token is for node node-b, not node-a', node: 'node-a' })), 'join refused: token is for node node-b, not node-a');
    });
    it('says how many more were only counted in a window', () => {
      const data = { event: 'summary', window: { start: '2024-05-01T12:00:00.000Z', end: '2024-05-01T12:00:10.000Z' }, recorded: 50, counted: 37, groups: [{}, {}], dropped: 0 };
      assert.equal(auditSummary(rec(data)), '37 more refusals counted in 2 groups (10s)');
    });
  });
});
