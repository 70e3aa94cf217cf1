import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli as runHarnessCli, type CliResult } from '../../harness/cli';

const REPO = path.resolve(__dirname, '../../../..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

/** commander's usage hint, printed after its own one-line error (showHelpAfterError). */
const USAGE_HINT = '(run with --help for usage)';

/**
 * Every case here must fail before the agent touches the kernel. As a second guard,
 * agent runs get a cgroup that does not exist and a private bpffs and run dir, so a
 * regression in validation fails at resolveCgroup instead of attaching anywhere, and
 * `uninstall` could only ever look at an empty scratch bpffs.
 */
let scratch = '';

function guarded(argv: string[]): string[] {
  if (argv[0] !== 'agent') return argv;
  const dirs = ['--bpffs', path.join(scratch, 'bpffs'), '--run-dir', path.join(scratch, 'run')];
  if (argv[1] === 'uninstall') return [...argv, ...dirs];
  return [...argv, '--cgroup', path.join(scratch, 'no-such-cgroup'), ...dirs];
}

function runCli(argv: string[]): Promise<CliResult> {
  return runHarnessCli(guarded(argv));
}

/** The reason lines of stderr: everything but commander's usage hint. */
function reasonLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && l !== USAGE_HINT);
}

function assertOneLineError(r: CliResult, mentions: string | RegExp): string {
  assert.notEqual(r.code, 0, 'exit code');
  assert.ok(!/^\s+at /m.test(r.stderr), `stack trace on stderr:\n${r.stderr}`);
  const lines = reasonLines(r.stderr);
  assert.equal(lines.length, 1, `expected one reason line, got:\n${r.stderr}`);
  const [line] = lines as [string];
  if (typeof mentions === 'string') assert.ok(line.includes(mentions), `${JSON.stringify(line)} does not mention ${mentions}`);
  else assert.match(line, mentions);
  assert.equal(r.stdout, '', 'nothing on stdout');
  return line;
}

describe('program', () => {
  let savedNode: string | undefined;

  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-cli-'));
    // --node defaults to $PALISADE_NODE: keep the environment out of these cases.
    savedNode = process.env.PALISADE_NODE;
    delete process.env.PALISADE_NODE;
  });

  after(() => {
    if (savedNode !== undefined) process.env.PALISADE_NODE = savedNode;
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  describe('run', () => {
    it('prints the package.json version for --version and exits 0', async () => {
      const r = await runCli(['--version']);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `${VERSION}\n`);
      assert.equal(r.stderr, '');
    });

    const usageErrors: [string, string[], string | RegExp][] = [
      ['an unknown command', ['bogus'], 'bogus'],
      ['agent without --node', ['agent'], '--node'],
      ['agent without --proxy-address', ['agent', '--node', 'n1'], '--proxy-address'],
      ['a proxy address that is not IPv4', ['agent', '--node', 'n1', '--proxy-address', '10.0.0'], '10.0.0'],
      ['an IPv6 proxy address', ['agent', '--node', 'n1', '--proxy-address', '::1'], '::1'],
      ['an exclude CIDR of /33', ['agent', '--node', 'n1', '--proxy-address', '10.0.1.1', '--exclude-cidr', '10.0.0.1/33'], '10.0.0.1/33'],
      ['an exclude port of 65536', ['agent', '--node', 'n1', '--proxy-address', '10.0.1.1', '--exclude-port', '65536'], '65536'],
      ['an unknown agent option', ['agent', '--node', 'n1', '--proxy-address', '10.0.1.1', '--proxy', '10.0.1.1'], '--proxy'],
      ['a mistyped option commander has a suggestion for (one line, suggestion included)', ['collector', 'token', 'create', '--dat', '/tmp/x'], /--dat.*Did you mean --data/],
      ['uninstall without --node', ['agent', 'uninstall'], '--node'],
    ];
    for (const [what, argv, mentions] of usageErrors) {
      it(`exits non-zero with one line for ${what}`, async () => {
        assertOneLineError(await runCli(argv), mentions);
      });
    }

    const palisadeErrors: [string, string[], number, string | RegExp][] = [
      [
        'a bad node name (checked before the workloads file)',
        ['agent', '--node', 'Bad Name', '--proxy-address', '10.0.1.1', '--workloads', '/nonexistent.yaml'],
        2,
        /^palisade: invalid node name "Bad Name"/,
      ],
      [
        'a missing workloads file',
        ['agent', '--node', 'n1', '--proxy-address', '10.0.1.1', '--workloads', '/nonexistent.yaml'],
        2,
        /^palisade: .*\/nonexistent\.yaml/,
      ],
      [
        'an invalid workloads file',
        ['agent', '--node', 'n1', '--proxy-address', '10.0.1.1', '--workloads', path.join(REPO, 'test/fixtures/workloads/bad.yaml')],
        2,
        /^palisade: .*\(and \d+ more problems?\)$/,
      ],
      ['uninstall with a bad node name', ['agent', 'uninstall', '--node', '../etc'], 2, /^palisade: invalid node name/],
    ];
    for (const [what, argv, code, mentions] of palisadeErrors) {
      it(`exits ${code} with one "palisade: ..." line for ${what}`, async () => {
        const r = await runCli(argv);
        assertOneLineError(r, mentions);
        assert.equal(r.code, code);
        assert.ok(!r.stderr.includes(USAGE_HINT), 'no usage hint for a PalisadeError');
      });
    }

    it('leaves nothing behind in the guard directories', () => {
      assert.ok(!fs.existsSync(path.join(scratch, 'run')), 'no node lock directory was created');
      assert.ok(!fs.existsSync(path.join(scratch, 'bpffs')), 'no bpffs was mounted');
    });
  });
});
