/** Bounded polling helpers. */
import { collect, NsTarget, spawnIn } from './proc';
import { scaled } from './time';

/** Poll `fn` until it returns a truthy value (returned) or the timeout expires (throws). Exceptions count as "not yet". */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  opts: { intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + scaled(timeoutMs);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${scaled(timeoutMs)} ms waiting for ${opts.what ?? 'condition'}${why}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

// Runs inside the target netns; retries a TCP connect every 50 ms until the deadline.
const PROBE = `
const net = require('net');
const [host, port, deadline] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
function attempt() {
  let done = false;
  const s = net.connect({ host, port });
  const finish = (ok) => {
    if (done) return;
    done = true;
    clearTimeout(t);
    s.destroy();
    if (ok) process.exit(0);
    if (Date.now() >= deadline) process.exit(1);
    setTimeout(attempt, 50);
  };
  const t = setTimeout(() => finish(false), 500);
  s.once('connect', () => finish(true));
  s.once('error', () => finish(false));
}
attempt();
`;

/**
 * Wait until a TCP connect to ip:port from inside `target`'s netns succeeds.
 * One short-lived node process does the polling; it is SIGKILLed if it overruns.
 * Note: each successful probe is an accepted (and immediately closed) connection.
 */
export async function waitForPort(target: NsTarget, ip: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + scaled(timeoutMs);
  const child = spawnIn(target, process.execPath, ['-e', PROBE, ip, String(port), String(deadline)]);
  const r = await collect(child, { timeoutMs: timeoutMs + 2000 });
  if (r.code !== 0) {
    throw new Error(`waitForPort ${ip}:${port} from ${target.netnsPath}: not reachable within ${scaled(timeoutMs)} ms ${r.stderr.trim()}`.trim());
  }
}
