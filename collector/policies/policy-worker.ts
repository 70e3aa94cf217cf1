/**
 * The worker thread behind off-loop.ts, for work the collector keeps off its event loop:
 * - `parse`: policy files from the API (YAML or JSON text), read with the same rules as everywhere
 *   (common/policy: compilePolicyFiles); answers each policy's kind, name, source, line and
 *   manifest, or every problem (policy-parser.ts);
 * - `check`: the set a change from the API makes, compiled and checked as a whole (set-check.ts),
 *   answered with its digest; the sets compiled last are kept for the next change;
 * - `plan`: what a change does, policy by policy, with the YAML diffs (repository.ts planChanges)
 *   — the YAML and the diffs of a change of hundreds of policies are most of its garbage;
 * - `replay` and `learn`: `policy test` and `egress learn` over the stored flows, through a
 *   read-only connection to the flow database (what-if.ts);
 * - `checkpoint`: a SQLite database in WAL mode (the policy store) checkpointed through a
 *   connection of its own, opened for the job (policy-parser.ts `checkpoint`).
 * One job at a time; the parent enforces the time budget by terminating this thread.
 */
import { parentPort } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { FlowFilters } from '../../common/flows-api';
import type { RegistryWorkload } from '../../common/mesh-protocol';
import { allOf, compilePolicyFiles, PolicyInvalidError } from '../../common/policy';
import type { PolicyFile } from '../../common/policy-files';
import { openFlowReader, scanFlows } from '../flows/store';
import { CompiledPolicies, desiredFromFrame } from './compiled-set';
import type { OffLoopReply } from './off-loop';
import type { ParsedPoliciesWire, ParsedPolicy, WalCheckpoint } from './policy-parser';
import { changesToWire, fromWire, parsedToWire, type WirePolicies } from './wire';
import { SetChecker, type SetCheckJob } from './set-check';
import { desiredPolicy, planChanges, policyKey } from './repository';
import { learnStored, replayStored, type FlowScanner, type LearnOptions } from './what-if';

type Job =
  | { id: number; kind: 'parse'; files: PolicyFile[] }
  | { id: number; kind: 'plan'; current: WirePolicies; next: WirePolicies }
  | ({ id: number; kind: 'check' } & SetCheckJob)
  | { id: number; kind: 'replay'; flowsFile: string; frame: string; incoming: ParsedPolicy[]; since: number; workloads: Pick<RegistryWorkload, 'namespace' | 'name' | 'labels'>[] }
  | { id: number; kind: 'learn'; flowsFile: string; workload: { namespace: string; name: string }; since: number; opts: LearnOptions }
  | { id: number; kind: 'checkpoint'; file: string };

/** One read-only connection per flow database, kept between jobs. */
const readers = new Map<string, Database.Database>();
const checker = new SetChecker();

function flowsIn(file: string): FlowScanner {
  let db = readers.get(file);
  if (!db) readers.set(file, (db = openFlowReader(file)));
  const reader = db;
  return { scan: (filters: FlowFilters, max: number) => scanFlows(reader, filters, max) };
}

/** The policies as one string (wire.ts), each manifest as its JSON text: one copy to the collector's thread, not an object graph rebuilt there at once. */
function parse(files: PolicyFile[]): ParsedPoliciesWire {
  const set = compilePolicyFiles(files);
  const policies = allOf(set).map((p) => ({
    kind: p.kind,
    namespace: p.namespace,
    name: p.name,
    source: p.source,
    line: p.line,
    manifest: JSON.stringify(p.manifest),
  }));
  return { policies: parsedToWire(policies), warnings: [...(set.warnings ?? [])] };
}

/**
 * Copy the WAL's pages into the database (PASSIVE: waits for no one; synchronous FULL, so both
 * files are synced as SQLite's own checkpoint syncs them). Closed again at once: the collector's
 * connection stays the last one, whose close checkpoints and removes the WAL.
 */
function checkpoint(file: string): WalCheckpoint {
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('synchronous = FULL');
    return (db.pragma('wal_checkpoint(PASSIVE)') as WalCheckpoint[])[0]!;
  } finally {
    db.close();
  }
}

function run(job: Job): unknown {
  switch (job.kind) {
    case 'parse':
      return parse(job.files);
    case 'check':
      return checker.check(job);
    case 'plan':
      return changesToWire(planChanges(fromWire(job.current), fromWire(job.next)).changes);
    case 'replay': {
      const current = desiredFromFrame(job.frame);
      const incoming = new Map(job.incoming.map((p) => [policyKey(p), desiredPolicy(p, 'api')]));
      const candidate = [...current.filter((p) => !incoming.has(policyKey(p))), ...incoming.values()];
      const compiled = CompiledPolicies.of(current);
      const sets = { current: compiled.set, candidate: compiled.with(candidate).set };
      return replayStored(flowsIn(job.flowsFile), job.since, job.workloads, sets);
    }
    case 'learn':
      return learnStored(flowsIn(job.flowsFile), job.workload, job.since, job.opts);
    case 'checkpoint':
      return checkpoint(job.file);
  }
}

parentPort?.on('message', (job: Job) => {
  let reply: OffLoopReply;
  try {
    reply = { id: job.id, ok: true, value: run(job) };
  } catch (err) {
    reply =
      err instanceof PolicyInvalidError
        ? { id: job.id, ok: false, problems: err.problems }
        : { id: job.id, ok: false, error: err instanceof Error ? err.message.split('\n')[0]! : String(err) };
  }
  parentPort?.postMessage(reply);
});
