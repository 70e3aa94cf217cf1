import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REEXEC_MARK } from '../../../agent/runtime/v8-flags';

describe('palisade loads a command\'s code only when that command runs', function () {
  const main = path.resolve(__dirname, '../../../cli/main.js');
  const dist = path.resolve(__dirname, '../../..');
  const repo = path.resolve(dist, '..');

  /** The modules a `palisade ARGS` process loaded, relative to the repository. */
  function loaded(args: string[]): string[] {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-lazy-'));
    const probe = path.join(dir, 'probe.js');
    fs.writeFileSync(probe, `process.on('exit', () => require('fs').writeSync(2, '\\nMODULES ' + JSON.stringify(Object.keys(require.cache)) + '\\n'));`);
    try {
      // The mark: no re-exec, so the probe sees the process that runs the command.
      const r = spawnSync(process.execPath, ['--require', probe, main, ...args], { encoding: 'utf8', env: { ...process.env, [REEXEC_MARK]: 'set' } });
      const line = r.stderr.split('\n').find((l) => l.startsWith('MODULES '));
      assert.ok(line, `no module list (stderr: ${r.stderr.slice(0, 300)})`);
      return (JSON.parse(line.slice('MODULES '.length)) as string[]).map((m) => path.relative(repo, m));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  // What the agent never needs: the collector's store and API, SQLite, the demo and the test harness it runs on.
  const notForTheAgent = [/^dist\/collector\/collector\.js$/, /^dist\/collector\/nodes\/node-records\.js$/, /^node_modules\/better-sqlite3\//, /^dist\/cli\/demo\/demo\.js$/, /^dist\/cli\/demo\/traffic\.js$/, /^dist\/test\//];

  it('palisade agent --help declares every command but loads neither the collector\'s code nor the demo\'s', function () {
    const modules = loaded(['agent', '--help']);
    assert.ok(modules.includes('dist/cli/commands/agent.js'), 'the agent command is loaded');
    const wrong = modules.filter((m) => notForTheAgent.some((re) => re.test(m)));
    assert.deepEqual(wrong, []);
  });

  it('an agent command loads the agent when it runs; any other command never does (every `palisade` call would pay for it)', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-lazy-run-'));
    try {
      const uninstall = loaded(['agent', 'uninstall', '--node', 'lazy-probe', '--bpffs', path.join(dir, 'bpffs'), '--run-dir', dir]);
      assert.ok(uninstall.includes('dist/agent/agent.js'), 'the agent itself is loaded');
      for (const args of [['--version'], ['policy', 'validate', dir]]) {
        const modules = loaded(args);
        assert.ok(modules.includes('dist/cli/program.js'), `palisade ${args.join(' ')}: the program is loaded`);
        assert.deepEqual(modules.filter((m) => m === 'dist/agent/agent.js'), [], `palisade ${args.join(' ')}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a collector command loads the collector\'s code when it runs', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-lazy-data-'));
    try {
      fs.writeFileSync(path.join(dir, 'ca.crt'), ''); // a data directory as far as `node list` checks
      const modules = loaded(['collector', 'node', 'list', '--data', dir]);
      assert.ok(modules.includes('dist/collector/nodes/node-records.js'), modules.filter((m) => m.startsWith('dist/collector')).join(' '));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
