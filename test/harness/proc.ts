/**
 * Child-process helpers: bounded command execution and the "join cgroup,
 * then enter netns" launcher used for every process the harness starts.
 */
import { ChildProcess, spawn, SpawnOptions, StdioOptions } from 'child_process';
import { scaled } from './time';

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** True when the hard timeout fired and the process was SIGKILLed. */
  timedOut: boolean;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
}

export interface SpawnInOptions {
  /** Merged over process.env. */
  env?: NodeJS.ProcessEnv;
  stdio?: StdioOptions;
  /** Start in a new session, so the process outlives its parent (demo daemons). */
  detached?: boolean;
}

/** Anything a process can be started in: a cgroup dir plus a netns bind-mount path. */
export interface NsTarget {
  netnsPath: string;
  cgroupPath: string;
}

export const DEFAULT_EXEC_TIMEOUT_MS = 10_000;
/** How long to wait for stdio to drain after the process itself has exited. */
const EXIT_GRACE_MS = 250;

/**
 * The launcher joins the cgroup *before* entering the namespace (so the process and
 * everything it forks is accounted to the cgroup from its first instruction), then
 * execs nsenter. `ip netns exec` is deliberately not used: it remounts /sys, which
 * hides /sys/fs/cgroup and /sys/fs/bpf from the child.
 *   $0 = cgroup dir, $1 = netns path, $2.. = command and its arguments
 */
const LAUNCHER = 'echo $$ > "$0/cgroup.procs" && ns="$1" && shift && exec nsenter --net="$ns" -- "$@"';

export function launcherArgs(target: NsTarget, cmd: string, args: readonly string[]): string[] {
  return ['-c', LAUNCHER, target.cgroupPath, target.netnsPath, cmd, ...args];
}

export function spawnIn(target: NsTarget, cmd: string, args: readonly string[], opts: SpawnInOptions = {}): ChildProcess {
  const spawnOpts: SpawnOptions = {
    env: { ...process.env, ...opts.env },
    stdio: opts.stdio ?? ['pipe', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  };
  return spawn('sh', launcherArgs(target, cmd, args), spawnOpts);
}

/** Collect output of an already-spawned child, SIGKILLing it when the hard timeout fires. */
export function collect(child: ChildProcess, opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = scaled(opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS);
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      spawnError = err;
    });
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const finish = (code: number | null, signal: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      if (spawnError) stderr += `${stderr ? '\n' : ''}spawn error: ${spawnError.message}`;
      resolve({ code, signal, stdout, stderr, timedOut });
    };
    child.on('close', finish);
    // A surviving grandchild may hold stdout/stderr open; don't let it stall us past the exit.
    // The grace ends after one more poll of the event loop (setImmediate runs after it): on a
    // loaded machine the timer can fall due in the same turn as the child's last output, and
    // timers run before I/O, so destroying at once would drop output that had already arrived.
    child.on('exit', (code, signal) => {
      graceTimer = setTimeout(() => {
        setImmediate(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          finish(code, signal);
        });
      }, EXIT_GRACE_MS);
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // child may exit before reading its input
      if (opts.input !== undefined) child.stdin.end(opts.input);
      else child.stdin.end();
    }
  });
}

/** Run a command in the current namespaces with a hard timeout. Never rejects. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  return collect(child, opts);
}

/** Like run() but throws a descriptive Error unless the command exited 0. */
export async function runOk(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
    throw new Error(`${cmd} ${args.join(' ')} failed (${why}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}
