/**
 * What the coordinator (sim-mesh.ts, agent-proxy.ts) and its agent processes (agent-worker.ts)
 * say to each other over the fork IPC channel. Times are CLOCK_MONOTONIC ms (timing.ts `now`),
 * the same clock in every process.
 */
import type { KeyPair } from '../../../common/pki';
import type { SimOptions } from './options';

export type WorkerRequest =
  | { op: 'init'; opts: SimOptions; caPem: string; port: number; keys: KeyPair[]; csrs: Array<Array<{ identity: string; csr: string }>> }
  | { op: 'add'; i: number }
  | { op: 'join'; i: number; token: string }
  | { op: 'connect'; i: number }
  | { op: 'disconnect'; i: number }
  | { op: 'certificates'; i: number }
  /** Ask agent i for a whole snapshot; with `costModel`, the worker models it (cost-model.ts). */
  | { op: 'snapshot'; i: number; costModel: boolean }
  | { op: 'watch'; i: number; ip: string }
  /** Once agent i's session has closed (the collector stopped): its first registry frame on the next one. */
  | { op: 'back'; i: number }
  /** Replace agent i's pods at `positions` (mesh-shape.ts, the coordinator does the same), register them; one reply per id. */
  | { op: 'replace'; i: number; positions: number[]; watched: boolean[]; ids: number[] }
  /** This process's share of the mesh's flows per second. */
  | { op: 'flows'; rate: number }
  | { op: 'totals' }
  /** The flow acknowledgement latencies since the last take, and forget them. */
  | { op: 'take-acks' }
  /** How late this process's event loop ran since the last ask (ms; its arrival times are late by as much), and reset. */
  | { op: 'loop-delay' }
  | { op: 'stop' };

/** Sums over one process's agents. */
export interface WorkerTotals {
  bytesIn: number;
  pushBytes: number;
  flowsAcked: number;
  flowsHeld: number;
  csrOk: number;
  csrFailed: number;
  ready: number;
  /** Registry and policies frames received, and the frames whose contents were searched for a watched pod. */
  frames: number;
  searched: number;
}

/** A pod replaced by `replace`: when its register was sent, and the registry frame that carried it. */
export interface Replaced {
  sent: number;
  version: number;
  t: number;
}

export interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

export type WorkerMessage =
  | { type: 'reply'; id: number; result?: unknown; error?: string }
  /** Frames that arrived, flattened: agent index, kind (0 registry, 1 policies), version, time; then registry frame bytes by agent for snapshots. */
  | { type: 'arrivals'; flat: number[] };

export const KIND_REGISTRY = 0;
export const KIND_POLICIES = 1;
