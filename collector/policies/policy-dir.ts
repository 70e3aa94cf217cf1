/**
 * Policies owned by the collector's `--policy-dir`: read at start (a directory that does not
 * validate refuses the start), then watched. The directory's policies replace the ones it defined
 * before; a policy created through the API that the directory now defines is taken over by it.
 */
import * as path from 'node:path';
import { describeCause, isPalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { allOf, type PolicySet } from '../../common/policy';
import { readPolicyDir, watchPolicyDir, type PolicyFile } from '../../common/policy-files';
import { desiredPolicy, policyKey, type DesiredPolicy, type StoredPolicy } from './repository';

/**
 * Read `dir` and `sync` its files (throws what `sync` throws), then watch it and `sync` every
 * change; a change `sync` refuses is logged with its problems, and agents keep `version()`.
 * Returns a function that stops watching.
 */
export function followPolicyDir(dir: string, sync: (files: PolicyFile[]) => void, log: Logger, version: () => number): () => void {
  const files = readPolicyDir(dir);
  sync(files);
  return watchPolicyDir(dir, files, {
    onFiles: (next) => {
      try {
        sync(next);
      } catch (err) {
        if (!isPalisadeError(err)) throw err;
        const problems = (err as { problems?: readonly string[] }).problems ?? [err.message];
        log.error({ event: 'policy-rejected', problems }, `policy change rejected (policy directory); agents keep version ${version()}`);
      }
    },
    onError: (err) => log.error({ dir, error: describeCause(err) }, 'policy directory unreadable'),
  });
}

/**
 * The set in force once the policies of `dir` (compiled: `set`) replace those it defined before;
 * `takenOver` lists the API policies it now defines.
 */
export function withDirPolicies(dir: string, set: PolicySet, current: readonly StoredPolicy[]): { next: DesiredPolicy[]; takenOver: StoredPolicy[] } {
  const fromDir = allOf(set).map((p) => desiredPolicy(p, 'dir', path.relative(dir, p.source) || p.source));
  const dirKeys = new Set(fromDir.map(policyKey));
  const takenOver = current.filter((p) => p.origin === 'api' && dirKeys.has(policyKey(p)));
  const next = [...current.filter((p) => p.origin !== 'dir' && !dirKeys.has(policyKey(p))), ...fromDir];
  return { next, takenOver };
}
