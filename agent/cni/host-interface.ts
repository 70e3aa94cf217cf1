/** The pod's host-side interface, read from the previous plugins' CNI result (pure, table-tested). */
import type { CniSandbox } from './protocol';

/**
 * The interface on the host that leads to the pod: the nearest interface outside the pod listed
 * before the pod's own one. That is how the main plugins list a veth pair — `bridge`: bridge,
 * host veth, pod interface; `ptp`, Calico, Cilium: host veth, pod interface. Undefined when the
 * result does not say (the data path then finds it from the pod's side).
 */
export function hostInterfaceOf(sandbox: Pick<CniSandbox, 'interfaces' | 'ips' | 'ifName'>): string | undefined {
  const list = sandbox.interfaces;
  const podName = sandbox.ips.find((ip) => ip.interface !== undefined)?.interface ?? sandbox.ifName;
  const pod = list.findIndex((i) => i.sandbox !== undefined && i.name === podName);
  if (pod <= 0) return undefined;
  // Only the entry just before counts: a bridge, listed before it, is never the pod's own link.
  const before = list[pod - 1]!;
  return before.sandbox === undefined ? before.name : undefined;
}
