/**
 * Connections balanced at L4 — a Service's virtual IP without a route (agent/proxy/outbound.ts),
 * and a routed connection that is not HTTP, passed through (passthrough.ts) — under the Service's
 * DestinationRule, per connection, node-wide:
 *   - loadBalancer: ROUND_ROBIN (one counter per Service port; also without a rule), RANDOM,
 *     LEAST_REQUEST (Envoy's power of two choices, by connections open now from this node),
 *     consistentHash.useSourceIp (rendezvous hashing of the client pod's address). A hash of a
 *     header, cookie or query parameter cannot be seen at L4: round robin, as Envoy does for a hash
 *     policy that yields nothing (`palisade status` says so for a Service without a route);
 *   - outlier detection: endpoints ejected (ejections.ts, the same state the HTTP path keeps) are
 *     passed over while a healthy one is left and minHealthPercent is met; a connect failure ejects
 *     with backoff and, under outlierDetection, counts as a gateway error towards its consecutive
 *     counts (Envoy's meaning when local-origin errors are not split), so the configured count
 *     ejects for baseEjectionTime;
 *   - connectionPool.tcp.maxConnections: the node's connections to the Service at once.
 * The pick is pure (pickConnection, table-tested); the class holds the counters.
 */
import type { LoadBalancer, OutlierDetection, TrafficPolicy } from '../../common/routes';
import { fnv1a, rendezvous } from './balance';
import { allIndices } from './dispatcher';
import { ejectionsHonoured, type Ejections } from './ejections';

const MAX_SERVICES = 100_000;

/** What a pick reads: the round-robin counter, connections open to an endpoint, a random source. */
export interface L4State {
  /** the next round-robin position of `service` (and moves it on) */
  turn(service: string): number;
  /** connections open now from this node to the endpoint `key` */
  open(key: string): number;
  random(): number;
}

/** The index (of `among`, indices into `keys`) the next connection to `service` goes to under `lb`. Pure but for `s`. */
export function pickConnection(lb: LoadBalancer | undefined, service: string, keys: readonly string[], among: readonly number[], sourceIp: string, s: L4State): number | undefined {
  const n = among.length;
  if (n === 0) return undefined;
  if (lb?.kind === 'RANDOM') return among[Math.floor(s.random() * n)];
  if (lb?.kind === 'HASH' && lb.by === 'source-ip') return rendezvous(fnv1a(sourceIp), keys, among);
  if (lb?.kind === 'LEAST_REQUEST' && n > 1) {
    // two distinct candidates at random, the one with fewer open connections (ties: the first)
    const a = Math.floor(s.random() * n);
    const b = (a + 1 + Math.floor(s.random() * (n - 1))) % n;
    return s.open(keys[among[b]!]!) < s.open(keys[among[a]!]!) ? among[b] : among[a];
  }
  return among[s.turn(service) % n];
}

export interface L4Endpoint {
  readonly ip: string;
  readonly port: number;
}

export const endpointKey = (e: L4Endpoint): string => `${e.ip}:${e.port}`;

export class L4Balancer {
  private readonly turns = new Map<string, number>();
  private readonly openTo = new Map<string, number>();
  private readonly openToService = new Map<string, number>();
  private readonly keys = new WeakMap<readonly L4Endpoint[], readonly string[]>();
  private readonly state: L4State = {
    turn: (service) => {
      const t = this.turns.get(service) ?? 0;
      if (this.turns.size >= MAX_SERVICES && t === 0) this.turns.clear();
      this.turns.set(service, (t + 1) % 1_000_000_007);
      return t;
    },
    open: (key) => this.openTo.get(key) ?? 0,
    random: () => this.random(),
  };

  constructor(
    readonly ejections: Ejections,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * The endpoint of `service` (`namespace/name:port`) for a new connection from `sourceIp`: among
   * `endpoints` not in `tried`, the healthy ones (none, or too few for minHealthPercent: all of them).
   */
  choose<E extends L4Endpoint>(service: string, endpoints: readonly E[], policy: TrafficPolicy | undefined, sourceIp: string, tried?: ReadonlySet<string>): E | undefined {
    const keys = this.keysOf(endpoints);
    if ((tried === undefined || tried.size === 0) && !this.ejections.anyEjected()) {
      // the usual case: every endpoint a candidate, no work per endpoint
      const i = pickConnection(policy?.loadBalancer, service, keys, allIndices(keys.length), sourceIp, this.state);
      return i === undefined ? undefined : endpoints[i];
    }
    const untried: number[] = [];
    const healthy: number[] = [];
    const anyEjected = this.ejections.anyEjected();
    let ejected = 0;
    for (let i = 0; i < keys.length; i++) {
      const out = anyEjected && this.ejections.ejected(keys[i]!);
      if (out) ejected++;
      if (tried?.has(keys[i]!)) continue;
      untried.push(i);
      if (!out) healthy.push(i);
    }
    const od = policy?.outlierDetection;
    const honoured = od === undefined || ejectionsHonoured(keys.length - ejected, keys.length, od.minHealthPercent);
    const i = pickConnection(policy?.loadBalancer, service, keys, healthy.length > 0 && honoured ? healthy : untried, sourceIp, this.state);
    return i === undefined ? undefined : endpoints[i];
  }

  /** The endpoints' keys, made once per endpoint list (the registry's lists are replaced on change, not edited). */
  private keysOf(endpoints: readonly L4Endpoint[]): readonly string[] {
    let keys = this.keys.get(endpoints);
    if (keys === undefined) {
      keys = endpoints.map(endpointKey);
      this.keys.set(endpoints, keys);
    }
    return keys;
  }

  /** A connection to `key` is open: its release (once). */
  opened(key: string): () => void {
    return this.count(this.openTo, key, Infinity)!;
  }

  /** `key` was connected to: readmitted, its failures in a row forgotten. */
  connected(key: string): void {
    this.ejections.answered(key);
  }

  /** `key` could not be connected to (not a refusal by its destination): ejected (ejections.ts). */
  connectFailed(key: string, od: OutlierDetection | undefined, peers: () => readonly string[]): void {
    this.ejections.connectFailed(key, od, od && peers());
  }

  /** A connection to `service` (namespace/name:port) under at most `max` from this node: its release, or undefined. */
  admit(service: string, max: number): (() => void) | undefined {
    return this.count(this.openToService, service, max);
  }

  private count(counts: Map<string, number>, key: string, max: number): (() => void) | undefined {
    const n = counts.get(key) ?? 0;
    if (n >= max) return undefined;
    if (counts.size >= MAX_SERVICES && n === 0) return () => undefined;
    counts.set(key, n + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (counts.get(key) ?? 1) - 1;
      if (left <= 0) counts.delete(key);
      else counts.set(key, left);
    };
  }
}
