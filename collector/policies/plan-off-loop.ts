/**
 * What a change does (repository.ts `planChanges`: per policy, with the YAML diffs) worked out in
 * the policy worker (policy-worker.ts) when many policies differ: the YAML of each changed policy
 * and its diff are most of a big change's allocations, and made on the event loop they grow the
 * collector's heap and its garbage-collection pauses. The policies cross as plain strings (the
 * manifest as its JSON text), the answer is the same `changes` list, in the same order. Few
 * differences, or a worker that cannot take the job (busy, over its budget), and the plan is
 * made on the event loop in slices as before.
 */
import type { PolicyChange } from '../../common/control-api';
import { manifestFromText, manifestText } from './manifest-text';
import type { OffLoop } from './off-loop';
import { planChangesSliced, policyKey, type DesiredPolicy, type Plan, type StoredPolicy } from './repository';

/** Above this many policies that differ, the plan is made in the worker. */
export const PLAN_OFF_LOOP_MIN = 50;

/** A policy as it crosses to the worker: what planning reads, the manifest as its JSON text. */
export type WirePolicy = Pick<DesiredPolicy, 'kind' | 'namespace' | 'name' | 'origin' | 'file'> & { manifest: string };

export const toWire = (p: DesiredPolicy): WirePolicy => ({
  kind: p.kind,
  namespace: p.namespace,
  name: p.name,
  origin: p.origin,
  ...(p.file === undefined ? {} : { file: p.file }),
  manifest: manifestText(p.manifest),
});

export const fromWire = (p: WirePolicy): DesiredPolicy & StoredPolicy => ({
  kind: p.kind,
  namespace: p.namespace,
  name: p.name,
  origin: p.origin,
  ...(p.file === undefined ? {} : { file: p.file }),
  manifest: manifestFromText(p.manifest),
  // planning reads neither
  id: 0,
  version: 0,
});

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
      const changes = await loop.run<PolicyChange[]>({ kind: 'plan', current: current.map(toWire), next: next.map(toWire) });
      return { changes, next: [...next], changed: changes.some((c) => c.op !== 'unchanged') };
    } catch {
      // busy, over its budget, stopping: the same plan, made here
    }
  }
  return planChangesSliced(current, next, sliceMs);
}
