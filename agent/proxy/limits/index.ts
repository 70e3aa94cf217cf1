/**
 * The proxy's resource limits, built once per agent from its options and its descriptor limit:
 * connection caps (per side, per source pod), the sniff budget, idle timeouts of spliced L4
 * connections, and the refusal log every listener reports its refusals to. The README's
 * "Limits" section says what each default is and why; docs/architecture.md "Limits and refusals".
 */
import type { FlowSink } from '../../../common/flow';
import type { Logger } from '../../../common/log';
import { invalidArgument } from '../../../common/errors';
import { DEFAULT_HALF_CLOSED_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, type SpliceTimeouts } from '../pipe';
import { RefusalLog } from '../refusals';
import { ConnectionLimits } from './connection-limits';
import { capsForFdLimit, perPodCap, processFdLimit, type ConnectionCaps } from './fd-budget';
import { DEFAULT_SNIFF_BUDGET_BYTES, SniffBudget } from './sniff-budget';

export { ConnectionLimits } from './connection-limits';
export { SniffBudget } from './sniff-budget';

export interface ProxyLimitOptions {
  /** connections one source pod may hold (default: a quarter of the outbound cap) */
  maxConnectionsPerPod?: number;
  /** connections this node's pods may hold together (default: from the descriptor limit) */
  maxConnections?: number;
  /** HBONE streams from other nodes this node serves at once (default: from the descriptor limit) */
  maxInboundConnections?: number;
  /** bytes held at once while reading clients' first bytes (default 16 MiB) */
  sniffBudgetBytes?: number;
  idleTimeoutMs?: number;
  halfClosedTimeoutMs?: number;
  /** how often refusals beyond the first of a kind are summarized (default 10 s) */
  refusalIntervalMs?: number;
}

export interface ProxyLimits {
  connections: ConnectionLimits;
  sniff: SniffBudget;
  timeouts: SpliceTimeouts;
  refusals: RefusalLog;
}

/** The limits in force: the options given, the rest derived from the descriptor limit. */
export interface ProxyLimitSettings {
  fdLimit: number;
  connections: ConnectionCaps;
  sniffBudgetBytes: number;
  timeouts: SpliceTimeouts;
  refusalIntervalMs: number | undefined;
}

/** When the descriptor limit cannot be read (not Linux): the common default soft limit. */
const FALLBACK_FD_LIMIT = 1024;

/**
 * Check the options and settle every limit; PALISADE_ERR_INVALID_ARGUMENT for a bad option or a
 * descriptor limit too low to serve anyone. Pure but for reading the limit when not given.
 */
export function proxyLimitSettings(opts: ProxyLimitOptions, fdLimit = processFdLimit() ?? FALLBACK_FD_LIMIT): ProxyLimitSettings {
  for (const [flag, v] of [
    ['--max-connections-per-pod', opts.maxConnectionsPerPod],
    ['--max-connections', opts.maxConnections],
    ['--max-inbound-connections', opts.maxInboundConnections],
    ['--sniff-budget', opts.sniffBudgetBytes],
  ] as const) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw invalidArgument(`${flag} must be a whole number of at least 1, got ${v}`);
  }
  for (const [flag, v] of [
    ['--idle-timeout', opts.idleTimeoutMs],
    ['--half-closed-timeout', opts.halfClosedTimeoutMs],
    ['--refusal-summary-interval', opts.refusalIntervalMs],
  ] as const) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw invalidArgument(`${flag} must be a duration, got ${v}`);
  }
  if (opts.refusalIntervalMs === 0) throw invalidArgument('--refusal-summary-interval must be more than zero');
  const derived = capsForFdLimit(fdLimit);
  const outbound = opts.maxConnections ?? derived.outbound;
  return {
    fdLimit,
    connections: {
      outbound,
      inbound: opts.maxInboundConnections ?? derived.inbound,
      perPod: opts.maxConnectionsPerPod ?? perPodCap(outbound),
    },
    sniffBudgetBytes: opts.sniffBudgetBytes ?? DEFAULT_SNIFF_BUDGET_BYTES,
    timeouts: {
      idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      halfClosedTimeoutMs: opts.halfClosedTimeoutMs ?? DEFAULT_HALF_CLOSED_TIMEOUT_MS,
    },
    refusalIntervalMs: opts.refusalIntervalMs,
  };
}

/**
 * The limits' working parts. (The agent says what is in force in its ready line; here only a
 * warning when caps given by flags need more descriptors than the agent may open.)
 */
export function createProxyLimits(settings: ProxyLimitSettings, deps: { node: string; flows: FlowSink; log: Logger }): ProxyLimits {
  const { fdLimit, connections: caps, timeouts } = settings;
  const sniff = new SniffBudget(settings.sniffBudgetBytes);
  if (caps.inbound + 2 * caps.outbound > fdLimit) {
    deps.log.warn({ fdLimit, connections: caps }, 'the connection caps need more descriptors than the agent may open: raise ulimit -n or lower the caps');
  }
  return {
    connections: new ConnectionLimits(caps),
    sniff,
    timeouts,
    refusals: new RefusalLog({ node: deps.node, flows: deps.flows, log: deps.log, ...(settings.refusalIntervalMs ? { intervalMs: settings.refusalIntervalMs } : {}) }),
  };
}
