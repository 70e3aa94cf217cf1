/**
 * The `palisade` command, built by a function so tests drive it in-process with
 * exitOverride() and captured output. Errors from user mistakes are one line on
 * stderr and a non-zero exit, never a stack trace.
 *
 * The only module that imports the commands (commands/*.ts). They never import it or each
 * other: what they share lives in the modules beside this one (deps.ts, options.ts,
 * api-options.ts, api-answers.ts, table.ts, …).
 */
import { Command, CommanderError } from 'commander';
import { isPalisadeError } from '../common/errors';
import { registerAgentCommands } from './commands/agent';
import { registerAuditCommands } from './commands/audit';
import { registerCniCommands } from './commands/cni';
import { registerCollectorCommands } from './commands/collector';
import { registerDashboardCommands } from './commands/dashboard';
import { registerDemoCommands } from './commands/demo';
import { registerEgressCommands } from './commands/egress';
import { registerObserveCommands } from './commands/observe';
import { registerPolicyManageCommands } from './commands/policy-manage';
import { registerPolicyValidateCommand } from './commands/policy-validate';
import { registerStatusCommands } from './commands/status';
import type { CliDeps } from './deps';

export function createProgram(deps: CliDeps): Command {
  const program = new Command('palisade')
    .description('Palisade: a per-node, eBPF-assisted service mesh')
    .version(require('../../package.json').version as string)
    .enablePositionalOptions()
    .configureOutput({
      writeOut: deps.stdout,
      writeErr: deps.stderr,
      // One line, our prefix: `palisade: unknown option '--x' (see palisade agent --help)`.
      // (commander's "Did you mean …?" suggestion joins the same line.)
      outputError: (str, write) => write(`palisade: ${str.trim().replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')} (see --help)\n`),
    });
  registerAgentCommands(program, deps);
  registerAuditCommands(program, deps);
  registerCniCommands(program, deps);
  registerCollectorCommands(program, deps);
  registerDashboardCommands(program, deps);
  registerDemoCommands(program, deps);
  registerObserveCommands(program, deps);
  // One group, two concerns: the collector's policies (through its API) and checking files locally.
  const policy = program.command('policy').description('authorization and egress policies');
  registerPolicyManageCommands(policy, deps);
  registerPolicyValidateCommand(policy, deps);
  registerEgressCommands(program, deps);
  registerStatusCommands(program, deps);
  return program;
}

/** Run argv; returns the exit code instead of exiting, so tests can call it. */
export async function run(argv: string[], deps: CliDeps): Promise<number> {
  const program = createProgram(deps);
  program.exitOverride();
  for (const cmd of program.commands) propagateExitOverride(cmd);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err, deps);
  }
}

function propagateExitOverride(cmd: Command): void {
  cmd.exitOverride();
  for (const c of cmd.commands) propagateExitOverride(c);
}

export function reportError(err: unknown, deps: Pick<CliDeps, 'stderr'>): number {
  const passthrough = (err as { exitCodeOnly?: number })?.exitCodeOnly;
  if (typeof passthrough === 'number') return passthrough; // `demo exec`: the command's own exit code
  if (err instanceof CommanderError) {
    // commander already printed its one-line message; help and version exit 0,
    // usage mistakes exit 2 like every other invalid argument.
    return err.exitCode === 0 ? 0 : 2;
  }
  if (isPalisadeError(err)) {
    deps.stderr(`palisade: ${err.message}\n`);
    return err.exitCode;
  }
  const e = err as Error;
  deps.stderr(`palisade: internal error: ${e?.message ?? String(err)}\n`);
  if (process.env.PALISADE_DEBUG) deps.stderr(`${e?.stack ?? ''}\n`);
  return 70;
}
