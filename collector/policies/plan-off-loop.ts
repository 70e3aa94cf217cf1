/**
 * What a change does (repository.ts `planChanges`: per policy, with the YAML diffs) worked out in
 * the policy worker (policy-worker.ts) when many policies differ: the YAML of each changed policy
 * and its diff are most of a big change's allocations, and made on the event loop they grow the
 * collector's heap and its garbage-collection pauses. The policies cross as one string each and
 * the answer, the same `changes` list in the same order, as each change's JSON text (wire.ts: made
 * and read in slices on this side), with the version row's text made there too. Few differences, or a worker that cannot take the job (busy,
 * over its budget), and the plan is made on the event loop in slices as before.
 */
import { manifestText } from './manifest-text';
import type { OffLoop } from './off-loop';
import { planChangesSliced, policyKey, type DesiredPolicy, type Plan, type StoredPolicy } from './repository';
import { changesFromWire, toWireSliced, type WireChanges } from './wire';

/** Above this many policies that differ, the plan is made in the worker. */
export const PLAN_OFF_LOOP_MIN = 50;

/** How many policies `next` adds, removes or changes against `current` (cheap: the texts are remembered). */
export function differing(current: readonly StoredPolicy[], next: readonly DesiredPolicy[]): number {
  const before = new Map(current.map((p) => [policyKey(p), p]));
  let n = 0;
  for (const a of next) {
    const b = before.get(policyKey(a));
    before.delete(policyKey(a));
    if (!b || b.origin !== a.origin || (b.file ?? '') !== (a.file ?? '') || manifestText(b.manifest) !== manifestText(a.manifest)) n++;
  }
  return n + before.size;
}

/** `planChanges(current, next)`: in `loop`'s worker when many policies differ, else (or when it cannot) in slices here. */
export async function planOffLoop(loop: OffLoop, current: readonly StoredPolicy[], next: readonly DesiredPolicy[], sliceMs: number): Promise<Plan> {
  if (differing(current, next) > PLAN_OFF_LOOP_MIN) {
    try {
      const job = { kind: 'plan', current: await toWireSliced(current, sliceMs), next: await toWireSliced(next, sliceMs) };
      const wire = await loop.run<WireChanges>(job);
      const changes = await changesFromWire(wire, sliceMs);
      return { changes, next: [...next], changed: changes.some((c) => c.op !== 'unchanged'), changedText: wire.changed };
    } catch {
      // busy, over its budget, stopping: the same plan, made here
    }
  }
  return planChangesSliced(current, next, sliceMs);
}
