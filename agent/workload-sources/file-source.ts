/**
 * The workloads file as a workload source (`palisade agent --workloads FILE`), watched: a
 * workload added, removed or relabelled in the file is enrolled, unenrolled or updated without a
 * restart. A change that does not validate — a syntax error, a bad field, a netns that does not
 * exist — is refused whole with its problems (one line each) and the workloads stay as they were.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeCause, isPalisadeError, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { netnsCookieOf } from '../datapath/datapath';
import { loadWorkloadsFile, type Workload, type WorkloadsConfig } from '../workloads';
import type { NodeEnrollment } from './node-enrollment';
import type { WorkloadSource } from './source';

export interface FileSourceOptions {
  file: string;
  /** The file as read and checked before anything was installed (so a bad file refused the start). */
  initial: WorkloadsConfig;
  log: Logger;
  /** Wait this long after the last change event before reading (editors write in steps). */
  debounceMs?: number;
  cookieOf?: (netnsPath: string) => bigint;
}

/** Read and check the workloads file, every netns included; throws the first problem (one line). */
export function loadCheckedWorkloads(file: string, cookieOf: (netns: string) => bigint = netnsCookieOf): WorkloadsConfig {
  const config = loadWorkloadsFile(file);
  for (const w of config.workloads) {
    try {
      cookieOf(w.netns);
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_NETNS', `workload ${w.namespace}/${w.name}: ${(err as Error).message}`, { cause: err });
    }
  }
  return config;
}

export class FileSource implements WorkloadSource {
  readonly name = 'file';
  isSynced = false;
  private readonly log: Logger;
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private enrollment: NodeEnrollment | undefined;
  private current: Workload[] = [];
  private applying: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: FileSourceOptions) {
    this.log = opts.log.child({ component: 'workloads-file' });
  }

  async start(enrollment: NodeEnrollment): Promise<void> {
    this.enrollment = enrollment;
    enrollment.setServices(this.name, this.opts.initial.services);
    const all = await this.apply(this.opts.initial.workloads);
    // At start, a workload that cannot be enrolled refuses the start (nothing serves half a file);
    // one refused for want of room is held and reported, and the rest of the node is served.
    const full = all.filter((f) => f.nodeFull).map((f) => f.problem);
    if (full.length > 0) this.log.error({ event: 'workloads-rejected', file: this.opts.file, problems: full }, 'some workloads of the file could not be enrolled');
    const failed = all.filter((f) => !f.nodeFull).map((f) => f.problem);
    if (failed.length > 0) throw new PalisadeError('PALISADE_ERR_WORKLOADS_INVALID', `${this.opts.file}: ${failed[0]}${failed.length > 1 ? ` (and ${failed.length - 1} more)` : ''}`);
    this.isSynced = true;
    this.watch();
  }

  synced(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
    await this.applying;
  }

  private watch(): void {
    const dir = path.dirname(this.opts.file);
    const base = path.basename(this.opts.file);
    try {
      this.watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
        if (name !== null && name !== base) return;
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => this.reload(), this.opts.debounceMs ?? 100);
      });
      this.watcher.on('error', (err) => this.log.error({ file: this.opts.file, error: describeCause(err) }, 'cannot watch the workloads file'));
    } catch (err) {
      this.log.error({ file: this.opts.file, error: describeCause(err) }, 'cannot watch the workloads file: changes need a restart');
    }
  }

  private reload(): void {
    this.timer = undefined;
    if (this.closed) return;
    this.applying = this.applying.then(async () => {
      if (this.closed) return;
      let config: WorkloadsConfig;
      try {
        config = loadCheckedWorkloads(this.opts.file, this.opts.cookieOf);
      } catch (err) {
        if (!isPalisadeError(err)) throw err;
        const problems = (err as { problems?: readonly string[] }).problems ?? [err.message];
        this.log.error({ event: 'workloads-rejected', file: this.opts.file, problems }, 'workloads file change rejected; the workloads stay as they were');
        return;
      }
      if (config.trustDomain !== this.opts.initial.trustDomain) {
        const msg = `${this.opts.file}: trustDomain changed from ${this.opts.initial.trustDomain} to ${config.trustDomain} (restart the agent for that)`;
        this.log.error({ event: 'workloads-rejected', file: this.opts.file, problems: [msg] }, 'workloads file change rejected; the workloads stay as they were');
        return;
      }
      this.enrollment!.setServices(this.name, config.services);
      const failed = await this.apply(config.workloads);
      if (failed.length > 0) this.log.error({ event: 'workloads-rejected', file: this.opts.file, problems: failed.map((f) => f.problem) }, 'some workloads of the file could not be enrolled');
      this.log.info({ event: 'workloads-applied', file: this.opts.file, workloads: config.workloads.length }, 'workloads file change applied');
    });
  }

  /**
   * Make the file's keys exactly `workloads`: removals first (an IP may move to a new entry, a
   * refused pod may fit now). Returns what failed, one line each, telling refusals for want of room apart.
   */
  private async apply(workloads: Workload[]): Promise<Array<{ problem: string; nodeFull: boolean }>> {
    const enrollment = this.enrollment!;
    const want = new Map(workloads.map((w) => [keyOf(w), w]));
    for (const w of this.current) if (!want.has(keyOf(w))) await enrollment.remove(keyOf(w), 'removed from the workloads file');
    const failed: Array<{ problem: string; nodeFull: boolean }> = [];
    for (const [key, w] of want) {
      try {
        await enrollment.put(key, { workload: w });
      } catch (err) {
        failed.push({ problem: `${w.namespace}/${w.name}: ${describeCause(err)}`, nodeFull: isPalisadeError(err) && err.code === 'PALISADE_ERR_NODE_FULL' });
      }
    }
    this.current = workloads;
    return failed;
  }
}

function keyOf(w: Workload): string {
  return `file:${w.namespace}/${w.name}`;
}
