/**
 * Destinations on the node itself. connect4 sends a pod's connection to any address through the
 * proxy, including the node's own addresses (kubelet's 10250, the agent's 15020): the proxy would
 * then open it from the node, which reaches services bound to the node that pods must not reach.
 * The outbound listener refuses those (the per-pod filters already refuse the proxy address's
 * other ports in the kernel).
 */
import * as os from 'node:os';

/** The node's own addresses (every interface of the agent's namespace), re-read at most every `ttlMs`. */
export class NodeAddresses {
  private addresses = new Set<string>();
  private readAt = -Infinity;

  constructor(
    private readonly ttlMs = 5000,
    private readonly list: () => string[] = () => Object.values(os.networkInterfaces()).flatMap((ifs) => (ifs ?? []).map((i) => i.address)),
  ) {}

  has(ip: string, now = Date.now()): boolean {
    if (now - this.readAt > this.ttlMs) {
      this.addresses = new Set(this.list());
      this.readAt = now;
    }
    return this.addresses.has(ip);
  }
}

/** Whether a redirected connection's original destination is the node itself (pure). */
export function isNodeLocalDestination(ip: string, node: { has(ip: string): boolean }): boolean {
  return ip === '0.0.0.0' || ip.startsWith('127.') || node.has(ip);
}
