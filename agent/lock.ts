/** One agent per node: an exclusive flock held for the life of the process. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError, describeCause, isSyscallError } from '../common/errors';
import { native } from '../native';

export interface NodeLock {
  path: string;
  release(): void;
}

export function acquireNodeLock(runDir: string, node: string): NodeLock {
  const file = path.join(runDir, `${node}.lock`);
  let fd: number;
  try {
    fs.mkdirSync(runDir, { recursive: true, mode: 0o700 });
    fd = native.lockFile(file);
  } catch (err) {
    if (isSyscallError(err) && (err.code === 'EWOULDBLOCK' || err.code === 'EAGAIN')) {
      const holder = readHolder(file);
      throw new PalisadeError(
        'PALISADE_ERR_AGENT_RUNNING',
        `another agent for node ${node} is already running${holder ? ` (pid ${holder})` : ''}`,
        { cause: err },
      );
    }
    throw new PalisadeError('PALISADE_ERR_INTERNAL', `cannot lock ${file}: ${describeCause(err)}`, { cause: err });
  }
  fs.writeFileSync(file, `${process.pid}\n`);
  let held = true;
  return {
    path: file,
    release(): void {
      if (!held) return;
      held = false;
      native.closeFd(fd);
    },
  };
}

function readHolder(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
