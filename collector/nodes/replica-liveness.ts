/**
 * Which collector replicas are dead, and so which shared registrations count as offline, as one
 * replica (the observer) judges it from the others' Leases (collector/kubernetes/replica-leases.ts).
 * Pure, table- and property-tested.
 *
 * Each replica renews a Lease (spec.renewTime) every third of its duration. The observer never
 * compares a renewTime with its own clock (replicas' clocks need not agree): it notes, on its own
 * clock, when it saw a Lease's renewTime change, and a replica is dead when that has not happened
 * for the Lease's duration — as Kubernetes' node lifecycle controller judges node Leases. A
 * deleted Lease (a replica's clean shutdown) is dead at once; a replica seen holding nodes without
 * any Lease (its Lease expired and was collected, or it never could write one) is dead once
 * `graceMs` passed since the observer first saw it.
 *
 * The observer judges only while its own view is current: its last renewal succeeded and its
 * watch of the Leases is listed (`currentSince`). Time before that does not count, so a replica
 * cut off from the API — whose watch therefore sees no renewal — marks nobody offline, and after an
 * outage (or at start) every replica gets a full duration to be seen renewing.
 */
import type { ReplicaStatus } from '../../common/control-api';
import type { Stamp } from './registration-share';

/** A replica's Lease as the observer saw it. */
export interface LeaseView {
  /** spec.renewTime as last seen: compared for change only, never read as a clock. */
  renewTime: string;
  durationMs: number;
  /** When (the observer's clock) renewTime was last seen to change, or the Lease first seen. */
  changedAt: number;
}

/** What the observer knows of one replica. */
export interface ReplicaSeen {
  lease: LeaseView | undefined;
  /** Its Lease was deleted (and not created again since). */
  deleted: boolean;
  /** When (the observer's clock) the replica was first seen, by its Lease or by what it holds. */
  firstSeenAt: number;
}

export interface Judgement {
  /** The observer's clock. */
  now: number;
  /** Since when the observer's own view is current; undefined: it is not, and judges nobody. */
  currentSince: number | undefined;
  /** How long a replica seen without a Lease is given. */
  graceMs: number;
}

/** A node another replica holds, as the observer's registry has it. */
export interface HeldNode {
  node: string;
  stamp: Stamp;
  online: boolean;
}

/** `prev` after seeing the Lease with `renewTime` and duration at `now`. */
export function observeLease(prev: LeaseView | undefined, renewTime: string, durationMs: number, now: number): LeaseView {
  if (prev && prev.renewTime === renewTime) return prev.durationMs === durationMs ? prev : { ...prev, durationMs };
  return { renewTime, durationMs, changedAt: now };
}

/** Whether the observer judges at all now: its own view of the API has been current since `currentSince`. */
const judging = (j: Judgement): j is Judgement & { currentSince: number } => j.currentSince !== undefined && j.now >= j.currentSince;

/** Is the replica dead, as the observer judges it now? */
export function replicaDead(seen: ReplicaSeen | undefined, j: Judgement): boolean {
  if (!judging(j)) return false;
  if (!seen) return false; // never seen: nothing to judge (a holder is always seen first: noteHolders)
  if (seen.deleted) return true;
  if (seen.lease) return j.now - Math.max(seen.lease.changedAt, j.currentSince) > seen.lease.durationMs;
  return j.now - Math.max(seen.firstSeenAt, j.currentSince) > j.graceMs;
}

/** `replicas` with every holder of `held` noted as seen (at `now` when first). */
export function noteHolders(replicas: ReadonlyMap<string, ReplicaSeen>, held: readonly HeldNode[], now: number): Map<string, ReplicaSeen> {
  const next = new Map(replicas);
  for (const h of held) if (!next.has(h.stamp.replica)) next.set(h.stamp.replica, { lease: undefined, deleted: false, firstSeenAt: now });
  return next;
}

/**
 * The nodes to mark offline: shown online, held by another replica (`self` is the observer) that
 * is dead. Marking is by stamp, so a node comes back only by a newer write (its agent's new
 * session at any replica, or its holder's own newer share), never by its holder renewing again.
 */
export function offlineNodes(held: readonly HeldNode[], replicas: ReadonlyMap<string, ReplicaSeen>, self: string, j: Judgement): HeldNode[] {
  return held.filter((h) => h.online && h.stamp.replica !== self && replicaDead(replicas.get(h.stamp.replica), j));
}

/**
 * The replicas whose Lease may be deleted: dead for longer than `afterMs` past their Lease's
 * duration (a Lease a killed replica left behind; replica ids are per process, so none renews it
 * again). Deleting one changes no judgement: a replica without a Lease is dead after the grace.
 */
export function leasesToCollect(replicas: ReadonlyMap<string, ReplicaSeen>, self: string, j: Judgement, afterMs: number): string[] {
  const out: string[] = [];
  for (const [replica, seen] of replicas) {
    if (replica === self || !seen.lease || seen.deleted || j.currentSince === undefined) continue;
    if (j.now - Math.max(seen.lease.changedAt, j.currentSince) > seen.lease.durationMs + afterMs) out.push(replica);
  }
  return out;
}

/** What the observer knows of itself, for its own row. */
export interface SelfView {
  replica: string;
  /** When its own last renewal succeeded (its clock; undefined: none yet, no Lease written), and its Lease's duration. */
  renewedAt: number | undefined;
  durationMs: number;
  /** Nodes whose session is at this replica. */
  nodes: number;
}

/**
 * One row per replica known (`palisade status`): the observer first, then the others by id; how it
 * judges each now, and the nodes each holds in its registry (`held`: the others' nodes).
 */
export function replicaRows(replicas: ReadonlyMap<string, ReplicaSeen>, held: readonly HeldNode[], me: SelfView, j: Judgement): ReplicaStatus[] {
  const current = judging(j);
  const own: ReplicaStatus = {
    replica: me.replica,
    self: true,
    lease: me.renewedAt === undefined ? 'none' : 'held',
    ...(me.renewedAt === undefined ? {} : { renewedAgoMs: j.now - me.renewedAt }),
    durationMs: me.durationMs,
    judgement: 'self',
    ...(current ? {} : { why: 'its renewals or its watch of the Leases are failing: it judges nobody' }),
    nodes: me.nodes,
    offline: 0,
  };
  const ids = new Set([...replicas.keys(), ...held.map((h) => h.stamp.replica)]);
  ids.delete(me.replica);
  const rows = [...ids].sort().map((replica): ReplicaStatus => {
    const seen = replicas.get(replica);
    const mine = held.filter((h) => h.stamp.replica === replica);
    const lease = seen?.deleted ? 'deleted' : seen?.lease ? 'held' : 'none';
    const row = {
      replica,
      self: false,
      lease,
      ...(seen?.lease ? { renewedAgoMs: j.now - seen.lease.changedAt, durationMs: seen.lease.durationMs } : {}),
      nodes: mine.length,
      offline: mine.filter((h) => !h.online).length,
    } as const;
    if (!current) return { ...row, judgement: 'not judged', why: 'this replica\'s own view of the API is not current' };
    if (!replicaDead(seen, j)) return { ...row, judgement: 'alive' };
    const why = lease === 'deleted' ? 'its Lease was deleted' : lease === 'held' ? 'its Lease was not renewed within its duration' : 'it holds nodes without a Lease';
    return { ...row, judgement: 'dead', why };
  });
  return [own, ...rows];
}
