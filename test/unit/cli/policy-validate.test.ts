import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../../harness/cli';

const FIXTURES = path.resolve(__dirname, '../../../../test/fixtures/policies');
const fixture = (name: string): string => path.join(FIXTURES, name);

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

describe('palisade policy', () => {
  let scratch = '';

  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-policy-cli-'));
  });

  after(() => {
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  describe('validate', () => {
    it('prints "FILE: N policies valid" and one line per policy, and exits 0', async () => {
      const file = fixture('istio-examples.yaml');
      const r = await runCli(['policy', 'validate', '-f', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const out = lines(r.stdout);
      assert.equal(out[0], `${file}: 8 policies valid`);
      assert.equal(out.length, 9);
      assert.match(out[1]!, /^ {2}AuthorizationPolicy +foo\/httpbin +ALLOW +1 rule +\(all workloads in foo\)$/);
      assert.match(out[2]!, /^ {2}AuthorizationPolicy +foo\/httpbin-deny +DENY +1 rule +\(app=httpbin,version=v1 in foo\)$/);
      assert.match(out[3]!, /bar\/allow-nothing +ALLOW +0 rules/);
    });

    it('checks several files together and reports each', async () => {
      const r = await runCli(['policy', 'validate', '-f', fixture('egress.yaml'), '-f', fixture('bookinfo.json')]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout), [
        `${fixture('egress.yaml')}: 1 policy valid`,
        '  EgressPolicy         shop/web-egress         ALLOW  3 rules  (app=web in shop)',
        `${fixture('bookinfo.json')}: 1 policy valid`,
        '  AuthorizationPolicy  default/ratings-viewer  ALLOW  1 rule   (app=ratings in default)',
      ]);
    });

    it('marks root-namespace policies mesh-wide', async () => {
      const file = path.join(scratch, 'root.yaml');
      fs.writeFileSync(file, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x, namespace: mesh}\nspec: {}\n');
      const r = await runCli(['policy', 'validate', '-f', file, '--root-namespace', 'mesh']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /mesh\/x +ALLOW +0 rules +\(all workloads mesh-wide\)/);
    });

    it('prints warnings on stderr and still exits 0', async () => {
      const file = path.join(scratch, 'warn.yaml');
      fs.writeFileSync(file, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x}\nspec:\n  selector: {}\n');
      const r = await runCli(['policy', 'validate', '-f', file]);
      assert.equal(r.code, 0);
      assert.deepEqual(lines(r.stderr), [`${file}:5: warning: AuthorizationPolicy default/x: spec.selector: has no labels, so it selects every workload in the namespace (remove it, or add matchLabels)`]);
      assert.equal(lines(r.stdout)[0], `${file}: 1 policy valid`);
    });

    it('prints every problem, one per line on stderr, and exits 1 for an invalid file', async () => {
      const file = fixture('invalid.yaml');
      const r = await runCli(['policy', 'validate', '-f', file]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      const err = lines(r.stderr);
      assert.equal(err.length, 3);
      assert.ok(err[0]!.startsWith(`${file}:11: AuthorizationPolicy shop/web: `), err[0]);
      assert.ok(err[2]!.startsWith(`${file}:23: EgressPolicy shop/web-egress: `), err[2]);
      assert.ok(!/^\s+at /m.test(r.stderr), 'no stack trace');
    });

    it('rejects a policy defined in two files (exit 1)', async () => {
      const file = fixture('bookinfo.json');
      const copy = path.join(scratch, 'copy.json');
      fs.copyFileSync(file, copy);
      const r = await runCli(['policy', 'validate', '-f', file, '-f', copy]);
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stderr), [`${copy}:1: AuthorizationPolicy default/ratings-viewer: defined again, first at ${file}:1 (remove or rename one)`]);
    });

    it('-o json: {valid, policies, problems, warnings} for a valid file', async () => {
      const r = await runCli(['policy', 'validate', '-f', fixture('egress.yaml'), '-o', 'json']);
      assert.equal(r.code, 0);
      const body = JSON.parse(r.stdout) as { valid: boolean; policies: Record<string, unknown>[]; problems: string[]; warnings: string[] };
      assert.equal(body.valid, true);
      assert.deepEqual(body.problems, []);
      assert.deepEqual(body.warnings, []);
      assert.deepEqual(body.policies, [
        {
          kind: 'EgressPolicy',
          apiVersion: 'palisade.dev/v1',
          namespace: 'shop',
          name: 'web-egress',
          action: 'ALLOW',
          rules: 3,
          selector: { app: 'web' },
          meshWide: false,
          source: fixture('egress.yaml'),
          line: 2,
        },
      ]);
    });

    it('-o json: valid false and every problem for an invalid file, exit 1, nothing on stderr', async () => {
      const r = await runCli(['policy', 'validate', '-f', fixture('invalid.yaml'), '-o', 'json']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, '');
      const body = JSON.parse(r.stdout) as { valid: boolean; policies: unknown[]; problems: string[] };
      assert.equal(body.valid, false);
      assert.deepEqual(body.policies, []);
      assert.equal(body.problems.length, 3);
    });

    const usage: [string, string[], number, RegExp][] = [
      ['a missing file', ['policy', 'validate', '-f', '/nonexistent/p.yaml'], 2, /^palisade: cannot read policy file \/nonexistent\/p\.yaml: ENOENT$/],
      ['a directory', ['policy', 'validate', '-f', '/'], 2, /^palisade: cannot read policy file \/: EISDIR$/],
      ['no -f', ['policy', 'validate'], 2, /-f, --file/],
      ['a bad -o', ['policy', 'validate', '-f', 'x.yaml', '-o', 'yaml'], 2, /^palisade: invalid -o "yaml": use text or json$/],
      ['a bad --root-namespace', ['policy', 'validate', '-f', 'x.yaml', '--root-namespace', 'Bad_NS'], 2, /^palisade: invalid --root-namespace "Bad_NS"/],
    ];
    for (const [what, argv, code, message] of usage) {
      it(`exits ${code} with one line for ${what}`, async () => {
        const r = await runCli(argv);
        assert.equal(r.code, code);
        assert.equal(r.stdout, '');
        const err = lines(r.stderr).filter((l) => !l.startsWith('(run with --help'));
        assert.equal(err.length, 1, r.stderr);
        assert.match(err[0]!, message);
      });
    }
  });
});
