/** Drive the `palisade` command in-process (createProgram/run) with captured output. */
import type { CliDeps } from '../../cli/deps';
import { run } from '../../cli/program';
import { silentLogger } from '../../common/log';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run argv; long-running commands wait forever unless `waitForStop` is given. */
export async function runCli(argv: string[], deps: Partial<CliDeps> = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    logger: () => silentLogger(),
    waitForStop: () => new Promise<string>(() => undefined),
    ...deps,
  });
  return { code, stdout, stderr };
}
