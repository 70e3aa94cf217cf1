/**
 * Policy files from the API are read off the event loop, within budgets. The YAML parser costs
 * microseconds per byte (seconds for a large file on a busy machine), so the collector never runs
 * it on its event loop for a request: `parse(files)` first checks what costs nothing (sizes, the
 * alias scan of common/yaml-limits.ts — an alias bomb is refused here, before any parsing), then
 * reads the files in a worker thread (off-loop.ts, policy-worker.ts: 5 s, 256 MB) and answers
 * with the policies as plain data, or every problem (PolicyInvalidError) as compiling them
 * anywhere else would. The worker sends each manifest as its JSON text, read back here a few
 * at a time between event-loop turns (and remembered as the manifest's text: manifest-text.ts).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { RegistryService } from '../../common/mesh-protocol';
import type { Logger } from '../../common/log';
import { PolicyInvalidError } from '../../common/policy';
import { MAX_POLICY_FILE_BYTES, type PolicyFile } from '../../common/policy-files';
import { aliasScanProblem, lineOfOffset } from '../../common/yaml-limits';
import { OffLoop } from './off-loop';
import { planOffLoop } from './plan-off-loop';
import { checkOffLoop } from './set-check';
import type { SetDigest } from './set-digest';
import type { DesiredPolicy, Plan, StoredPolicy } from './repository';
import { parsedFromWire, type ParsedPolicy, type WireParsed } from './wire';

export type { ParsedPolicy } from './wire';

export interface ParsedPolicies {
  policies: ParsedPolicy[];
  warnings: string[];
}

/** `ParsedPolicies` as the worker answers it: the policies as one string (wire.ts). */
export interface ParsedPoliciesWire {
  policies: WireParsed;
  warnings: string[];
}

/** Turning the worker's manifests back into objects yields to the event loop after about this long. */
const READ_SLICE_MS = 2;

/** `PRAGMA wal_checkpoint`'s answer: busy (1: it could not finish), WAL pages, pages copied into the database. */
export interface WalCheckpoint {
  busy: number;
  log: number;
  checkpointed: number;
}

export const DEFAULT_PARSE_DEADLINE_MS = 5_000;
/** Longest a checkpoint may take (its syncs can take seconds under heavy writes to the same file system). */
const CHECKPOINT_DEADLINE_MS = 60_000;

export interface PolicyParserOptions {
  log: Logger;
  /** Longest a job may take (default 5 s). */
  deadlineMs?: number;
  /** Jobs that may wait behind the running one (default 8). */
  maxQueued?: number;
}

export class PolicyParser {
  private readonly loop: OffLoop;
  private readonly log: Logger;

  constructor(opts: PolicyParserOptions) {
    this.log = opts.log.child({ component: 'policy-parser' });
    this.loop = new OffLoop({
      log: this.log,
      what: 'policy files',
      name: 'policy-worker',
      tooLongHint: 'split them or simplify them',
      deadlineMs: opts.deadlineMs ?? DEFAULT_PARSE_DEADLINE_MS,
      // Warm: a new thread takes about a second to load on a busy machine, and compiles the whole set once (set-check.ts).
      idleMs: Infinity,
      ...(opts.maxQueued === undefined ? {} : { maxQueued: opts.maxQueued }),
    });
  }

  /** The policies in `files`; throws PolicyInvalidError, INVALID_ARGUMENT (budgets) or COLLECTOR_UNAVAILABLE (busy). */
  async parse(files: PolicyFile[]): Promise<ParsedPolicies> {
    // a request's files (up to megabytes) were just read and parsed as JSON: the alias scan, then
    // their copy to the worker, each in a turn of their own
    await yieldToLoop();
    const early = budgetProblems(files);
    if (early.length > 0) throw new PolicyInvalidError(early);
    await yieldToLoop();
    const wire = await this.loop.run<ParsedPoliciesWire>({ kind: 'parse', files });
    return { policies: await parsedFromWire(wire.policies, READ_SLICE_MS), warnings: wire.warnings };
  }

  /** What changes from `current` to `next` (repository.ts `planChanges`), in the worker when many policies differ: plan-off-loop.ts. */
  plan(current: readonly StoredPolicy[], next: readonly DesiredPolicy[], sliceMs: number): Promise<Plan> {
    return planOffLoop(this.loop, current, next, sliceMs);
  }

  /** `next`, the set a change makes, compiled and checked in the worker (set-check.ts): its digest, or PolicyInvalidError. */
  check(next: readonly DesiredPolicy[], incoming: { keys: readonly string[]; kinds: readonly string[] }, services: () => readonly RegistryService[], sliceMs = READ_SLICE_MS): Promise<SetDigest> {
    return checkOffLoop(this.loop, next, incoming, services, sliceMs);
  }

  /**
   * Checkpoint the SQLite database `file` (WAL mode) in the worker: the WAL's pages copied into the
   * database and both files synced, which SQLite otherwise does on the thread whose commit takes
   * the WAL past 1,000 pages (tens to hundreds of milliseconds of the collector's event loop). A
   * checkpoint that cannot run (busy, stopping) is left to SQLite's own; only logged. Resolves with
   * SQLite's answer (WAL pages, pages copied), or undefined.
   */
  checkpoint(file: string): Promise<WalCheckpoint | undefined> {
    return this.loop.run<WalCheckpoint>({ kind: 'checkpoint', file }, CHECKPOINT_DEADLINE_MS).then(
      (r) => {
        this.log.debug({ file, ...r }, 'checkpointed off the event loop');
        return r;
      },
      (err: unknown) => {
        this.log.debug({ file, reason: err instanceof Error ? err.message : String(err) }, 'not checkpointed off the event loop');
        return undefined;
      },
    );
  }

  /**
   * Start the thread and compile `current` (the set in force) there now, so that the first change
   * waits for neither (a problem is only logged: the change that meets it says it).
   */
  warm(current: readonly DesiredPolicy[]): void {
    const started = performance.now();
    this.check(current, { keys: [], kinds: [] }, () => []).then(
      () => this.log.debug({ policies: current.length, ms: Math.round(performance.now() - started) }, 'policy worker warm'),
      (err: unknown) => this.log.debug({ reason: err instanceof Error ? err.message : String(err) }, 'policy worker not warmed'),
    );
  }

  close(): Promise<void> {
    return this.loop.close();
  }
}

/** What is refused before any parsing: a file over the size limit, an alias bomb. One line each. */
export function budgetProblems(files: readonly PolicyFile[]): string[] {
  const problems: string[] = [];
  for (const f of files) {
    const bytes = Buffer.byteLength(f.text);
    if (bytes > MAX_POLICY_FILE_BYTES) {
      problems.push(`${f.source}:1: ${bytes} bytes is over the ${MAX_POLICY_FILE_BYTES}-byte limit for a policy file: split it`);
      continue;
    }
    const aliases = aliasScanProblem(f.text);
    if (aliases) problems.push(`${f.source}:${lineOfOffset(f.text, aliases.offset)}: ${aliases.message}`);
  }
  return problems;
}
