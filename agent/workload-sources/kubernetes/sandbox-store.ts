/**
 * The pod sandboxes this node's agent has been told about (CNI ADD, or found in /proc), kept in a
 * file of the run directory so that a restarted agent knows every pod's network namespace (and
 * what it had enrolled) before the Kubernetes API answers — the way cilium restores endpoints.
 * The run directory is the host's /run/palisade: it outlives the agent, not the node's boot, like
 * the sandboxes themselves. Written whole and atomically (a temporary file renamed over it; no
 * fsync: what it records does not survive a reboot either). A file that does not read back is
 * ignored with a warning (the API and /proc are the truth, the file is a head start).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describeCause, errorCode, PalisadeError } from '../../../common/errors';
import type { Logger } from '../../../common/log';
import { isRecord } from '../../../common/record';
import type { Workload } from '../../workloads';

export interface SandboxRecord {
  containerId: string;
  uid: string;
  namespace: string;
  name: string;
  /** Path of the pod's network namespace. */
  netns: string;
  /** The pod's IPv4 address from the CNI result (or /proc), if it has one. */
  ip: string | undefined;
  /** The pod's host-side interface, from the CNI result. */
  hostInterface?: string;
  /** Found in /proc at start, not announced by a CNI ADD. */
  discovered?: boolean;
  /** What the agent enrolled for it, to enroll it again after a restart before the API answers. */
  enrolled?: { workload: Workload; netnsCookie: string };
}

const VERSION = 1;

export function sandboxStateFile(runDir: string, node: string): string {
  return path.join(runDir, `kubernetes-${node}.json`);
}

export class SandboxStore {
  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {}

  load(): SandboxRecord[] {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') this.log.warn({ file: this.file, code: errorCode(err) }, 'cannot read the sandbox state file; starting from the API');
      return [];
    }
    try {
      const value = JSON.parse(text) as unknown;
      if (!isRecord(value) || value.version !== VERSION || !Array.isArray(value.sandboxes)) throw new Error(`not a version ${VERSION} sandbox state`);
      return value.sandboxes.filter(isSandboxRecord);
    } catch (err) {
      this.log.warn({ file: this.file, reason: (err as Error).message }, 'the sandbox state file does not read back; starting from the API');
      return [];
    }
  }

  save(records: Iterable<SandboxRecord>): void {
    const tmp = `${this.file}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, `${JSON.stringify({ version: VERSION, sandboxes: [...records] })}\n`, { mode: 0o600, flag: 'wx' });
      fs.renameSync(tmp, this.file);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw new PalisadeError('PALISADE_ERR_DATA_DIR', `cannot write ${this.file}: ${describeCause(err)}`, { cause: err });
    }
  }
}

function isSandboxRecord(v: unknown): v is SandboxRecord {
  if (!isRecord(v)) return false;
  const strings = ['containerId', 'uid', 'namespace', 'name', 'netns'] as const;
  if (!strings.every((k) => typeof v[k] === 'string' && v[k] !== '')) return false;
  if (v.ip !== undefined && typeof v.ip !== 'string') return false;
  if (!String(v.netns).startsWith('/')) return false;
  if (v.enrolled !== undefined) {
    const e = v.enrolled as { workload?: unknown; netnsCookie?: unknown };
    if (!isRecord(e) || typeof e.netnsCookie !== 'string' || !/^[0-9]+$/.test(e.netnsCookie) || !isWorkload(e.workload)) return false;
  }
  return true;
}

function isWorkload(v: unknown): v is Workload {
  if (!isRecord(v)) return false;
  const strings = ['name', 'namespace', 'serviceAccount', 'netns', 'ip', 'identity'] as const;
  return strings.every((k) => typeof v[k] === 'string') && typeof v.strict === 'boolean' && isRecord(v.labels) && Object.values(v.labels).every((x) => typeof x === 'string');
}
