/** The simulator's command line, checked once: flags, the smoke preset, the scenario list. */
import * as os from 'node:os';

export const SCENARIOS = ['steady', 'node-join', 'restart-10pct', 'pod-churn', 'policy-change', 'collector-restart'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface SimOptions {
  nodes: number;
  podsPerNode: number;
  identitiesPerNode: number;
  /** Flows per second over the whole mesh. */
  flowRate: number;
  /** How often each agent sends a batch (the reporter flushes every 100 ms). */
  flushMs: number;
  /** Seconds of steady state and of pod churn. */
  durationS: number;
  /** Pods replaced per second in the churn wave, as a fraction of all pods. */
  churnFraction: number;
  policyChanges: number;
  /** In run order (the collector restart last: it resets the registry's versions). */
  scenarios: ScenarioName[];
  smoke: boolean;
  /** Agent processes the simulated agents are spread over (agent-proxy.ts). */
  processes: number;
  /** Where scale-<time>.json goes. */
  out: string;
}

export const DEFAULTS: SimOptions = {
  nodes: 1000,
  podsPerNode: 100,
  identitiesPerNode: 4,
  flowRate: 50_000,
  flushMs: 100,
  durationS: 10,
  churnFraction: 0.01,
  policyChanges: 3,
  scenarios: [...SCENARIOS],
  smoke: false,
  processes: defaultProcesses(os.availableParallelism()),
  out: 'bench/results',
};

/**
 * One agent process per core, at least two: the simulated agents' work (TLS, WebSocket framing) is
 * per frame and parallel, so one process per core lets them use whatever the collector leaves; more
 * processes than cores add a V8 heap and an event loop each and no parallelism.
 */
export function defaultProcesses(cores: number): number {
  return Math.max(2, Math.min(64, cores));
}

/** `--smoke`: what `make test` runs — every scenario, small and short. */
export const SMOKE: Partial<SimOptions> = { nodes: 50, podsPerNode: 4, identitiesPerNode: 1, flowRate: 1_000, durationS: 2, policyChanges: 2, processes: 2 };

const NUMERIC: Record<string, { key: keyof SimOptions; min: number; max: number; integer: boolean }> = {
  '--nodes': { key: 'nodes', min: 2, max: 10_000, integer: true },
  '--pods-per-node': { key: 'podsPerNode', min: 1, max: 200, integer: true },
  '--identities-per-node': { key: 'identitiesPerNode', min: 1, max: 50, integer: true },
  '--flow-rate': { key: 'flowRate', min: 0, max: 1_000_000, integer: true },
  '--flush-ms': { key: 'flushMs', min: 10, max: 10_000, integer: true },
  '--duration': { key: 'durationS', min: 1, max: 3600, integer: false },
  '--churn': { key: 'churnFraction', min: 0, max: 1, integer: false },
  '--policy-changes': { key: 'policyChanges', min: 1, max: 100, integer: true },
  '--processes': { key: 'processes', min: 1, max: 64, integer: true },
};

/** Parse argv (without node and the script); throws one line naming the bad flag. */
export function parseOptions(argv: readonly string[]): SimOptions {
  const given: Partial<SimOptions> = {};
  let smoke = false;
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    if (flag === '--smoke') {
      smoke = true;
      continue;
    }
    const value = argv[k + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    k += 1;
    const numeric = NUMERIC[flag];
    if (numeric) {
      const n = Number(value);
      if (!Number.isFinite(n) || n < numeric.min || n > numeric.max || (numeric.integer && !Number.isInteger(n))) {
        throw new Error(`${flag} must be ${numeric.integer ? 'an integer' : 'a number'} from ${numeric.min} to ${numeric.max}, got ${JSON.stringify(value)}`);
      }
      (given as Record<string, number>)[numeric.key] = n;
    } else if (flag === '--scenarios') {
      const names = value.split(',').filter((s) => s !== '');
      const unknown = names.find((s) => !(SCENARIOS as readonly string[]).includes(s));
      if (unknown !== undefined || names.length === 0) throw new Error(`--scenarios takes a comma-separated list of ${SCENARIOS.join(', ')}; got ${JSON.stringify(unknown ?? value)}`);
      given.scenarios = SCENARIOS.filter((s) => names.includes(s));
    } else if (flag === '--out') {
      given.out = value;
    } else {
      throw new Error(`unknown flag ${JSON.stringify(flag.slice(0, 64))}`);
    }
  }
  return { ...DEFAULTS, ...(smoke ? SMOKE : {}), ...given, smoke };
}
