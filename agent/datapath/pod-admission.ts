/**
 * Whether one more pod fits the node's pod maps (palisade_pods, palisade_ifaces: `--max-pods`).
 * A pod already enrolled always fits (its update reuses its entry). Pure.
 */
import { PalisadeError } from '../../common/errors';

/** A pod refused enrollment because the node's pod maps are full; its interface is held (no network through the node). */
export class NodeFullError extends PalisadeError {
  constructor(
    message: string,
    /** the held host-side interface */
    readonly ifindex: number,
  ) {
    super('PALISADE_ERR_NODE_FULL', message);
  }
}

/** The one line a pod refused for want of room gets (the CNI ADD's error, the log, the flow's reason text). */
export function podAdmission(p: { enrolled: boolean; inUse: number; capacity: number }): string | undefined {
  if (p.enrolled || p.inUse < p.capacity) return undefined;
  return `the node is full: ${p.inUse} of ${p.capacity} pods enrolled (--max-pods ${p.capacity})`;
}

/** The flow reason and refusal counter of a pod refused for want of room. */
export const NODE_FULL_REASON = 'node-pods-full';
