/**
 * The audit log on a real SQLite file in a temp dir: appends, queries, and verify against a
 * second better-sqlite3 connection that edits, deletes, swaps and forges rows the way someone
 * with write access to audit.db (but not to audit.key) could.
 */
import { strict as assert } from 'node:assert';
import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { AuditLog, CanonicalData, canonicalJson, GENESIS_HASH, MAX_AUDIT_PROBLEMS } from '../../../collector/audit/audit-log';
import type { AuditVerifyResponse } from '../../../common/control-api';
import { PalisadeError } from '../../../common/errors';
import { silentLogger } from '../../../common/log';

const T0 = Date.parse('2024-05-01T12:00:00Z');

/** A log in a fresh dir with `n` records, one minute apart (every third a denied-flows record). */
function seeded(dir: string, n: number, log = silentLogger()): AuditLog {
  let t = T0;
  const audit = AuditLog.open({ dataDir: dir, log, now: () => t });
  for (let i = 1; i <= n; i++) {
    t = T0 + i * 60_000;
    if (i % 3 === 0) audit.append('denied-flows', 'collector', { total: i, dropped: 0, groups: [{ source: 'default/a', destination: 'default/b', reason: 'denied-by-policy', count: i }] });
    else audit.append('policy-change', 'admin', { version: i, action: 'apply', changes: [{ op: 'create', kind: 'EgressPolicy', namespace: 'default', name: `p${i}` }] });
  }
  return audit;
}

/** Run SQL on audit.db through another connection, as an intruder would. */
function tamper(dir: string, ...sql: string[]): void {
  const db = new Database(path.join(dir, 'audit.db'));
  try {
    for (const s of sql) db.exec(s);
  } finally {
    db.close();
  }
}

/** A logger and the text it wrote. */
function capturedLog(level: string): { log: pino.Logger; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => void (lines.push(c.toString()), cb()) });
  return { log: pino({ level }, sink), text: () => lines.join('') };
}

const problemsOf = (r: AuditVerifyResponse): Array<[number, string]> => r.problems.map((p) => [p.seq, p.problem]);

/** verify fails with exactly these problems (and this head, when given). */
function expectProblems(audit: AuditLog, problems: Array<[number, string]>, head?: number): void {
  const r = audit.verify();
  assert.deepEqual(problemsOf(r), problems);
  assert.equal(r.ok, false);
  if (head !== undefined) assert.equal(r.head, head);
}

describe('AuditLog', () => {
  const dirs: string[] = [];
  const logs: AuditLog[] = [];
  const tempDir = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-audit-'));
    dirs.push(d);
    return d;
  };
  const keep = (a: AuditLog): AuditLog => (logs.push(a), a);
  afterEach(() => {
    for (const a of logs.splice(0)) a.close();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  describe('files and chain', () => {
    it('creates audit.db, audit.key (32 bytes, hex) and audit.head, all 0600, and verifies an empty log', () => {
      const dir = tempDir();
      const audit = keep(AuditLog.open({ dataDir: dir, log: silentLogger() }));
      for (const f of ['audit.db', 'audit.key', 'audit.head']) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
      assert.match(fs.readFileSync(path.join(dir, 'audit.key'), 'utf8'), /^[0-9a-f]{64}\n$/);
      assert.equal(fs.readFileSync(path.join(dir, 'audit.head'), 'utf8'), `0 ${GENESIS_HASH}\n`);
      assert.deepEqual(audit.verify(), { ok: true, records: 0, head: 0, problems: [] });
    });

    it('chains each record to the previous one with HMAC-SHA256(key, canonical JSON) and moves the head', () => {
      const dir = tempDir();
      const audit = keep(seeded(dir, 4));
      const key = Buffer.from(fs.readFileSync(path.join(dir, 'audit.key'), 'utf8').trim(), 'hex');
      const records = audit.list();
      assert.deepEqual(records.map((r) => r.seq), [1, 2, 3, 4]);
      let prev = GENESIS_HASH;
      for (const r of records) {
        assert.equal(r.prev, prev);
        // written out by hand: sorted keys, no white space
        const text = `{"actor":${JSON.stringify(r.actor)},"data":${canonicalJson(r.data)},"kind":"${r.kind}","prev":"${r.prev}","seq":${r.seq},"time":"${r.time}"}`;
        assert.equal(r.hash, createHmac('sha256', key).update(text).digest('hex'));
        prev = r.hash;
      }
      assert.equal(records[1]!.time, '2024-05-01T12:02:00.000Z');
      assert.equal(fs.readFileSync(path.join(dir, 'audit.head'), 'utf8'), `4 ${prev}\n`);
      assert.deepEqual(audit.verify(), { ok: true, records: 4, head: 4, problems: [] });
      assert.equal(audit.count(), 4);
    });

    it('stores data as canonical JSON and returns it as the API shows it', () => {
      const dir = tempDir();
      const audit = keep(AuditLog.open({ dataDir: dir, log: silentLogger() }));
      const r = audit.append('policy-change', 'admin', { z: 1, a: { y: [3, { d: 1, c: 2 }], x: undefined }, '10': 'ten', '9': 'nine' });
      assert.deepEqual(r.data, { z: 1, a: { y: [3, { d: 1, c: 2 }] }, '10': 'ten', '9': 'nine' });
      const db = new Database(path.join(dir, 'audit.db'), { readonly: true });
      const stored = (db.prepare('SELECT data FROM audit WHERE seq = 1').get() as { data: string }).data;
      db.close();
      assert.equal(stored, '{"10":"ten","9":"nine","a":{"y":[3,{"c":2,"d":1}]},"z":1}');
      assert.deepEqual(audit.list(), [r]);
    });

    it('reopening an existing log continues the chain', () => {
      const dir = tempDir();
      const first = seeded(dir, 3);
      const last = first.list().at(-1)!;
      first.close();
      const again = keep(AuditLog.open({ dataDir: dir, log: silentLogger() }));
      const next = again.append('policy-change', 'admin', { version: 4 });
      assert.equal(next.seq, 4);
      assert.equal(next.prev, last.hash);
      assert.deepEqual(again.verify(), { ok: true, records: 4, head: 4, problems: [] });
    });

    it('appendAnchored moves audit.head off the event loop: the head names the record once it resolves, and the chain is the same', async () => {
      const dir = tempDir();
      const audit = keep(seeded(dir, 2));
      const headText = (): string => fs.readFileSync(path.join(dir, 'audit.head'), 'utf8');
      const big = { version: 3, action: 'apply', changes: Array.from({ length: 1000 }, (_, i) => ({ op: 'create', kind: 'AuthorizationPolicy', namespace: 'shop', name: `allow-${i}` })) };
      const pending = audit.appendAnchored('policy-change', 'admin', big);
      // the record is committed at once; while the head is being written, verify counts it as anchored
      assert.equal(audit.count(), 3);
      assert.deepEqual(audit.verify(), { ok: true, records: 3, head: 3, problems: [] });
      // an append meanwhile waits for that write and is written right after it, never before
      audit.append('denied-flows', 'collector', { total: 1, dropped: 0, groups: [] });
      const record = await pending;
      assert.equal(record.seq, 3);
      await audit.appendAnchored('policy-change', 'admin', { version: 4, action: 'apply', changes: [] });
      const last = audit.list().at(-1)!;
      assert.equal(last.seq, 5);
      assert.equal(headText(), `5 ${last.hash}\n`);
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
      assert.deepEqual(audit.verify(), { ok: true, records: 5, head: 5, problems: [] });
      // the same chain as `append` writes: a reopened log verifies it
      audit.close();
      assert.deepEqual(keep(AuditLog.open({ dataDir: dir, log: silentLogger() })).verify(), { ok: true, records: 5, head: 5, problems: [] });
    });

    it('close while audit.head is being written off the loop leaves it naming the last record', async () => {
      const dir = tempDir();
      const audit = seeded(dir, 1);
      const pending = audit.appendAnchored('policy-change', 'admin', { version: 2, action: 'apply', changes: [] });
      audit.close();
      await pending;
      const reopened = keep(AuditLog.open({ dataDir: dir, log: silentLogger() }));
      assert.equal(fs.readFileSync(path.join(dir, 'audit.head'), 'utf8'), `2 ${reopened.list().at(-1)!.hash}\n`);
      assert.deepEqual(reopened.verify(), { ok: true, records: 2, head: 2, problems: [] });
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
    });

    it('refuses invalid kinds, actors and data', () => {
      const audit = keep(AuditLog.open({ dataDir: tempDir(), log: silentLogger() }));
      assert.throws(() => audit.append('other' as never, 'admin', {}), { code: 'PALISADE_ERR_INTERNAL' });
      assert.throws(() => audit.append('policy-change', 'two words', {}), { code: 'PALISADE_ERR_INTERNAL' });
      assert.throws(() => audit.append('policy-change', 'admin', [] as never), { code: 'PALISADE_ERR_INTERNAL' });
      assert.equal(audit.count(), 0);
    });

    it('logs no key and no record content', () => {
      const captured = capturedLog('trace');
      const dir = tempDir();
      const audit = keep(seeded(dir, 3, captured.log));
      audit.append('policy-change', 'admin', { secretish: 'manifest-content-xyz' });
      audit.verify();
      const text = captured.text();
      assert.ok(text.includes('audit record appended'), 'appends are logged');
      assert.ok(!text.includes(fs.readFileSync(path.join(dir, 'audit.key'), 'utf8').trim()), 'the key is not logged');
      assert.ok(!text.includes('manifest-content-xyz'), 'data is not logged');
      for (const r of audit.list()) assert.ok(!text.includes(r.hash), 'hashes are not logged');
    });
  });

  describe('CanonicalData (a big record made canonical in slices, then appended)', () => {
    const table: Array<[string, Record<string, unknown>]> = [
      ['a policy change of 3,000 policies', { version: 3, action: 'apply', changes: Array.from({ length: 3000 }, (_, i) => ({ op: 'update', kind: 'AuthorizationPolicy', namespace: 'shop', name: `p-${i} ünï "q"` })) }],
      ['members left out when undefined, lists holding undefined, nested objects in any key order', { z: undefined, b: [undefined, null, { y: 1, a: [2, undefined] }], a: { d: 1, c: { f: undefined, e: 'x' } }, f: () => 1 }],
      ['no lists at all', { version: 1, action: 'delete' }],
    ];
    for (const [what, data] of table) {
      it(`${what}: the text canonicalJson makes, and the same record as append`, async () => {
        const prepared = await CanonicalData.of(data, 0);
        assert.equal(prepared.text, canonicalJson(data));
        const [a, b] = [tempDir(), tempDir()];
        const now = (): number => T0;
        const byAppend = keep(AuditLog.open({ dataDir: a, log: silentLogger(), now }));
        const bySlices = keep(AuditLog.open({ dataDir: b, log: silentLogger(), now }));
        fs.copyFileSync(path.join(a, 'audit.key'), path.join(b, 'audit.key')); // the same key: the same hashes
        bySlices.close();
        const again = keep(AuditLog.open({ dataDir: b, log: silentLogger(), now }));
        byAppend.append('policy-change', 'admin', data);
        await again.appendSynced('policy-change', 'admin', prepared);
        const [x, y] = [byAppend.list().at(-1)!, again.list().at(-1)!];
        assert.deepEqual(y, x);
        assert.deepEqual(again.verify(), { ok: true, records: 1, head: 1, problems: [] });
      });
    }
  });

  describe('list', () => {
    it('returns the newest `limit` records oldest first, filtered by kind and since', () => {
      const audit = keep(seeded(tempDir(), 10));
      assert.deepEqual(audit.list().map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.deepEqual(audit.list({ limit: 3 }).map((r) => r.seq), [8, 9, 10]);
      assert.deepEqual(audit.list({ kind: 'denied-flows' }).map((r) => r.seq), [3, 6, 9]);
      assert.deepEqual(audit.list({ kind: 'policy-change', limit: 2 }).map((r) => r.seq), [8, 10]);
      assert.deepEqual(audit.list({ since: T0 + 7 * 60_000 }).map((r) => r.seq), [7, 8, 9, 10]);
      assert.deepEqual(audit.list({ since: T0 + 7 * 60_000 + 1, kind: 'denied-flows' }).map((r) => r.seq), [9]);
      assert.equal(audit.list({ limit: 1_000_000 }).length, 10, 'a limit above the maximum is clamped');
    });

    it('refuses bad query values with PALISADE_ERR_INVALID_ARGUMENT', () => {
      const audit = keep(seeded(tempDir(), 1));
      for (const q of [{ limit: 0 }, { limit: 2.5 }, { limit: -1 }, { since: -1 }, { since: Number.NaN }, { since: 1e20 }, { kind: 'x' as never }]) {
        assert.throws(() => audit.list(q), { code: 'PALISADE_ERR_INVALID_ARGUMENT' }, JSON.stringify(q));
      }
    });

    it('shows a row with unreadable data instead of failing', () => {
      const dir = tempDir();
      const audit = keep(seeded(dir, 2));
      tamper(dir, "UPDATE audit SET data = 'not json' WHERE seq = 2");
      assert.deepEqual(audit.list()[1]!.data, { unreadable: 'not json' });
    });
  });

  describe('verify after tampering with audit.db', () => {
    let dir = '';
    let audit: AuditLog;
    beforeEach(() => {
      dir = tempDir();
      audit = keep(seeded(dir, 5));
      assert.equal(audit.verify().ok, true);
    });

    const edits: Array<[string, string]> = [
      ['data', `UPDATE audit SET data = replace(data, '"version":2', '"version":20') WHERE seq = 2`],
      ['data (same meaning, other spelling)', `UPDATE audit SET data = ' ' || data WHERE seq = 2`],
      ['time', `UPDATE audit SET time = '2024-05-01T12:02:30.000Z' WHERE seq = 2`],
      ['kind', `UPDATE audit SET kind = 'denied-flows' WHERE seq = 2`],
      ['actor', `UPDATE audit SET actor = 'policy-dir' WHERE seq = 2`],
      ['prev', `UPDATE audit SET prev = '${'1'.repeat(64)}' WHERE seq = 2`],
      ['hash', `UPDATE audit SET hash = '${'2'.repeat(64)}' WHERE seq = 2`],
      ['time (another type)', `UPDATE audit SET time = 17 WHERE seq = 2`],
    ];
    for (const [what, sql] of edits) {
      it(`names the record whose ${what} was edited`, () => {
        tamper(dir, sql);
        expectProblems(audit, [[2, 'record 2 was modified: its hash does not match its content']], 1);
      });
    }

    /** [what, SQL, problems, verify's head] */
    const removals: Array<[string, string, Array<[number, string]>, number]> = [
      ['a deleted middle record', 'DELETE FROM audit WHERE seq = 3', [[3, 'record 3 is missing (deleted)']], 2],
      ['several deleted records, the first one included', 'DELETE FROM audit WHERE seq IN (1, 3, 4)', [[1, 'record 1 is missing (deleted)'], [3, 'records 3 to 4 are missing (deleted)']], 0],
      ['the last record deleted (through audit.head)', 'DELETE FROM audit WHERE seq = 5', [[5, 'records after 4 are missing (head says 5)']], 4],
      ['every record deleted (through audit.head)', 'DELETE FROM audit', [[1, 'all records are missing (head says 5)']], 0],
    ];
    for (const [what, sql, problems, head] of removals) {
      it(`names ${what}`, () => {
        tamper(dir, sql);
        expectProblems(audit, problems, head);
      });
    }

    it('names both records of a swap (every column but seq exchanged)', () => {
      const cols = '(time, kind, actor, data, prev, hash)';
      tamper(
        dir,
        'CREATE TABLE copy AS SELECT * FROM audit',
        `UPDATE audit SET ${cols} = (SELECT time, kind, actor, data, prev, hash FROM copy WHERE seq = 4) WHERE seq = 2`,
        `UPDATE audit SET ${cols} = (SELECT time, kind, actor, data, prev, hash FROM copy WHERE seq = 2) WHERE seq = 4`,
        'DROP TABLE copy',
      );
      expectProblems(
        audit,
        [
          [2, 'record 2 holds the content of record 4 (records swapped or moved)'],
          [4, 'record 4 holds the content of record 2 (records swapped or moved)'],
        ],
        1,
      );
    });

    it('names both records of a swap of seq numbers, the last record included', () => {
      tamper(dir, 'UPDATE audit SET seq = 100 WHERE seq = 3', 'UPDATE audit SET seq = 3 WHERE seq = 5', 'UPDATE audit SET seq = 5 WHERE seq = 100');
      expectProblems(audit, [
        [3, 'record 3 holds the content of record 5 (records swapped or moved)'],
        [5, 'record 5 holds the content of record 3 (records swapped or moved)'],
      ]);
    });

    it('names a record swapped with a data-only exchange', () => {
      tamper(
        dir,
        'CREATE TABLE copy AS SELECT seq, data FROM audit',
        'UPDATE audit SET data = (SELECT data FROM copy WHERE seq = 1) WHERE seq = 4',
        'UPDATE audit SET data = (SELECT data FROM copy WHERE seq = 4) WHERE seq = 1',
        'DROP TABLE copy',
      );
      assert.deepEqual(problemsOf(audit.verify()).map(([s]) => s), [1, 4]);
    });

    it('names a record moved into the place of a deleted one', () => {
      tamper(dir, 'DELETE FROM audit WHERE seq = 2', 'UPDATE audit SET seq = 2 WHERE seq = 4');
      expectProblems(audit, [
        [2, 'record 2 holds the content of record 4 (records swapped or moved)'],
        [4, 'record 4 is missing (deleted)'],
      ]);
    });

    it('names a forged record appended at the end', () => {
      tamper(dir, `INSERT INTO audit VALUES (6, '2024-05-01T13:00:00.000Z', 'policy-change', 'admin', '{"version":6}', (SELECT hash FROM audit WHERE seq = 5), '${'a'.repeat(64)}')`);
      expectProblems(
        audit,
        [
          [6, 'record 6 was forged: its hash does not verify and audit.head ends at 5'],
          [6, 'records after 5 are not anchored: audit.head says 5, the log ends at 6'],
        ],
        5,
      );
    });

    it('names forged records numbered 0 or below', () => {
      tamper(dir, `INSERT INTO audit SELECT -1, time, kind, actor, data, prev, hash FROM audit WHERE seq = 1`, `INSERT INTO audit SELECT 0, time, kind, actor, data, prev, hash FROM audit WHERE seq = 1`);
      expectProblems(audit, [
        [-1, 'record -1 was forged: its hash does not verify'],
        [0, 'record 0 was forged: its hash does not verify'],
      ]);
    });

    it('names a copy of a genuine record inserted at the end', () => {
      tamper(dir, 'INSERT INTO audit SELECT 6, time, kind, actor, data, prev, hash FROM audit WHERE seq = 2');
      assert.equal(problemsOf(audit.verify())[0]![1], 'record 6 was forged: its hash does not verify and audit.head ends at 5');
    });

    it('names a record forged in place of a deleted one', () => {
      tamper(dir, 'DELETE FROM audit WHERE seq = 3', `INSERT INTO audit VALUES (3, '2024-05-01T12:03:00.000Z', 'policy-change', 'admin', '{}', (SELECT hash FROM audit WHERE seq = 2), '${'b'.repeat(64)}')`);
      expectProblems(audit, [[3, 'record 3 was modified: its hash does not match its content']]);
    });

    it('names a genuine record that does not follow its predecessor (forged with the key)', () => {
      // Only the key holder can make a record that verifies; this is what a fork would look like.
      const key = Buffer.from(fs.readFileSync(path.join(dir, 'audit.key'), 'utf8').trim(), 'hex');
      const time = '2024-05-01T12:03:00.000Z';
      const prev = '3'.repeat(64);
      const text = `{"actor":"admin","data":{},"kind":"policy-change","prev":"${prev}","seq":3,"time":"${time}"}`;
      const hash = createHmac('sha256', key).update(text).digest('hex');
      tamper(dir, `UPDATE audit SET time = '${time}', kind = 'policy-change', actor = 'admin', data = '{}', prev = '${prev}', hash = '${hash}' WHERE seq = 3`);
      expectProblems(audit, [
        [3, 'record 3 does not follow record 2 (reordered or removed)'],
        [4, 'record 4 does not follow record 3 (reordered or removed)'],
      ]);
    });

    it('names a head that was edited or removed', () => {
      fs.writeFileSync(path.join(dir, 'audit.head'), `5 ${'c'.repeat(64)}\n`);
      expectProblems(audit, [[5, 'record 5 is not the one audit.head names (the log was replaced or rolled back)']]);
      fs.writeFileSync(path.join(dir, 'audit.head'), 'five\n');
      expectProblems(audit, [[5, 'audit.head is malformed: the end of the log cannot be checked']]);
      fs.rmSync(path.join(dir, 'audit.head'));
      expectProblems(audit, [[5, 'audit.head is missing: the end of the log cannot be checked']]);
    });

    it('keeps a deleted last record visible when the running log appends after it', () => {
      tamper(dir, 'DELETE FROM audit WHERE seq = 5');
      assert.equal(audit.append('policy-change', 'admin', { version: 6 }).seq, 6);
      expectProblems(audit, [[5, 'record 5 is missing (deleted)']]);
    });

    it('refuses to append over a record written by something else, in one line', () => {
      tamper(dir, `INSERT INTO audit VALUES (6, 't', 'policy-change', 'admin', '{}', 'p', 'h')`);
      assert.throws(() => audit.append('policy-change', 'admin', {}), {
        code: 'PALISADE_ERR_DATA_DIR',
        message: /^cannot append audit record 6: \S+audit\.db already holds a record 6, written by something other than this collector$/,
      });
    });

    it('lists at most MAX_AUDIT_PROBLEMS problems and counts the rest', () => {
      for (let i = 0; i < 150; i++) audit.append('policy-change', 'admin', { version: 6 + i });
      tamper(dir, `UPDATE audit SET actor = 'x'`);
      const r = audit.verify();
      assert.equal(r.problems.length, MAX_AUDIT_PROBLEMS + 1);
      assert.deepEqual(r.problems[0], { seq: 1, problem: 'record 1 was modified: its hash does not match its content' });
      assert.deepEqual(r.problems.at(-1), { seq: 101, problem: '55 more problems from record 101 on, not listed' });
      assert.deepEqual([r.records, r.head], [155, 0]);
    });
  });

  describe('open', () => {
    it('keeps the evidence of a truncated log across a restart, and keeps appending', () => {
      const dir = tempDir();
      seeded(dir, 5).close();
      tamper(dir, 'DELETE FROM audit WHERE seq >= 4');
      const captured = capturedLog('info');
      const audit = keep(AuditLog.open({ dataDir: dir, log: captured.log }));
      assert.match(captured.text(), /audit.head names record 5 but the log ends at 3/);
      expectProblems(audit, [[4, 'records after 3 are missing (head says 5)']]);
      for (let i = 0; i < 3; i++) audit.append('policy-change', 'admin', { version: 10 + i });
      expectProblems(audit, [
        [5, 'record 5 is not the one audit.head names (the log was replaced or rolled back)'],
        [6, 'records after 5 are not anchored: audit.head says 5, the log ends at 6'],
      ]);
    });

    it('moves a head that lags behind records that verify (a crash between commit and head write)', () => {
      const dir = tempDir();
      const first = seeded(dir, 5);
      const fourth = first.list()[3]!;
      first.close();
      fs.writeFileSync(path.join(dir, 'audit.head'), `4 ${fourth.hash}\n`);
      const audit = keep(AuditLog.open({ dataDir: dir, log: silentLogger() }));
      assert.deepEqual(audit.verify(), { ok: true, records: 5, head: 5, problems: [] });
    });

    it('refuses a malformed key in one line', () => {
      const dir = tempDir();
      seeded(dir, 2).close();
      for (const text of ['', 'abc\n', `${'g'.repeat(64)}\n`, `${'a'.repeat(64)}\n\n`, 'a'.repeat(128)]) {
        fs.writeFileSync(path.join(dir, 'audit.key'), text, { mode: 0o600 });
        assert.throws(
          () => AuditLog.open({ dataDir: dir, log: silentLogger() }),
          (err: unknown) => err instanceof PalisadeError && err.code === 'PALISADE_ERR_DATA_DIR' && !err.message.includes('\n') && err.message.includes('audit.key is malformed'),
          JSON.stringify(text),
        );
      }
    });

    it('refuses a key others can read, and a missing key beside records', () => {
      const dir = tempDir();
      seeded(dir, 2).close();
      fs.chmodSync(path.join(dir, 'audit.key'), 0o644);
      assert.throws(() => AuditLog.open({ dataDir: dir, log: silentLogger() }), /audit\.key has mode 0644, refusing an audit key others can read: chmod 600 it$/);
      fs.rmSync(path.join(dir, 'audit.key'));
      assert.throws(() => AuditLog.open({ dataDir: dir, log: silentLogger() }), { code: 'PALISADE_ERR_DATA_DIR', message: /audit\.key is missing but .*audit\.db holds 2 records/ });
    });

    it('throws after close', () => {
      const audit = AuditLog.open({ dataDir: tempDir(), log: silentLogger() });
      audit.close();
      assert.throws(() => audit.append('policy-change', 'admin', {}), { code: 'PALISADE_ERR_INTERNAL' });
      audit.close();
    });
  });
});
