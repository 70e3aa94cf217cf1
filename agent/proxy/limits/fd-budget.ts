/**
 * How many connections the proxy may hold, from the process's file descriptor limit (`ulimit -n`):
 * a connection the proxy cannot accept for want of a descriptor fails for every pod at once
 * (EMFILE), so the caps must bind first, and one pod must not be able to take them all.
 *
 *   reserved   128 + 5 % of the limit: the agent itself — listeners, eBPF maps and links, the
 *              collector session, HBONE sessions to peer nodes, metrics scrapes, DNS, logs;
 *   inbound    25 % of the rest, as connections: HBONE streams from other nodes to this node's pods
 *              (one descriptor each, to the pod) and the peers' sessions they arrive on;
 *   outbound   the rest, at two descriptors a connection (the pod's, and the upstream's: the pod on
 *              this node, the host outside the mesh; an HBONE stream shares its session's);
 *   per pod    a quarter of the outbound connections, so it takes at least four pods to exhaust
 *              them; the same cap applies per source pod on the inbound side.
 *
 * With 1,048,576 descriptors (the usual container limit) that is 373,507 outbound connections,
 * 93,376 per pod; with 1,200 (the tests'), 379 and 94.
 */
import * as fs from 'node:fs';
import { invalidArgument } from '../../../common/errors';

export interface ConnectionCaps {
  /** connections from this node's pods (outbound, same-node and egress) */
  outbound: number;
  /** HBONE streams from other nodes to this node's pods */
  inbound: number;
  /** connections one source pod may hold, on either side */
  perPod: number;
}

/** Below this the caps would leave too little to serve anyone. */
export const MIN_FD_LIMIT = 256;
const RESERVED_BASE = 128;
const RESERVED_SHARE = 0.05;
const INBOUND_SHARE = 0.25;
const PER_POD_SHARE = 0.25;

/** The caps for a descriptor limit; PALISADE_ERR_INVALID_ARGUMENT below MIN_FD_LIMIT. */
export function capsForFdLimit(fdLimit: number): ConnectionCaps {
  if (!Number.isSafeInteger(fdLimit) || fdLimit < MIN_FD_LIMIT) {
    throw invalidArgument(`the agent needs a file descriptor limit of at least ${MIN_FD_LIMIT} (ulimit -n), it has ${fdLimit}`);
  }
  const reserved = RESERVED_BASE + Math.ceil(fdLimit * RESERVED_SHARE);
  const rest = fdLimit - reserved;
  const inbound = Math.floor(rest * INBOUND_SHARE);
  const outbound = Math.floor((rest - inbound) / 2);
  return { outbound, inbound, perPod: perPodCap(outbound) };
}

/** A source pod's share of an outbound cap. */
export function perPodCap(outbound: number): number {
  return Math.max(1, Math.floor(outbound * PER_POD_SHARE));
}

/** The soft `Max open files` of /proc/self/limits (`unlimited` as 2^20); undefined when unreadable. */
export function parseFdLimit(limits: string): number | undefined {
  const m = /^Max open files\s+(\S+)/m.exec(limits);
  if (!m) return undefined;
  if (m[1] === 'unlimited') return 1 << 20;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** This process's descriptor limit now (Node raises the soft limit to the hard one at start). */
export function processFdLimit(): number | undefined {
  try {
    return parseFdLimit(fs.readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}
