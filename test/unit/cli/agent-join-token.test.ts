/**
 * `palisade agent --join-token-file`: on Kubernetes the file is a node's key of a Secret
 * (deploy/kubernetes), which may be gone once the node has joined. A missing file is an error only
 * while the node has no certificate in --data-dir; checked before anything touches the kernel.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../../harness/cli';

describe('palisade agent --join-token-file', function () {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'join-token-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const agent = (): Promise<{ code: number; stderr: string }> =>
    runCli([
      'agent', '--node', 'n1', '--proxy-address', '10.0.0.1', '--node-address', '10.0.0.2',
      '--collector', 'unix:/nonexistent/collector.sock', '--collector-ca', path.join(dir, 'ca.crt'),
      '--join-token-file', path.join(dir, 'token'), '--data-dir', path.join(dir, 'data'), '--run-dir', path.join(dir, 'run'),
    ]);

  it('refuses a missing token file in one line when the node has not joined', async function () {
    const r = await agent();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^palisade: cannot read join token file \S+\/token: /);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('goes past a missing token file when the node already has its certificate (and stops at the next problem: here the CA)', async function () {
    fs.mkdirSync(path.join(dir, 'data'));
    fs.writeFileSync(path.join(dir, 'data', 'node.crt'), 'placeholder');
    const r = await agent();
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stderr, /join token/);
    assert.match(r.stderr, /ca\.crt/);
  });
});
