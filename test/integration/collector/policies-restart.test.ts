/**
 * The collector's policies across restarts, and policies owned by `--policy-dir`, through the
 * CLI against a real collector in-process.
 */
import { strict as assert } from 'node:assert';
import { LogCapture, collector, Stack, useCollectorSuite } from './helpers';
import { cliFor, egressYaml, json, listPolicies, refused, writeFile } from './policies-fixtures';
import { denyFromYaml } from '../../harness/policies';
import type { PolicyHistoryResponse } from '../../../common/control-api';

describe("the collector's policies: restarts and the policy directory", function () {
  this.timeout(30_000);
  const suite = useCollectorSuite();

  it('a collector restarted on the same data dir keeps policies, ids and version; ids are never reused', async () => {
    const data = suite.dataDir();
    const files = suite.dirs.make('palisade-policy-files-');
    const home = suite.dirs.make('palisade-home-');
    const first = new Stack();
    const col = await collector(first, { dataDir: data, log: new LogCapture().logger });
    let cli = cliFor(col, data, home);
    const ab = writeFile(files, 'ab.yaml', `${denyFromYaml({ name: 'a', app: 'web', serviceAccount: 'x' })}---\n${denyFromYaml({ name: 'b', app: 'web', serviceAccount: 'y' })}`);
    assert.equal((await cli('policy', 'apply', '-f', ab)).code, 0);
    const ids = new Map((await listPolicies(cli)).policies.map((p) => [p.name, p.id]));
    assert.ok(ids.get('b')! > ids.get('a')!);
    const deleted = await cli('policy', 'delete', 'b'); // the highest id so far
    assert.equal(deleted.stdout, 'deleted AuthorizationPolicy default/b\npolicy version 2\n');
    const before = await listPolicies(cli);
    const history = json<PolicyHistoryResponse>(await cli('policy', 'history', '-o', 'json'));
    await first.unwind();

    const again = await collector(suite.stack, { dataDir: data, log: new LogCapture().logger });
    assert.notEqual(again.apiUrl, col.apiUrl, 'a new listener');
    cli = cliFor(again, data, home);
    assert.deepEqual(await listPolicies(cli), before);
    assert.equal(before.version, 2);
    assert.deepEqual(json<PolicyHistoryResponse>(await cli('policy', 'history', '-o', 'json')), history);

    const c = await cli('policy', 'apply', '-f', writeFile(files, 'c.yaml', denyFromYaml({ name: 'c', app: 'web', serviceAccount: 'z' })));
    assert.equal(c.stdout, 'created AuthorizationPolicy default/c\npolicy version 3\n');
    const b = await cli('policy', 'apply', '-f', writeFile(files, 'b.yaml', denyFromYaml({ name: 'b', app: 'web', serviceAccount: 'y' })));
    assert.equal(b.stdout, 'created AuthorizationPolicy default/b\npolicy version 4\n');
    const now = new Map((await listPolicies(cli)).policies.map((p) => [p.name, p.id]));
    assert.equal(now.get('a'), ids.get('a'));
    assert.equal(now.get('c'), ids.get('b')! + 1, 'the deleted id is not given to the next policy');
    assert.equal(now.get('b'), ids.get('b')! + 2, 'a re-created policy gets a new id');
    const verify = await cli('audit', 'verify');
    assert.deepEqual([verify.code, verify.stdout], [0, 'audit log intact: 4 records, head seq 4\n']);
  });

  it('policies from --policy-dir are listed with origin dir and cannot be changed through the API', async () => {
    const data = suite.dataDir();
    const policyDir = suite.dirs.make('palisade-policy-dir-');
    const files = suite.dirs.make('palisade-policy-files-');
    writeFile(policyDir, 'dir-policy.yaml', `${denyFromYaml({ name: 'from-dir', app: 'web', serviceAccount: 'x' })}---\n${egressYaml('dir-egress', 'dir.example.com')}`);
    const col = await collector(suite.stack, { dataDir: data, log: new LogCapture().logger, policyDir });
    const cli = cliFor(col, data, suite.dirs.make('palisade-home-'));
    const listed = await listPolicies(cli);
    assert.equal(listed.version, 1);
    assert.deepEqual(
      listed.policies.map((p) => [p.kind, p.name, p.origin, p.file, p.author]),
      [
        ['AuthorizationPolicy', 'from-dir', 'dir', 'dir-policy.yaml', 'policy-dir'],
        ['EgressPolicy', 'dir-egress', 'dir', 'dir-policy.yaml', 'policy-dir'],
      ],
    );
    const table = await cli('policy', 'list');
    assert.match(table.stdout, /^\d+ +AuthorizationPolicy +default\/from-dir +dir:dir-policy\.yaml +v1 +\S+ +policy-dir$/m);

    const managed = (verb: string): RegExp =>
      new RegExp(`^palisade: AuthorizationPolicy default/from-dir is managed by the collector's policy directory \\(dir-policy\\.yaml\\): ${verb} it there\n$`);
    const del = await cli('policy', 'delete', 'from-dir');
    refused(del, managed('delete'));
    assert.equal(del.code, 1);
    const apply = await cli('policy', 'apply', '-f', writeFile(files, 'same.yaml', denyFromYaml({ name: 'from-dir', app: 'web', serviceAccount: 'other' })));
    refused(apply, managed('change'));
    assert.equal(apply.code, 1);
    const egressId = listed.policies.find((p) => p.name === 'dir-egress')!.id;
    const remove = await cli('egress', 'remove', String(egressId));
    refused(remove, /^palisade: EgressPolicy default\/dir-egress is managed by the collector's policy directory \(dir-policy\.yaml\): remove it there\n$/);
    assert.deepEqual(await listPolicies(cli), listed);
    assert.equal(col.policies.version, 1);
  });
});
