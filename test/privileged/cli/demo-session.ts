/** What the demo end-to-end suites share: running the real `palisade` binary, the CLI env, pods. */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readState, type DemoState } from '../../../cli/demo/demo';
import { cliPath, tempDir } from '../../harness';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node dist/cli/main.js ARGS` as a separate process; never rejects. */
export function runPalisade(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath(), ...args], { encoding: 'utf8', timeout: opts.timeoutMs ?? 90_000, env: opts.env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** An env where the demo writes the CLI config under `dir` (not the real home) and no PALISADE_* leaks in. */
export function isolatedCliEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: path.join(dir, 'config') };
  delete env.PALISADE_COLLECTOR;
  delete env.PALISADE_TOKEN;
  delete env.PALISADE_CA;
  return env;
}

export function demoPod(state: DemoState, name: string): { netnsPath: string; cgroupPath: string; ip: string } {
  const p = state.topology.pods.find((x) => x.name === name);
  assert.ok(p, name);
  return p;
}

export interface DemoRun {
  dir: string;
  stateDir: string;
  /** The env the CLI runs with: its config file under `dir`, written by `demo up`. */
  env: NodeJS.ProcessEnv;
  state: DemoState;
}

/** `palisade demo up [ARGS]` in a temp dir with an isolated CLI config (commands need no flags after it). */
export async function demoUp(label: string, args: string[] = []): Promise<DemoRun> {
  const dir = tempDir(label);
  const stateDir = path.join(dir, 'state');
  const env = isolatedCliEnv(dir);
  const up = await runPalisade(['demo', 'up', '--state-dir', stateDir, ...args], { env, timeoutMs: 120_000 });
  const state = readState(stateDir);
  if (up.code !== 0 || !state) {
    await demoDown({ dir, stateDir, env }); // whatever half came up
    assert.fail(`palisade demo up failed (${up.code}): ${up.stderr}`);
  }
  return { dir, stateDir, env, state };
}

/** `palisade demo down` and the temp dir gone (keeping the logs in $PALISADE_KEEP_LOGS when set). */
export async function demoDown(run: Pick<DemoRun, 'dir' | 'stateDir' | 'env'>): Promise<void> {
  if (process.env.PALISADE_KEEP_LOGS && fs.existsSync(path.join(run.stateDir, 'logs'))) fs.cpSync(path.join(run.stateDir, 'logs'), process.env.PALISADE_KEEP_LOGS, { recursive: true });
  await runPalisade(['demo', 'down', '--state-dir', run.stateDir], { env: run.env });
  fs.rmSync(run.dir, { recursive: true, force: true });
}
