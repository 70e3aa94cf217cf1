/**
 * The layering stays true: no import cycle among the modules of agent/, collector/, common/ and
 * cli/ (type-only imports count: a command importing the program for a type is still a cycle).
 * madge reads the TypeScript sources, so this holds for what the repo says, not what tsc emitted.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../../..');
const LAYERS = ['agent', 'collector', 'common', 'cli'];

/** The part of madge's API (it ships no types) this test uses. */
interface MadgeResult {
  obj(): Record<string, string[]>;
  circular(): string[][];
  warnings(): { skipped: string[] };
}
const madge = require('madge') as (paths: string[], config: Record<string, unknown>) => Promise<MadgeResult>;

function importGraph(dirs: string[]): Promise<MadgeResult> {
  return madge(
    dirs.map((d) => path.join(REPO, d)),
    { baseDir: REPO, fileExtensions: ['ts'], tsConfig: path.join(REPO, 'tsconfig.json') },
  );
}

const show = (cycles: string[][]): string => cycles.map((c) => `  ${[...c, c[0]].join(' > ')}`).join('\n');

describe('layering', function () {
  // madge parses every source file: seconds, more on a busy machine.
  this.timeout(120_000);

  it('finds no import cycle in agent/, collector/, common/ or cli/', async () => {
    const graph = await importGraph(LAYERS);
    const files = Object.keys(graph.obj());
    for (const dir of LAYERS) assert.ok(files.some((f) => f.startsWith(`${dir}/`)), `madge read no file in ${dir}/: ${files.length} files read`);
    // An import madge cannot resolve is an edge it leaves out, and a cycle it could miss.
    assert.deepEqual(graph.warnings().skipped, [], 'imports madge could not resolve');
    const cycles = graph.circular();
    assert.equal(cycles.length, 0, `${cycles.length} import cycle(s); give the shared piece its own module:\n${show(cycles)}`);
  });

  it('would see a cycle made by a type-only import (test/fixtures/import-cycle)', async () => {
    const graph = await importGraph(['test/fixtures/import-cycle']);
    assert.deepEqual(graph.circular(), [['test/fixtures/import-cycle/first.ts', 'test/fixtures/import-cycle/second.ts']]);
  });
});
