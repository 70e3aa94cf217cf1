/**
 * Destinations the proxy must never open for a pod: the node itself. A pod's connection to any
 * address lands in the proxy (connect4), and the proxy connects from the node — so without this
 * check a pod reaches what only the node should: the agent's own ports on the node's addresses
 * (metrics with every principal and the traffic matrix on :15020, HBONE, admin), and every other
 * service bound to this node's addresses (kubelet's 10250: issue #14) — this node's own addresses
 * are refused on every port, other mesh nodes' on the agent's ports. Loopback and 0.0.0.0 (which
 * the kernel turns into loopback) would be the node's loopback from the proxy; the datapath keeps
 * them direct (the pod's own), and should that change they are refused here too. (The per-pod
 * filters refuse the proxy address's other ports in the kernel already.) A node service pods
 * should reach (a hostPort) is an operator exclusion: `--exclude-cidr`/`--exclude-port`.
 *
 * `isNodeLocalDestination` is the one decision, pure; `NodeAddresses` gathers its inputs.
 * docs/architecture.md "The outbound listener".
 */
import { isIPv4 } from 'node:net';
import * as os from 'node:os';

/**
 * The agent's ports (ztunnel's numbers): admin 15000, outbound 15001, HBONE 15008,
 * metrics and health 15020, DNS 15053. The agent adds the ports it was told to use instead.
 */
export const AGENT_PORTS: readonly number[] = [15000, 15001, 15008, 15020, 15053];

/** AGENT_PORTS and the ports this agent was given (outbound, HBONE, metrics), those that are set. */
export function agentPorts(configured: ReadonlyArray<number | undefined>): ReadonlySet<number> {
  const ports = new Set(AGENT_PORTS);
  for (const p of configured) if (p !== undefined) ports.add(p);
  return ports;
}

export interface NodeLocal {
  /** the node's own addresses (and, when the caller wants them covered, other mesh nodes') */
  addresses: ReadonlySet<string>;
  /** this node's own addresses alone: refused on every port */
  own: ReadonlySet<string>;
  /** the ports the agent serves on those addresses */
  ports: ReadonlySet<number>;
}

/**
 * True when `dst` is the node itself: an unspecified or loopback address on any port (from a pod
 * it can only mean the node's loopback, through the proxy), one of `node.own` on any port, or one
 * of `node.addresses` on one of `node.ports`.
 */
export function isNodeLocalDestination(dst: { ip: string; port: number }, node: NodeLocal): boolean {
  if (isLoopbackOrUnspecified(dst.ip) || node.own.has(dst.ip)) return true;
  return node.ports.has(dst.port) && node.addresses.has(dst.ip);
}

function isLoopbackOrUnspecified(ip: string): boolean {
  if (isIPv4(ip)) return ip.startsWith('127.') || ip.startsWith('0.');
  const v6 = ip.toLowerCase();
  if (v6.startsWith('::ffff:')) return isLoopbackOrUnspecified(v6.slice(7));
  return v6 === '::' || v6 === '::1';
}

const NONE: ReadonlySet<string> = new Set();

/** How long the node's interface addresses are trusted before they are read again. */
const REFRESH_MS = 10_000;

/**
 * This node's addresses (its interfaces, read again at most every 10 s) plus other nodes'
 * (`peers`, e.g. the mesh registry's node addresses), and the agent's ports.
 */
export class NodeAddresses {
  private local: ReadonlySet<string> = new Set();
  private readAt = -Infinity;
  private cached: NodeLocal | undefined;
  private cachedPeers: ReadonlySet<string> | undefined;

  constructor(
    private readonly ports: ReadonlySet<number>,
    private readonly peers: () => ReadonlySet<string> | undefined = () => undefined,
    private readonly interfaces: () => ReturnType<typeof os.networkInterfaces> = os.networkInterfaces,
    private readonly now: () => number = Date.now,
  ) {}

  current(): NodeLocal {
    const t = this.now();
    const peers = this.peers() ?? NONE;
    if (t - this.readAt >= REFRESH_MS) {
      this.local = interfaceAddresses(this.interfaces());
      this.readAt = t;
      this.cached = undefined;
    }
    if (!this.cached || peers !== this.cachedPeers) {
      this.cached = { addresses: new Set([...this.local, ...peers]), own: this.local, ports: this.ports };
      this.cachedPeers = peers;
    }
    return this.cached;
  }
}

function interfaceAddresses(ifs: ReturnType<typeof os.networkInterfaces>): ReadonlySet<string> {
  const out = new Set<string>();
  for (const list of Object.values(ifs)) for (const a of list ?? []) out.add(a.address.replace(/%.*$/, ''));
  return out;
}
