/** `palisade demo` as a newcomer uses it: up, exec curl across nodes, status, down. */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cliPath, listNetnsSync, requirePrivileges, tempDir, waitFor } from '../../harness';

function palisade(args: string[], timeoutMs = 90_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath(), ...args], { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('palisade demo', function () {
  this.timeout(120_000);
  let dir: string;

  before(function () {
    requirePrivileges();
    dir = tempDir('demo');
  });

  after(async function () {
    if (dir) {
      await palisade(['demo', 'down', '--state-dir', path.join(dir, 'state')]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('comes up, answers curl from client to web-2 across nodes, lists pods, and goes down leaving nothing', async function () {
    const state = path.join(dir, 'state');
    const up = await palisade(['demo', 'up', '--state-dir', state]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /Try:/);
    assert.match(up.stdout, /^ {2}palisade dashboard +# the service map in your browser/m, 'the closing hint names the dashboard');

    const status = await palisade(['demo', 'status', '--state-dir', state, '-o', 'json']);
    assert.equal(status.code, 0, status.stderr);
    const st = JSON.parse(status.stdout) as { pods: Array<{ name: string; node: string; ip: string; identity: string }> };
    const web2 = st.pods.find((p) => p.name === 'web-2');
    assert.ok(web2);
    assert.equal(web2.node, 'node-2');
    assert.equal(web2.identity, 'spiffe://cluster.local/ns/default/sa/web');
    assert.deepEqual(st.pods.map((p) => p.name).sort(), ['client', 'web-1', 'web-2']);
    assert.equal((st as unknown as { ext: { ip: string; names: string[] } }).ext.ip, '172.31.0.100', 'the ext host outside the mesh is listed');

    const curl = await palisade(['demo', 'exec', '--state-dir', state, 'client', '--', 'curl', '-s', '-m', '5', `http://${web2.ip}:8080/`]);
    assert.equal(curl.code, 0, curl.stderr);
    assert.equal(curl.stdout, 'hello from web-2\n');
    const agentLog = path.join(state, 'logs', 'agent-node-1.log');
    await waitFor(() => /"event":"flow".*"direction":"outbound".*"mtls":true/.test(fs.readFileSync(agentLog, 'utf8')) || undefined, 5000, {
      what: 'the agent to log the connection as HBONE with mTLS',
    });

    const bad = await palisade(['demo', 'exec', '--state-dir', state, 'nope', '--', 'true']);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);

    const down = await palisade(['demo', 'down', '--state-dir', state]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(listNetnsSync().filter((n) => n.startsWith('palisade-demo')), []);
    assert.equal(fs.existsSync('/sys/fs/bpf/palisade/node-1'), false);
    assert.equal(fs.existsSync(state), false);
  });
});
