/** The demo's long-running processes: started detached in a namespace and cgroup, logging to a file, waited for by a line of their log. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError } from '../../common/errors';
import { spawnIn, waitFor } from '../../test/harness';

export function distRoot(): string {
  // dist/cli/demo -> dist
  return path.resolve(__dirname, '..', '..');
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function startDaemon(target: { netnsPath: string; cgroupPath: string }, args: string[], log: string, cmd: string = process.execPath): number {
  const fd = fs.openSync(log, 'a', 0o600);
  const child = spawnIn(target, cmd, args, { stdio: ['ignore', fd, fd], detached: true });
  fs.closeSync(fd);
  child.unref();
  if (!child.pid) throw new PalisadeError('PALISADE_ERR_INTERNAL', `could not start ${args.join(' ')}`);
  return child.pid;
}

export async function waitForLog(file: string, needle: string, pid: number, timeoutMs: number): Promise<void> {
  await waitFor(
    () => {
      const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      if (text.includes(needle)) return true;
      if (!alive(pid)) {
        const last = text.trim().split('\n').slice(-1)[0] ?? '';
        throw new PalisadeError('PALISADE_ERR_INTERNAL', `demo process ${pid} exited: ${last}`);
      }
      return undefined;
    },
    timeoutMs,
    { what: `${path.basename(file)} to say ${needle}` },
  );
}
