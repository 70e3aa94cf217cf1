/**
 * Durable commits with their fsync off the event loop (wal-sync.ts): the audit log and the policy
 * store sync their WAL themselves — at once for the calls that return when stored, in the thread
 * pool for a policy change through the API, which awaits it — on real SQLite files.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { AuditLog } from '../../../collector/audit/audit-log';
import { planChanges, PolicyRepository, type DesiredPolicy } from '../../../collector/policies/repository';
import { WalSync } from '../../../collector/wal-sync';
import { silentLogger } from '../../../common/log';

const policy = (name: string): DesiredPolicy => ({
  kind: 'AuthorizationPolicy',
  namespace: 'shop',
  name,
  origin: 'api',
  manifest: { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' }, spec: {} },
});

describe('WalSync: commits synced by the caller', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-wal-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('later(): calls made while a sync runs share the one after it; a call after that starts another', async () => {
    const file = path.join(dir, 'x.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (v)');
    const sync = new WalSync(file);
    try {
      const first = sync.later();
      const second = sync.later();
      const third = sync.later();
      assert.equal(second, third, 'waiting callers share the next sync');
      assert.notEqual(first, second, 'a sync running may have begun before the caller committed');
      await Promise.all([first, second, third]);
      assert.equal(sync.counts.later, 2);
      await sync.later();
      assert.deepEqual(sync.counts, { now: 0, later: 3 });
      sync.now();
      assert.deepEqual(sync.counts, { now: 1, later: 3 });
    } finally {
      db.close();
    }
  });

  it('a WAL removed by the connection\'s close (checkpointed into the database) leaves nothing to sync', async () => {
    const file = path.join(dir, 'x.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (v)');
    db.close();
    assert.equal(fs.existsSync(`${file}-wal`), false);
    const sync = new WalSync(file);
    sync.now();
    await sync.later();
  });

  it('the policy store and the audit log sync their WAL\'s directory at open: a first change waits only for its file\'s sync', () => {
    const repo = PolicyRepository.open(dir);
    const audit = AuditLog.open({ dataDir: dir, log: silentLogger() });
    try {
      assert.equal(repo.walSync.directorySynced, true);
      assert.equal(audit.walSync.directorySynced, true);
      assert.deepEqual([repo.walSync.counts, audit.walSync.counts], [{ now: 0, later: 0 }, { now: 0, later: 0 }], 'no commit synced yet');
    } finally {
      audit.close();
      repo.close();
    }
  });

  it('a WAL not made yet: its directory is synced by the first sync, not at open', () => {
    const file = path.join(dir, 'y.db');
    const sync = new WalSync(file);
    sync.prime();
    assert.equal(sync.directorySynced, false);
  });

  it('audit log: appendSynced resolves once the record is synced, its `anchored` once audit.head names it', async () => {
    const audit = AuditLog.open({ dataDir: dir, log: silentLogger() });
    try {
      const { record, anchored } = await audit.appendSynced('policy-change', 'admin', { version: 1, action: 'apply', changes: [] });
      assert.deepEqual(audit.walSync.counts, { now: 0, later: 1 });
      assert.equal(record.seq, 1);
      await anchored;
      assert.equal(fs.readFileSync(path.join(dir, 'audit.head'), 'utf8'), `1 ${record.hash}\n`, 'the head names the record');
    } finally {
      audit.close();
    }
  });

  it('audit log: append syncs on the caller\'s thread; appendAnchored (a policy change) off the loop, before it resolves', async () => {
    const audit = AuditLog.open({ dataDir: dir, log: silentLogger() });
    try {
      audit.append('denied-flows', 'collector', { total: 1 });
      assert.deepEqual(audit.walSync.counts, { now: 1, later: 0 });
      const anchored = audit.appendAnchored('policy-change', 'admin', { version: 1, action: 'apply', changes: [] });
      assert.equal(audit.walSync.counts.later, 0, 'nothing synced before the event loop runs');
      const record = await anchored;
      assert.deepEqual(audit.walSync.counts, { now: 1, later: 1 });
      assert.equal(record.seq, 2);
      assert.equal(audit.verify().ok, true);
    } finally {
      audit.close();
    }
  });

  it('policy store: commit syncs on the caller\'s thread; commitSliced off the loop, before it resolves', async () => {
    const repo = PolicyRepository.open(dir);
    try {
      repo.commit(planChanges(repo.current(), [policy('a')]), 'admin', 'apply');
      assert.deepEqual(repo.walSync.counts, { now: 1, later: 0 });
      const { version } = await repo.commitSliced(planChanges(repo.current(), [...repo.current(), policy('b')]), 'admin', 'apply', 4);
      assert.equal(version, 2);
      assert.deepEqual(repo.walSync.counts, { now: 1, later: 1 });
    } finally {
      repo.close();
    }
    const again = PolicyRepository.open(dir);
    try {
      assert.deepEqual(again.current().map((p) => p.name), ['a', 'b']);
    } finally {
      again.close();
    }
  });
});
