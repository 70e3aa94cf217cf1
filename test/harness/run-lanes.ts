/**
 * `make test-lanes`: the whole suite as two mocha processes at once (why, and which files: lanes.ts).
 * The main lane writes to the terminal as it runs; the waiting lane's output is kept and printed
 * whole after the main lane's, under a heading, so neither interleaves with the other. Exits
 * non-zero when either lane failed (the first non-zero status). Arguments are passed to both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mochaOptions, waitingLaneFiles } from './lanes';

const testDir = path.resolve(__dirname, '..');
const repo = path.resolve(testDir, '../..');
const mocha = require.resolve('mocha/bin/mocha.js', { paths: [repo] });
const extra = process.argv.slice(2);
const waiting = waitingLaneFiles(testDir);
for (const f of waiting) if (!fs.existsSync(f)) throw new Error(`waiting lane: ${f} does not exist (run make build)`);

const config = JSON.parse(fs.readFileSync(path.join(repo, '.mocharc.json'), 'utf8')) as Record<string, unknown>;
const color = process.stdout.isTTY ? ['--color'] : [];
const children: ChildProcess[] = [];

function lane(args: string[], keep: boolean): { done: Promise<number>; output: Buffer[] } {
  const output: Buffer[] = [];
  const child = spawn(process.execPath, [mocha, ...args, ...extra], { cwd: repo, stdio: keep ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
  children.push(child);
  if (keep) {
    child.stdout!.on('data', (b: Buffer) => output.push(b));
    child.stderr!.on('data', (b: Buffer) => output.push(b));
  }
  const done = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  return { done, output };
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => children.forEach((c) => c.kill(sig)));

const started = Date.now();
const main = lane([...waiting.flatMap((f) => ['--ignore', path.relative(repo, f)])], false);
const side = lane(['--no-config', ...mochaOptions(config), ...color, ...waiting.map((f) => path.relative(repo, f))], true);

const seconds = (): number => Math.round((Date.now() - started) / 1000);
let sideSeconds = 0;
void side.done.then(() => (sideSeconds = seconds()));

void (async () => {
  const mainCode = await main.done;
  const mainSeconds = seconds();
  const sideCode = await side.done;
  process.stdout.write(`\n──── waiting lane (ran beside the main lane): ${waiting.map((f) => path.relative(testDir, f)).join(', ')} ────\n`);
  process.stdout.write(Buffer.concat(side.output));
  process.stdout.write(
    `\nmain lane: ${mainCode === 0 ? 'passed' : `FAILED (exit ${mainCode})`} in ${mainSeconds} s; ` +
      `waiting lane: ${sideCode === 0 ? 'passed' : `FAILED (exit ${sideCode})`} in ${sideSeconds} s\n`,
  );
  process.exitCode = mainCode !== 0 ? mainCode : sideCode;
})();
