import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AGENT_V8_FLAGS, agentReexec, REEXEC_MARK } from '../../../../agent/runtime/v8-flags';

const view = (execArgv: string[] = [], env: Record<string, string> = {}) => ({ execPath: '/usr/bin/node', execArgv, args: ['/opt/palisade/main.js', 'agent', '--node', 'n1'], env });

describe('agent V8 flags', function () {
  describe('agentReexec', function () {
    it('re-runs node with the flags, keeping node\'s own flags, the script, its arguments and the environment', function () {
      const plan = agentReexec(view(['--enable-source-maps'], { PATH: '/bin' }))!;
      assert.deepEqual(plan.args, ['/usr/bin/node', '--enable-source-maps', ...AGENT_V8_FLAGS, '/opt/palisade/main.js', 'agent', '--node', 'n1']);
      assert.equal(plan.env.PATH, '/bin');
      assert.equal(plan.env[REEXEC_MARK], AGENT_V8_FLAGS.join(' '));
    });

    const untouched: Array<[string, ReturnType<typeof view>]> = [
      ['the flags are on the command line', view([...AGENT_V8_FLAGS])],
      ['the operator chose another size', view(['--max-semi-space-size=16'])],
      ['the operator chose one in NODE_OPTIONS', view([], { NODE_OPTIONS: '--max-old-space-size=512 --max_semi_space_size=4' })],
      ['it was re-executed already (never twice)', view([], { [REEXEC_MARK]: 'x' })],
    ];
    for (const [what, v] of untouched) it(`does nothing when ${what}`, () => assert.equal(agentReexec(v), undefined));
  });

  it('palisade agent really runs with them, and palisade agent uninstall is not re-executed', function () {
    const main = path.resolve(__dirname, '../../../../cli/main.js');
    // `agent --help` exits once commander printed help: enough to see which flags the process ran with.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-v8-flags-'));
    const probe = path.join(dir, 'probe.js');
    fs.writeFileSync(probe, `process.on('exit', () => require('fs').writeSync(2, '\\n' + JSON.stringify({ argv: process.execArgv, mark: process.env.${REEXEC_MARK} ?? null }) + '\\n'));`);
    const run = (args: string[]): { argv: string[]; mark: string | null } => {
      const r = spawnSync(process.execPath, ['--require', probe, main, ...args], { encoding: 'utf8', env: { ...process.env, [REEXEC_MARK]: undefined } });
      return JSON.parse(r.stderr.trim().split('\n').at(-1) ?? '{}') as { argv: string[]; mark: string | null };
    };
    try {
      const agent = run(['agent', '--help']);
      assert.ok(AGENT_V8_FLAGS.every((f) => agent.argv.includes(f)), JSON.stringify(agent));
      assert.equal(agent.mark, AGENT_V8_FLAGS.join(' '));
      const uninstall = run(['agent', 'uninstall', '--help']);
      assert.deepEqual(uninstall.argv.filter((f) => AGENT_V8_FLAGS.includes(f)), []);
      assert.equal(uninstall.mark, null);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('palisade agent re-executes before loading the commands: the first process loads only the launcher\'s few modules', function () {
    const main = path.resolve(__dirname, '../../../../cli/main.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-v8-flags-'));
    const probe = path.join(dir, 'probe.js');
    // Counts the modules loaded when the process replaces itself (the re-executed one loads them all).
    fs.writeFileSync(probe, `const x = process.execve; process.execve = function () { require('fs').writeSync(2, 'modules before re-exec: ' + Object.keys(require.cache).length + '\\n'); return x.apply(this, arguments); };`);
    try {
      const r = spawnSync(process.execPath, ['--require', probe, main, 'agent', '--help'], { encoding: 'utf8', env: { ...process.env, [REEXEC_MARK]: undefined } });
      const count = Number(/modules before re-exec: (\d+)/.exec(r.stderr)?.[1]);
      // Loading the commands first (what an import in cli/main.ts does) is ~800 modules, loaded twice per agent start.
      assert.ok(count > 0 && count < 60, `modules loaded before the re-exec: ${count} (stderr: ${r.stderr.slice(0, 200)})`);
      assert.match(r.stdout, /Usage: palisade agent/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
