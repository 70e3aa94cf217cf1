import { strict as assert } from 'node:assert';
import { parseAllDocuments, visit, type Document } from 'yaml';
import { parsePolicies } from '../../../common/policy';
import { aliasScanProblem, expansionProblem, MAX_YAML_ALIASES } from '../../../common/yaml-limits';

/** `levels` anchors, each a list of `per` aliases of the one before: `per ** levels` nodes from a few KB. */
function aliasBomb(levels: number, per: number): string {
  let s = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: bomb, namespace: default}\nspec:\n  action: ALLOW\n  x0: &a0 ["lol"]\n';
  for (let i = 1; i < levels; i++) s += `  x${i}: &a${i} [${Array(per).fill(`*a${i - 1}`).join(',')}]\n`;
  return `${s}  rules: [{from: [{source: {principals: *a${levels - 1}}}]}]\n`;
}

const compose = (text: string): Document[] => parseAllDocuments(text) as unknown as Document[];

describe('YAML limits', () => {
  describe('aliasScanProblem (before parsing)', () => {
    const aliases = (n: number, sep = ', '): string => `a: &x 1\nb: [${Array(n).fill('*x').join(sep)}]\n`;
    const table: Array<[string, string, boolean]> = [
      ['100 aliases in a flow list', aliases(MAX_YAML_ALIASES), false],
      ['101 aliases in a flow list', aliases(MAX_YAML_ALIASES + 1), true],
      ['101 aliases written without spaces', aliases(MAX_YAML_ALIASES + 1, ','), true],
      ['101 aliases in a block list', `a: &x 1\nb:\n${Array(101).fill('  - *x\n').join('')}`, true],
      ['101 aliases as flow mapping values after ":"', `a: &x 1\nb: {${Array.from({ length: 101 }, (_, i) => `"k${i}":*x`).join(',')}}\n`, true],
      ['wildcards inside quotes are not aliases', `paths: [${Array(500).fill('"/api/*"').join(', ')}]\nhosts: [${Array(500).fill("'*.example.com'").join(', ')}]\n`, false],
      ['multiplication in a comment after a space does count (an upper bound)', `# ${Array(101).fill('2 *x').join(' ')}\n`, true],
    ];
    for (const [what, text, refused] of table) {
      it(`${what}: ${refused ? 'refused' : 'passes'}`, () => assert.equal(aliasScanProblem(text) !== undefined, refused));
    }
    it('never counts fewer aliases than the parser finds', () => {
      for (const text of [aliasBomb(3, 9), aliases(50, ','), 'a: &x [1]\nb: {k:*x, *x : v, l: [*x,*x]}\n', 'a: &x 1\nb:\n- *x\n-  *x\n? *x\n: *x\n']) {
        let parsed = 0;
        for (const doc of compose(text)) visit(doc, { Alias: () => void parsed++ });
        assert.ok(parsed > 0);
        assert.ok(aliasScanProblem(text, parsed - 1) !== undefined, `the scan counts at least ${parsed} in ${JSON.stringify(text.slice(0, 60))}`);
      }
    });
  });

  describe('expansionProblem (after composing)', () => {
    const table: Array<[string, string, RegExp | undefined]> = [
      ['a few aliases of small anchors', 'a: &x {k: v}\nb: [*x, *x, *x]\n', undefined],
      ['aliases that expand to 60,000 nodes', aliasBomb(4, 40), /YAML aliases expand to more than 50000 nodes/],
      ['101 aliases (the scan was not asked)', `a: &x 1\nb: [${Array(101).fill('*x').join(', ')}]\n`, /more than 100 YAML aliases/],
      ['nesting 65 levels deep', `${'['.repeat(65)}1${']'.repeat(65)}\n`, /YAML nested deeper than 64 levels/],
      ['nesting 60 levels deep', `${'['.repeat(60)}1${']'.repeat(60)}\n`, undefined],
    ];
    for (const [what, text, want] of table) {
      it(what, () => {
        const p = expansionProblem(compose(text));
        if (want === undefined) assert.equal(p, undefined);
        else assert.match(p?.message ?? '', want);
      });
    }
  });

  describe('policy files', () => {
    it('refuses the alias bomb of the issue (56 KB, 14,000 aliases) in one line, before parsing, in milliseconds (bug: 26-29 s, then a 500)', () => {
      const bomb = aliasBomb(11, 1400);
      assert.ok(bomb.length > 50_000 && bomb.length < 60_000, `${bomb.length} bytes`);
      parsePolicies(bomb, 'warm-up.yaml');
      const started = process.hrtime.bigint();
      const r = parsePolicies(bomb, 'bomb.yaml');
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      assert.deepEqual(r.problems, ['bomb.yaml:7: more than 100 YAML aliases (*name) in one file (found 14001): write the values out or split the file']);
      assert.ok(ms < 20, `took ${ms.toFixed(1)} ms`);
    });

    it('refuses a smaller bomb that passes the scan, at the composed document, in one line', () => {
      const r = parsePolicies(aliasBomb(4, 30), 'bomb.yaml');
      assert.deepEqual(r.problems, ['bomb.yaml:9: YAML aliases expand to more than 50000 nodes (they repeat too much): write the values out']);
    });

    it('still reads a policy that uses a few anchors', () => {
      const text = [
        'apiVersion: security.istio.io/v1',
        'kind: AuthorizationPolicy',
        'metadata: {name: web, namespace: default}',
        'spec:',
        '  selector: {matchLabels: {app: web}}',
        '  action: ALLOW',
        '  rules:',
        '  - from: &callers [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]',
        '    to: [{operation: {methods: [GET]}}]',
        '  - from: *callers',
        '    to: [{operation: {methods: [HEAD]}}]',
        '',
      ].join('\n');
      const r = parsePolicies(text, 'web.yaml');
      assert.deepEqual(r.problems, []);
      assert.equal(r.policies.length, 1);
    });
  });
});
