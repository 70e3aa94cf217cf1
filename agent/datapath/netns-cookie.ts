/** A network namespace's cookie (SO_NETNS_COOKIE), the key the kernel programs know pods by. */
import * as path from 'node:path';
import { PalisadeError, describeCause, isSyscallError } from '../../common/errors';
import { native } from '../../native';

/** Network-namespace cookie of a netns path (/var/run/netns/X, /proc/PID/ns/net). */
export function netnsCookieOf(netnsPath: string): bigint {
  if (!path.isAbsolute(netnsPath)) {
    throw new PalisadeError('PALISADE_ERR_NETNS', `netns path must be absolute, got ${JSON.stringify(netnsPath)}`);
  }
  try {
    return native.netnsCookie(netnsPath);
  } catch (err) {
    const why =
      isSyscallError(err) && err.code === 'ENOENT'
        ? 'does not exist'
        : isSyscallError(err) && err.code === 'EINVAL' && err.syscall === 'setns'
          ? 'is not a network namespace'
          : describeCause(err);
    throw new PalisadeError('PALISADE_ERR_NETNS', `netns ${netnsPath} ${why}`, { cause: err });
  }
}
