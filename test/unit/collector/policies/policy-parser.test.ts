import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PolicyParser } from '../../../../collector/policies/policy-parser';
import { planChanges, PolicyRepository, type DesiredPolicy } from '../../../../collector/policies/repository';
import { PalisadeError } from '../../../../common/errors';
import { silentLogger } from '../../../../common/log';
import { PolicyInvalidError } from '../../../../common/policy';

const policy = (name: string): string =>
  `apiVersion: palisade.dev/v1\nkind: EgressPolicy\nmetadata: {name: ${name}, namespace: default}\nspec:\n  selector: {matchLabels: {app: client}}\n  allow: [{hosts: [api.example.com], ports: [443]}]\n`;
const many = (n: number): string => Array.from({ length: n }, (_, i) => policy(`p-${i}`)).join('---\n');

describe('PolicyParser', function () {
  this.timeout(60_000);
  const open: PolicyParser[] = [];
  const make = (opts: Partial<ConstructorParameters<typeof PolicyParser>[0]> = {}): PolicyParser => {
    const p = new PolicyParser({ log: silentLogger(), ...opts });
    open.push(p);
    return p;
  };
  afterEach(async () => {
    for (const p of open.splice(0)) await p.close();
  });

  it('reads files in a worker and answers plain data: kind, name, source, line, manifest', async () => {
    const r = await make().parse([{ source: 'a.yaml', text: many(2) }]);
    assert.deepEqual(
      r.policies.map((p) => [p.kind, p.namespace, p.name, p.source, p.line]),
      [
        ['EgressPolicy', 'default', 'p-0', 'a.yaml', 1],
        ['EgressPolicy', 'default', 'p-1', 'a.yaml', 8],
      ],
    );
    assert.deepEqual((r.policies[0]!.manifest.metadata as Record<string, unknown>).name, 'p-0');
  });

  it('answers every problem as PolicyInvalidError, as compiling anywhere else would', async () => {
    await assert.rejects(make().parse([{ source: 'bad.yaml', text: 'kind: EgressPolicy\n' }]), (e: unknown) => e instanceof PolicyInvalidError && /^bad\.yaml:1: /.test(e.problems[0]!));
  });

  it('refuses an alias bomb and an oversized file before any parsing', async () => {
    const bomb = `a: &a [1]\nb: [${Array(5000).fill('*a').join(',')}]\n`;
    const started = Date.now();
    await assert.rejects(make().parse([{ source: 'bomb.yaml', text: bomb }, { source: 'big.yaml', text: 'x'.repeat(1024 * 1024 + 1) }]), (e: unknown) => {
      assert.ok(e instanceof PolicyInvalidError);
      assert.deepEqual(e.problems, [
        'bomb.yaml:2: more than 100 YAML aliases (*name) in one file (found 5000): write the values out or split the file',
        'big.yaml:1: 1048577 bytes is over the 1048576-byte limit for a policy file: split it',
      ]);
      return true;
    });
    assert.ok(Date.now() - started < 100, 'refused at once');
  });

  it('stops a job past its time budget in one line, then reads the next one with a fresh worker', async () => {
    const parser = make({ deadlineMs: 1_000 });
    const big = [1, 2, 3, 4].map((i) => ({ source: `big-${i}.yaml`, text: many(4000) }));
    await assert.rejects(parser.parse(big), (e: unknown) => e instanceof PalisadeError && e.code === 'PALISADE_ERR_INVALID_ARGUMENT' && e.message === 'policy files took longer than 1000 ms to read (the limit): split them or simplify them');
    assert.equal((await parser.parse([{ source: 'a.yaml', text: many(1) }])).policies.length, 1);
  });

  it('refuses jobs past the queue as busy instead of queueing without end', async () => {
    const parser = make({ maxQueued: 1 });
    const results = await Promise.allSettled([0, 1, 2].map(() => parser.parse([{ source: 'a.yaml', text: many(20) }])));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected']);
    const third = (results[2] as PromiseRejectedResult).reason as PalisadeError;
    assert.equal(third.code, 'PALISADE_ERR_COLLECTOR_UNAVAILABLE');
  });

  it('checkpoints the policy store off the event loop: the WAL\'s pages copied into the database', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-checkpoint-'));
    const repo = PolicyRepository.open(dir);
    try {
      const policies = (round: number): DesiredPolicy[] =>
        Array.from({ length: 300 }, (_, i) => ({ kind: 'EgressPolicy', namespace: 'default', name: `p-${i}`, origin: 'api', manifest: { round, i } }));
      repo.commit(planChanges([], policies(1)), 'admin', 'apply');
      repo.commit(planChanges(repo.current(), policies(2)), 'admin', 'apply');
      const r = await make().checkpoint(repo.file);
      assert.ok(r !== undefined && r.busy === 0 && r.log > 0 && r.checkpointed === r.log, JSON.stringify(r));
      assert.equal(repo.current().length, 300, 'the store reads on');
    } finally {
      repo.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a checkpoint that cannot run answers undefined (SQLite\'s own is left to do it)', async () => {
    assert.equal(await make().checkpoint(path.join(os.tmpdir(), 'palisade-no-such-dir', 'policies.db')), undefined);
  });
});
