/**
 * How big the node's eBPF maps are: set from the agent's limits when they are created, kept from
 * their pins after that. Pure.
 *
 * Pod maps (palisade_pods, palisade_ifaces) hold `--max-pods` entries, default 256: kubelet's
 * default `--max-pods` is 110 and the managed platforms' usual ceilings are 110–250, so 256 fits
 * every default node with headroom, for ~40 KB of kernel memory. A pod beyond it is refused
 * enrollment (./pod-admission.ts), never left outside the mesh. The drop counters get 16 keys a
 * pod (per CPU: ~200 KB a CPU at 256 pods) (a pod and direction rarely meets more than a few of the reasons; a drop with no free key
 * is still dropped, and counted in palisade_stats as `dropUncounted`).
 *
 * Connection maps (palisade_orig_sk, palisade_conns: redirected connections from connect to
 * close; palisade_tcp_in: connections opened to pods) hold as many connections as the proxy may
 * hold on both sides — `--max-connections` + `--max-inbound-connections`, themselves derived
 * from the descriptor limit — within 1,024 .. 131,072 (about 40 MB of kernel memory at the top),
 * or exactly `--kernel-connections`. They are LRU maps: when full, the least recently used entry
 * goes. A redirected connection whose record went before the proxy accepted it is refused by the
 * proxy (`no-original-destination`), and a connection to a pod whose record went has its replies
 * dropped and counted (`tcp-no-connection`): the mesh fails closed, never open.
 */

import { invalidArgument } from '../../common/errors';

export interface MapLimits {
  /** pods the node enrolls at most */
  pods: number;
  /** entries of each connection map */
  connections: number;
}

export const DEFAULT_MAX_PODS = 256;
export const MAX_PODS_LIMIT = 4096;
export const DROP_KEYS_PER_POD = 16;
export const MIN_KERNEL_CONNECTIONS = 1024;
export const DEFAULT_MAX_KERNEL_CONNECTIONS = 131_072;
export const KERNEL_CONNECTIONS_LIMIT = 1 << 22;

/** Without limits from the agent (a data path installed on its own): the default pods, the objects' own connections. */
export const DEFAULT_MAP_LIMITS: MapLimits = { pods: DEFAULT_MAX_PODS, connections: 65_536 };

/** max_entries by map name for these limits; maps it does not name keep the object's size. */
export function mapSizes(l: MapLimits): Record<string, number> {
  const dropKeys = l.pods * DROP_KEYS_PER_POD;
  return {
    palisade_pods: l.pods,
    palisade_ifaces: l.pods,
    palisade_drops: dropKeys,
    palisade_drops_seen: dropKeys,
    palisade_drops_v6: l.pods * 2,
    palisade_orig_sk: l.connections,
    palisade_conns: l.connections,
    palisade_tcp_in: l.connections,
  };
}

/** The limits from `--max-pods` and `--kernel-connections` (each optional), checked; the proxy's caps size the rest. */
export function mapLimitSettings(maxPods: number | undefined, explicitConnections: number | undefined, caps: { outbound: number; inbound: number }): MapLimits {
  if (maxPods !== undefined && !(Number.isInteger(maxPods) && maxPods >= 1 && maxPods <= MAX_PODS_LIMIT)) {
    throw invalidArgument(`--max-pods must be a whole number from 1 to ${MAX_PODS_LIMIT}, got ${maxPods}`);
  }
  if (explicitConnections !== undefined && !(Number.isInteger(explicitConnections) && explicitConnections >= 1 && explicitConnections <= KERNEL_CONNECTIONS_LIMIT)) {
    throw invalidArgument(`--kernel-connections must be a whole number from 1 to ${KERNEL_CONNECTIONS_LIMIT}, got ${explicitConnections}`);
  }
  return { pods: maxPods ?? DEFAULT_MAX_PODS, connections: kernelConnections(caps, explicitConnections) };
}

/** Connection map entries for the proxy's caps, or `explicit` (`--kernel-connections`). */
export function kernelConnections(caps: { outbound: number; inbound: number }, explicit?: number): number {
  if (explicit !== undefined) return explicit;
  return Math.min(DEFAULT_MAX_KERNEL_CONNECTIONS, Math.max(MIN_KERNEL_CONNECTIONS, caps.outbound + caps.inbound));
}

/** A map whose pin keeps another size than the limits ask for. */
export interface KeptSize {
  map: string;
  pinned: number;
  wanted: number;
}

/**
 * The sizes to load with when some maps are pinned already: a pin is reused as it is (running
 * programs and in-flight connections use it), so its size stays until `palisade agent uninstall`.
 */
export function withPinnedSizes(wanted: Readonly<Record<string, number>>, pinned: ReadonlyMap<string, number>): { sizes: Record<string, number>; kept: KeptSize[] } {
  const sizes: Record<string, number> = { ...wanted };
  const kept: KeptSize[] = [];
  for (const [map, size] of pinned) {
    if (size <= 0) continue; // socket storage (palisade_dns_sk) has no size
    const want = wanted[map];
    if (want !== undefined && want !== size) kept.push({ map, pinned: size, wanted: want });
    sizes[map] = size;
  }
  return { sizes, kept };
}
