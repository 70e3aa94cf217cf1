/**
 * One node's registration as collector replicas share it (a PalisadeRegistration object's `spec`:
 * collector/kubernetes/registrations-share.ts): the node address, whether its agent is connected,
 * and the workloads and services the replica holding its session admitted. Pure, table-tested.
 *
 * A node's agent holds one session at a time, so a node's registration has one writer: the
 * replica of its newest session. Each session has a stamp, `{at, replica}`, set at its hello as a
 * Lamport clock — later than the wall clock and than every stamp this replica has seen for the
 * node — and the newest stamp wins (ties by replica id); `seq` orders one session's changes. The merge is "keep the newest", so
 * replicas that hear the objects in any order, any number of times, hold the same registration.
 */
import { MAX_NODE_WORKLOADS, parseMessage, type ServiceRegistration, type WorkloadRegistration } from '../../common/mesh-protocol';
import { isRecord } from '../../common/record';

export interface Stamp {
  /** Milliseconds since the epoch (a Lamport clock: never behind the wall clock). */
  at: number;
  /** The replica that said it (its registry's random epoch). */
  replica: string;
  /** The session's changes so far: a later share of the same session has a higher one. */
  seq: number;
}

export interface RegistrationShare {
  stamp: Stamp;
  nodeAddress: string;
  online: boolean;
  lastSeen: string;
  workloads: WorkloadRegistration[];
  services: ServiceRegistration[];
}

/** Is `a` newer than `b` (undefined is older than any stamp)? */
export function newer(a: Stamp, b: Stamp | undefined): boolean {
  if (!b) return true;
  if (a.at !== b.at) return a.at > b.at;
  return a.replica !== b.replica ? a.replica > b.replica : a.seq > b.seq;
}

/** The stamp of a new session at `replica`: after the wall clock `now` and after `seen` (the newest stamp known for the node). */
export function nextStamp(now: number, seen: Stamp | undefined, replica: string): Stamp {
  return { at: Math.max(now, (seen?.at ?? 0) + 1), replica, seq: 0 };
}

/** The newest of two shares (`ours` on a tie: the same stamp is the same session). */
export function mergeRegistrations(ours: RegistrationShare | undefined, theirs: RegistrationShare): RegistrationShare {
  return !ours || newer(theirs.stamp, ours.stamp) ? theirs : ours;
}

const ISO = (v: unknown): v is string => typeof v === 'string' && v.length <= 40 && !Number.isNaN(Date.parse(v));
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * A PalisadeRegistration object's `spec` as a share, or one line saying why it is not one (the
 * object is then ignored). The workloads and services are checked with the agent's own `register`
 * message schema: what another replica publishes is held to what an agent may send.
 */
export function checkRegistration(spec: unknown): RegistrationShare | string {
  if (!isRecord(spec)) return 'spec: must be an object';
  const s = spec.stamp;
  if (!isRecord(s) || !Number.isSafeInteger(s.at) || (s.at as number) <= 0 || typeof s.replica !== 'string' || s.replica.length === 0 || s.replica.length > 64 || !Number.isSafeInteger(s.seq) || (s.seq as number) < 0) {
    return 'spec.stamp: must be {at: milliseconds, replica, seq}';
  }
  if (typeof spec.nodeAddress !== 'string' || !IPV4.test(spec.nodeAddress)) return 'spec.nodeAddress: must be an IPv4 address';
  if (typeof spec.online !== 'boolean' || !ISO(spec.lastSeen)) return 'spec.online and spec.lastSeen';
  if (!Array.isArray(spec.workloads) || spec.workloads.length > MAX_NODE_WORKLOADS) return `spec.workloads: must be a list of at most ${MAX_NODE_WORKLOADS}`;
  if (!Array.isArray(spec.services)) return 'spec.services: must be a list';
  try {
    parseMessage(JSON.stringify({ type: 'register', workloads: spec.workloads, services: spec.services }), ['register'], Infinity);
  } catch (err) {
    return `spec: ${(err as Error).message}`;
  }
  return {
    stamp: { at: s.at as number, replica: s.replica, seq: s.seq as number },
    nodeAddress: spec.nodeAddress,
    online: spec.online,
    lastSeen: spec.lastSeen,
    workloads: spec.workloads as WorkloadRegistration[],
    services: spec.services as ServiceRegistration[],
  };
}
