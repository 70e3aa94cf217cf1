/**
 * A change from the API checked as a whole in the policy worker (policy-worker.ts `check`), not on
 * the collector's event loop: the set it would put in force is compiled there as the agents
 * compile it (compiled-set.ts; compiling one policy makes a YAML document of it, and a change of
 * thousands of policies made that garbage on the collector's heap, in pauses of tens of ms), its
 * routes' Services and FaultInjections checked (route-backends.ts), and the answer is every
 * problem (PolicyInvalidError, nothing applied) or the set's digest (set-digest.ts), which the
 * collector keeps for its queries. The worker keeps the sets it compiled last, so a change
 * compiles only the policies it brings; a new worker thread compiles the whole set once.
 */
import type { RegistryService } from '../../common/mesh-protocol';
import { CompiledPolicies } from './compiled-set';
import type { OffLoop } from './off-loop';
import { fromWire, toWireSliced, type WirePolicies } from './wire';
import { policyKey, type DesiredPolicy } from './repository';
import { checkBackends } from './route-backends';
import { digestOf, type SetDigest } from './set-digest';

/** Longest the worker may take to compile a whole set (a new thread compiles every policy once). */
const SET_CHECK_DEADLINE_MS = 60_000;

/** Kinds whose policies name Services (checked against the registry's). */
const ROUTING_KINDS: ReadonlySet<string> = new Set(['HTTPRoute', 'GRPCRoute', 'DestinationRule']);

export interface SetCheckJob {
  next: WirePolicies;
  /** The policies the change brings (kind/namespace/name): their routes' Services and FaultInjections are checked. */
  incoming: string[];
  /** The registry's Services; sent only when an incoming policy routes. */
  services?: RegistryService[];
}

/** The worker's side: the sets compiled last, reused. */
export class SetChecker {
  private recent: CompiledPolicies[] = [];

  /** The digest of `job.next` compiled; throws PolicyInvalidError with every problem. */
  check(job: SetCheckJob): SetDigest {
    const [last = CompiledPolicies.EMPTY, ...older] = this.recent;
    const compiled = last.with(fromWire(job.next), ...older);
    if (job.services !== undefined) {
      const incoming = new Set(job.incoming);
      const { routes = [], destinationRules = [], faults = [] } = compiled.set;
      // Routes name FaultInjections in force after the change.
      const faultsAfter = new Set(faults.map((f) => `${f.namespace}/${f.name}`));
      checkBackends(routes.filter((r) => incoming.has(policyKey(r))), job.services, faultsAfter, destinationRules.filter((d) => incoming.has(policyKey(d))));
    }
    this.recent = [compiled, last];
    return digestOf(compiled.set, compiled.index);
  }
}

/** The collector's side: check `next`, the set a change makes, bringing `incoming` (kind/namespace/name, of kinds `kinds`). */
export async function checkOffLoop(
  loop: OffLoop,
  next: readonly DesiredPolicy[],
  incoming: { keys: readonly string[]; kinds: readonly string[] },
  services: () => readonly RegistryService[],
  sliceMs: number,
): Promise<SetDigest> {
  const routes = incoming.kinds.some((k) => ROUTING_KINDS.has(k));
  const wire = await toWireSliced(next, sliceMs);
  const job: SetCheckJob & { kind: string } = { kind: 'check', next: wire, incoming: [...incoming.keys], ...(routes ? { services: [...services()] } : {}) };
  return loop.run<SetDigest>({ ...job }, SET_CHECK_DEADLINE_MS);
}
