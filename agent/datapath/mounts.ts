/** Finding cgroup v2 and bpffs: from /proc/self/mountinfo and statfs, never hard-coded. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PalisadeError, describeCause } from '../../common/errors';
import { native } from '../../native';

const BPF_FS_MAGIC = 0xcafe4a11;
const CGROUP2_SUPER_MAGIC = 0x63677270;

interface MountEntry {
  mountPoint: string;
  fsType: string;
}

/** Unescape the octal escapes mountinfo uses for spaces and friends. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const mountPoint = left[4];
    const fsType = right[0];
    if (mountPoint && fsType) out.push({ mountPoint: unescapeMount(mountPoint), fsType });
  }
  return out;
}

/** The cgroup v2 mount point of this process's mount namespace. */
export function findCgroup2Root(mountinfo = '/proc/self/mountinfo'): string {
  let text: string;
  try {
    text = fs.readFileSync(mountinfo, 'utf8');
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_CGROUP', `cannot read ${mountinfo}: ${describeCause(err)}`, { cause: err });
  }
  const entry = parseMountinfo(text).find((m) => m.fsType === 'cgroup2');
  if (!entry) {
    throw new PalisadeError('PALISADE_ERR_CGROUP', `no cgroup v2 mount found in ${mountinfo} (cgroup v2 is required)`);
  }
  return entry.mountPoint;
}

function fsTypeOf(p: string): number | undefined {
  try {
    return Number(fs.statfsSync(p).type);
  } catch {
    return undefined;
  }
}

/** Validate a cgroup v2 directory to attach to; returns its absolute path and cgroup id (inode). */
export function resolveCgroup(dir: string | undefined): { path: string; id: bigint } {
  const p = path.resolve(dir ?? findCgroup2Root());
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(p, { bigint: true });
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_CGROUP', `cgroup ${p} does not exist: ${describeCause(err)}`, { cause: err });
  }
  if (!st.isDirectory() || fsTypeOf(p) !== CGROUP2_SUPER_MAGIC) {
    throw new PalisadeError('PALISADE_ERR_CGROUP', `${p} is not a cgroup v2 directory`);
  }
  return { path: p, id: st.ino };
}

/** Make sure `dir` is a bpffs mount, mounting one when it is missing. */
export function ensureBpffs(dir: string): void {
  if (fsTypeOf(dir) === BPF_FS_MAGIC) return;
  try {
    if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    native.mountBpffs(dir);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_BPFFS', `cannot mount bpffs at ${dir}: ${describeCause(err)}`, { cause: err });
  }
  if (fsTypeOf(dir) !== BPF_FS_MAGIC) {
    throw new PalisadeError('PALISADE_ERR_BPFFS', `cannot mount bpffs at ${dir}: mounted, but it is not a bpffs`);
  }
}

export function isBpffs(dir: string): boolean {
  return fsTypeOf(dir) === BPF_FS_MAGIC;
}

/**
 * The cgroup v2 this process is in (/proc/self/cgroup's `0::` line under the cgroup v2 mount):
 * what bpf_skb_cgroup_id() reports for packets of sockets it creates.
 */
export function ownCgroup(procCgroup = '/proc/self/cgroup', mountinfo = '/proc/self/mountinfo'): { path: string; id: bigint } {
  let text: string;
  try {
    text = fs.readFileSync(procCgroup, 'utf8');
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_CGROUP', `cannot read ${procCgroup}: ${describeCause(err)}`, { cause: err });
  }
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  if (!line) throw new PalisadeError('PALISADE_ERR_CGROUP', `${procCgroup} has no cgroup v2 entry (cgroup v2 is required)`);
  return resolveCgroup(path.join(findCgroup2Root(mountinfo), line.slice(3)));
}
