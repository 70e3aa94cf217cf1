/**
 * The socket programs' cgroup links: one pinned link per program (link_<name>), created once and
 * swapped in place on a restart (BPF_LINK_UPDATE, atomic) after checking it is on the same cgroup.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { PalisadeError, describeCause } from '../../common/errors';
import { native, type LoadedObject } from '../../native';

export const LINK_PREFIX = 'link_';

export function closeQuietly(fd: number): void {
  try {
    native.closeFd(fd);
  } catch {
    /* already closed */
  }
}

/** Attach a program to the cgroup (or swap it into the link a previous install pinned). */
export function attachProgram(
  prog: LoadedObject['programs'][number],
  cgFd: number,
  cgroup: { path: string; id: bigint },
  pinDir: string,
  created: string[],
): void {
  const linkName = LINK_PREFIX + prog.name;
  const linkPath = path.join(pinDir, linkName);
  if (fs.existsSync(linkPath)) {
    const linkFd = native.objGet(linkPath);
    try {
      const info = native.linkInfo(linkFd);
      if (info.cgroupId !== cgroup.id) {
        throw new PalisadeError(
          'PALISADE_ERR_BPF_ATTACH',
          `${path.basename(pinDir)} is already installed on another cgroup (id ${info.cgroupId}); run \`palisade agent uninstall --node ${path.basename(pinDir)}\` first`,
        );
      }
      native.linkUpdate(linkFd, prog.fd);
    } catch (err) {
      if (err instanceof PalisadeError) throw err;
      throw new PalisadeError('PALISADE_ERR_BPF_ATTACH', `cannot update ${prog.name}: ${describeCause(err)}`, { cause: err });
    } finally {
      closeQuietly(linkFd);
    }
    return;
  }
  let linkFd = -1;
  try {
    linkFd = native.linkCreate(prog.fd, cgFd, prog.attachType);
    native.objPin(linkFd, linkPath);
    created.push(linkName);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_BPF_ATTACH', `cannot attach ${prog.name} to ${cgroup.path}: ${describeCause(err)}`, {
      cause: err,
    });
  } finally {
    if (linkFd >= 0) closeQuietly(linkFd);
  }
}
