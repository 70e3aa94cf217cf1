/**
 * What-if over recorded flows: `policy test` replays the stored flows under the current set and
 * a candidate (replay.ts); `egress learn` proposes an EgressPolicy from one workload's recorded
 * egress (learn.ts). Both read at most MAX_SCAN_FLOWS flows — seconds of work on a large store —
 * so `WhatIf` runs them in a worker thread (off-loop.ts, policy-worker.ts) with its own
 * read-only connection to the flow database, never on the collector's event loop. The worker
 * compiles the current policies from the `policies` frame and the candidate from it and the
 * incoming policies, as the manager would.
 */
import type { EgressLearnResponse, PolicyTestResponse } from '../../common/control-api';
import type { FlowFilters, StoredFlow } from '../../common/flows-api';
import type { Logger } from '../../common/log';
import type { RegistryWorkload } from '../../common/mesh-protocol';
import type { PolicySet } from '../../common/policy';
import { learnEgress } from './learn';
import { OffLoop } from './off-loop';
import type { ParsedPolicy } from './policy-parser';
import { replayFlows } from './replay';

/** Most flows one `policy test` or `egress learn` reads. */
export const MAX_SCAN_FLOWS = 2_000_000;
/** Longest one `policy test` or `egress learn` may take. */
export const WHAT_IF_DEADLINE_MS = 60_000;

/** Where stored flows are read from (the flow store, or a read-only connection to its file). */
export interface FlowScanner {
  scan(filters: FlowFilters, max: number): Iterable<StoredFlow>;
}

export type LearnOptions = { groupSuffixes: boolean; includeDenied: boolean };

/** The verdicts `candidate` would change on the flows stored since `since`, against `current`. */
export function replayStored(
  flows: FlowScanner,
  since: number,
  workloads: readonly Pick<RegistryWorkload, 'namespace' | 'name' | 'labels'>[],
  sets: { current: PolicySet; candidate: PolicySet },
): PolicyTestResponse {
  const labels = new Map(workloads.map((w) => [`${w.namespace}/${w.name}`, w.labels]));
  return replayFlows({
    flows: flows.scan({ since }, MAX_SCAN_FLOWS),
    current: sets.current,
    candidate: sets.candidate,
    workloadLabels: (namespace, name) => labels.get(`${namespace}/${name}`),
  });
}

/** An EgressPolicy allowing what workload `w` was seen doing since `since`. */
export function learnStored(flows: FlowScanner, w: { namespace: string; name: string }, since: number, opts: LearnOptions): EgressLearnResponse {
  return learnEgress(flows.scan({ direction: 'egress', from: `${w.namespace}/${w.name}`, since }, MAX_SCAN_FLOWS), w, opts);
}

/** `policy test` and `egress learn` in a worker thread. */
export class WhatIf {
  private readonly loop: OffLoop;

  constructor(private readonly opts: { flowsFile: string; log: Logger }) {
    this.loop = new OffLoop({
      log: opts.log.child({ component: 'what-if' }),
      what: 'stored flows',
      name: 'what-if',
      tooLongHint: 'ask for a shorter time (--since)',
      deadlineMs: WHAT_IF_DEADLINE_MS,
      maxQueued: 4,
    });
  }

  /** Replay under the policies of `frame` (a `policies` frame) and under them with `incoming` created or replaced. */
  replay(frame: string, incoming: readonly ParsedPolicy[], since: number, workloads: readonly RegistryWorkload[]): Promise<PolicyTestResponse> {
    const labels = workloads.map((w) => ({ namespace: w.namespace, name: w.name, labels: w.labels }));
    return this.loop.run<PolicyTestResponse>({ kind: 'replay', flowsFile: this.opts.flowsFile, frame, incoming, since, workloads: labels });
  }

  learn(w: { namespace: string; name: string }, since: number, opts: LearnOptions): Promise<EgressLearnResponse> {
    return this.loop.run<EgressLearnResponse>({ kind: 'learn', flowsFile: this.opts.flowsFile, workload: { namespace: w.namespace, name: w.name }, since, opts });
  }

  close(): Promise<void> {
    return this.loop.close();
  }
}
