/**
 * The suite runs on the Node.js LTS pinned in .node-version (the Makefile installs it into .tools/
 * and puts it first on PATH for every target), whatever `node` the machine has.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../../../..');
const PINNED = fs.readFileSync(path.join(REPO, '.node-version'), 'utf8').trim();

describe('runtime', () => {
  it('runs the tests on the pinned Node.js LTS', () => {
    assert.equal(process.version, `v${PINNED}`, 'run the suite through `make test`, which installs and uses the pinned Node');
  });

  it('finds the pinned Node first on PATH, so spawned `node` processes run on it too', () => {
    const out = execFileSync('node', ['--version'], { encoding: 'utf8' }).trim();
    assert.equal(out, `v${PINNED}`);
  });

  it('declares the pinned version in package.json engines', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } };
    const [major] = PINNED.split('.');
    assert.match(pkg.engines.node, new RegExp(`^>=${PINNED.replace(/\./g, '\\.')} <${Number(major) + 1}$`));
  });
});
