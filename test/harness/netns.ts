/** Network-namespace naming and iproute2 helpers. Everything runs via `ip -n NS`, never in the host netns. */
import { execFileSync } from 'child_process';
import { run, runOk } from './proc';
import { scaled } from './time';

/** Every netns the harness creates is named `palisade-<pid>-...` so stale runs can be recognised. */
export const NETNS_NAME_RE = /^palisade-(\d+)-/;

export function netnsPath(nsName: string): string {
  return `/var/run/netns/${nsName}`;
}

export async function addNetns(nsName: string): Promise<void> {
  await runOk('ip', ['netns', 'add', nsName]);
  await runOk('ip', ['-n', nsName, 'link', 'set', 'lo', 'up']);
}

export async function delNetns(nsName: string): Promise<void> {
  await run('ip', ['netns', 'del', nsName], { timeoutMs: 5000 });
}

export function delNetnsSync(nsName: string): void {
  try {
    execFileSync('ip', ['netns', 'del', nsName], { stdio: 'ignore', timeout: scaled(5000) });
  } catch {
    /* best effort */
  }
}

/** Run several `ip` commands inside one namespace in a single process (`ip -n NS -batch -`). */
export async function ipBatch(nsName: string, commands: readonly string[]): Promise<void> {
  await runOk('ip', ['-n', nsName, '-batch', '-'], { input: commands.join('\n') + '\n' });
}

export async function sysctlIn(nsName: string, setting: string): Promise<void> {
  // `ip netns exec` is acceptable here: sysctl does not care about the /sys remount.
  await runOk('ip', ['netns', 'exec', nsName, 'sysctl', '-q', '-w', setting]);
}

/** Names of all named network namespaces (first column of `ip netns list`). */
export function listNetnsSync(): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: scaled(5000) });
    return out
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0])
      .filter((n): n is string => !!n);
  } catch {
    return [];
  }
}
