/**
 * What-if over recorded flows: `policy test` replays the stored flows under the current set and
 * a candidate (replay.ts); `egress learn` proposes an EgressPolicy from one workload's recorded
 * egress (learn.ts). Both read at most MAX_SCAN_FLOWS flows from the flow store.
 */
import type { EgressLearnResponse, PolicyTestResponse } from '../../common/control-api';
import type { RegistryWorkload } from '../../common/mesh-protocol';
import type { PolicySet } from '../../common/policy';
import type { FlowStore } from '../flows/store';
import { learnEgress } from './learn';
import { replayFlows } from './replay';

/** Most flows one `policy test` or `egress learn` reads. */
const MAX_SCAN_FLOWS = 2_000_000;

/** The verdicts `candidate` would change on the flows stored since `since`, against `current`. */
export function replayStored(
  flows: FlowStore,
  since: number,
  workloads: readonly RegistryWorkload[],
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
export function learnStored(
  flows: FlowStore,
  w: { namespace: string; name: string },
  since: number,
  opts: { groupSuffixes: boolean; includeDenied: boolean },
): EgressLearnResponse {
  return learnEgress(flows.scan({ direction: 'egress', from: `${w.namespace}/${w.name}`, since }, MAX_SCAN_FLOWS), w, opts);
}
