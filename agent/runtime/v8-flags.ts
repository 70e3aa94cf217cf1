/**
 * The V8 settings the agent runs with, and how it gets them: `palisade agent` re-executes itself
 * (same pid, arguments, environment and open files; Node's process.execve) with these flags when
 * it was started without them, so a systemd unit, the DaemonSet, the demo and a shell all run
 * the agent the same way. Chosen by measurement (README "Performance"): a proxy makes short-lived
 * garbage per request and per chunk; a 1 MB semi-space keeps the young generation (and its
 * pauses) small: −20 MB of anonymous memory per agent under the bench, scavenges of a few
 * hundred µs, CPU within the noise.
 *
 * A flag the operator set (on the command line or in NODE_OPTIONS) wins: then nothing is re-run.
 */

/** What the agent adds to node's command line. */
export const AGENT_V8_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/** Set in the re-executed process: it never re-executes again. */
export const REEXEC_MARK = 'PALISADE_AGENT_V8_FLAGS';

export interface ProcessView {
  execPath: string;
  /** node's own flags (process.execArgv) */
  execArgv: readonly string[];
  /** the script and its arguments (process.argv.slice(1)) */
  args: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
}

/** `--max_semi_space_size=4` → `max-semi-space-size` (V8 takes either spelling). */
function flagName(arg: string): string {
  return arg.replace(/^--?/, '').split('=')[0]!.replaceAll('_', '-');
}

/** The command line to re-execute with, or undefined when the flags are there, or set otherwise. */
export function agentReexec(p: ProcessView): { file: string; args: string[]; env: Record<string, string> } | undefined {
  if (p.env[REEXEC_MARK] !== undefined) return undefined;
  const nodeOptions = p.env.NODE_OPTIONS ?? '';
  const given = new Set([...p.execArgv, ...nodeOptions.split(/\s+/)].map(flagName));
  const missing = AGENT_V8_FLAGS.filter((f) => !given.has(flagName(f)));
  if (missing.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.env)) if (v !== undefined) env[k] = v;
  env[REEXEC_MARK] = missing.join(' ');
  return { file: p.execPath, args: [p.execPath, ...p.execArgv, ...missing, ...p.args], env };
}

/**
 * Re-execute the current process with the agent's V8 flags when needed. Returns (doing nothing)
 * when they are set, or when this Node has no process.execve (then the agent runs with V8's
 * defaults: it works, with more memory).
 */
export function execWithAgentFlags(): void {
  const plan = agentReexec({ execPath: process.execPath, execArgv: process.execArgv, args: process.argv.slice(1), env: process.env });
  const execve = (process as { execve?: (file: string, args: string[], env: Record<string, string>) => never }).execve;
  if (plan === undefined || typeof execve !== 'function') return;
  execve(plan.file, plan.args, plan.env);
}
