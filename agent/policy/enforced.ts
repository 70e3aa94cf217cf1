/**
 * The policies this agent enforces: the union of a local directory (`--policy-dir`, watched)
 * and what the collector pushes. Each source is compiled on its own, all-or-nothing: a change
 * that does not validate is logged with every problem and the previous policies of that source
 * stay in force. Listeners get the new PolicyIndex on every successful change.
 */
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { describeCause, isPalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { compilePolicyFiles, PolicyIndex, type PolicySet } from '../../common/policy';
import { readPolicyDir, watchPolicyDir, type PolicyFile } from '../../common/policy-files';

export type PolicySourceName = 'dir' | 'collector';

export interface EnforcedPoliciesOptions {
  dir?: string;
  log: Logger;
  /** Debounce for directory events (editors write files in several steps). */
  debounceMs?: number;
}

export interface PolicyState {
  index: PolicyIndex;
  /** per source: how many policies, the collector's version */
  sources: Partial<Record<PolicySourceName, { policies: number; version?: number; loadedAt: string }>>;
}

const EMPTY: PolicySet = { authorization: [], egress: [] };

export class EnforcedPolicies extends EventEmitter {
  private readonly log: Logger;
  private readonly sets: Partial<Record<PolicySourceName, PolicySet>> = {};
  private readonly info: PolicyState['sources'] = {};
  private current: PolicyIndex = new PolicyIndex(EMPTY);
  private problems: readonly string[] = [];
  private stopWatching: (() => void) | undefined;

  constructor(private readonly opts: EnforcedPoliciesOptions) {
    super();
    this.log = opts.log.child({ component: 'policy' });
  }

  get index(): PolicyIndex {
    return this.current;
  }

  state(): PolicyState {
    return { index: this.current, sources: { ...this.info } };
  }

  /** Load the directory once (throws PALISADE_ERR_POLICY_INVALID: the agent refuses to start on a bad dir) and watch it. */
  start(): void {
    const dir = this.opts.dir;
    if (!dir) return;
    const files = readPolicyDir(dir);
    this.apply('dir', files, undefined, true);
    this.stopWatching = watchPolicyDir(
      dir,
      files,
      {
        onFiles: (next) => void this.apply('dir', next, undefined, false),
        onError: (err) => this.log.error({ dir, error: describeCause(err) }, 'policy directory unreadable; previous policies stay in force'),
      },
      this.opts.debounceMs,
    );
  }

  /** A new version from the collector (documents as the collector stored them). */
  applyCollector(version: number, files: PolicyFile[]): boolean {
    return this.apply('collector', files, version, false);
  }

  /** The problems of the last rejected change (empty after an accepted one). */
  get lastProblems(): readonly string[] {
    return this.problems;
  }

  close(): void {
    this.stopWatching?.();
  }

  private apply(source: PolicySourceName, files: PolicyFile[], version: number | undefined, throwOnError: boolean): boolean {
    let set: PolicySet;
    try {
      set = compilePolicyFiles(files);
    } catch (err) {
      if (throwOnError || !isPalisadeError(err)) throw err;
      const problems = (err as { problems?: readonly string[] }).problems ?? [err.message];
      this.log.error(
        { event: 'policy-rejected', source, version, problems },
        `policy change rejected (${problems.length} problem${problems.length === 1 ? '' : 's'}); previous policies stay in force`,
      );
      this.problems = problems;
      this.emit('rejected', { source, version, problems });
      return false;
    }
    this.problems = [];
    this.sets[source] = set;
    this.info[source] = {
      policies: set.authorization.length + set.egress.length + (set.routes?.length ?? 0) + (set.faults?.length ?? 0) + (set.destinationRules?.length ?? 0),
      ...(version === undefined ? {} : { version }),
      loadedAt: new Date().toISOString(),
    };
    const merged: PolicySet = {
      authorization: [...(this.sets.dir?.authorization ?? []), ...(this.sets.collector?.authorization ?? [])],
      egress: [...(this.sets.dir?.egress ?? []), ...(this.sets.collector?.egress ?? [])],
      routes: [...(this.sets.dir?.routes ?? []), ...(this.sets.collector?.routes ?? [])],
      faults: [...(this.sets.dir?.faults ?? []), ...(this.sets.collector?.faults ?? [])],
      destinationRules: [...(this.sets.dir?.destinationRules ?? []), ...(this.sets.collector?.destinationRules ?? [])],
    };
    this.current = new PolicyIndex(merged);
    this.log.info(
      {
        event: 'policy-loaded',
        source,
        version,
        files: files.map((f) => path.basename(f.source)),
        authorization: set.authorization.map((p) => `${p.namespace}/${p.name}`),
        egress: set.egress.map((p) => `${p.namespace}/${p.name}`),
        routes: (set.routes ?? []).map((p) => `${p.namespace}/${p.name}`),
      },
      'policies loaded',
    );
    this.emit('change', this.current);
    return true;
  }
}
