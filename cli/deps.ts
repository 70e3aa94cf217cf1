/**
 * What the commands get from the program instead of reaching for the process: output, the
 * logger, the stop signal and (for tests) the environment and whether stdout is a terminal.
 * The program (cli/program.ts) passes one object of these to every command's register function.
 */
import type { Logger } from '../common/log';

export type Env = Readonly<Record<string, string | undefined>>;

export interface CliDeps {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Root logger factory: one root logger per process. */
  logger: (level?: string) => Logger;
  /** Called when a long-running command (agent) wants to wait for a stop signal. */
  waitForStop: () => Promise<string>;
}

/** What a test (or another front end) may set instead of the real process's. */
export interface TerminalDeps {
  env?: Env;
  /** Whether stdout is a terminal (colour); default process.stdout.isTTY. */
  stdoutIsTTY?: boolean;
}

/** A command that calls the collector's API: it reads flags from `env` (default process.env). */
export type ApiDeps = CliDeps & Pick<TerminalDeps, 'env'>;
