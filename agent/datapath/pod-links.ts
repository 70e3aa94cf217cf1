/**
 * A pod's host-side interface: where its per-pod filters hang. Given (the workloads file's
 * `interface:`, later the CNI result) or derived: the veth in the pod's namespace whose peer
 * (`iflink`) is an interface of the agent's namespace pointing back at it. Either way both ends
 * must point at each other, so a wrong name never puts one pod's rules on another pod's wire.
 */
import { PalisadeError, describeCause } from '../../common/errors';
import { native, type NetLink } from '../../native';

export interface PodLink {
  /** ifindex of the host side, in the agent's namespace */
  hostIfindex: number;
  hostName: string;
  /** the pod side's name in its namespace (eth0) */
  podName: string;
  /** the pod side's MAC: the only Ethernet source its frames may carry */
  podMac: Buffer;
}

/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace. */
export const INTERFACE_NAME = /^[A-Za-z0-9_.@-]{1,15}$/;

function isVeth(l: NetLink): boolean {
  return l.kind === 'veth' && l.mac !== null && l.link > 0;
}

/** Both ends of a veth pair, each naming the other. */
function pairedWith(pod: NetLink, host: NetLink): boolean {
  return isVeth(pod) && isVeth(host) && pod.link === host.ifindex && host.link === pod.ifindex;
}

/**
 * The pod's host-side interface among the links of both namespaces (pure). `hostName`: the one
 * the caller says; without it the only veth of the pod paired with one of ours (eth0 if several).
 */
export function choosePodLink(podLinks: readonly NetLink[], hostLinks: readonly NetLink[], hostName?: string): PodLink | { problem: string } {
  const link = (pod: NetLink, host: NetLink): PodLink => ({ hostIfindex: host.ifindex, hostName: host.name, podName: pod.name, podMac: pod.mac! });
  if (hostName !== undefined) {
    const host = hostLinks.find((h) => h.name === hostName);
    if (!host) return { problem: `interface ${JSON.stringify(hostName)} is not in the agent's network namespace` };
    if (!isVeth(host)) return { problem: `interface ${JSON.stringify(hostName)} is not a veth (${host.kind || 'no kind'})` };
    const pod = podLinks.find((p) => pairedWith(p, host));
    if (!pod) return { problem: `interface ${JSON.stringify(hostName)} is not the peer of an interface in the pod's namespace` };
    return link(pod, host);
  }
  const pairs: Array<[NetLink, NetLink]> = [];
  for (const pod of podLinks) {
    const host = hostLinks.find((h) => pairedWith(pod, h));
    if (host) pairs.push([pod, host]);
  }
  if (pairs.length === 1) return link(...pairs[0]!);
  const eth0 = pairs.find(([pod]) => pod.name === 'eth0');
  if (eth0) return link(...eth0);
  if (pairs.length === 0) {
    return { problem: "no veth of the pod's namespace has its peer in the agent's network namespace (give its host-side interface as \"interface\")" };
  }
  return { problem: `the pod has several veths into the agent's namespace (${pairs.map(([p]) => p.name).join(', ')}): give its host-side interface as "interface"` };
}

/** Find the host-side interface of the pod in `netnsPath`; throws a one-line PALISADE_ERR_NETNS. */
export function resolvePodLink(netnsPath: string, hostName?: string): PodLink {
  let podLinks: NetLink[];
  let hostLinks: NetLink[];
  try {
    podLinks = native.netLinks(netnsPath);
    hostLinks = native.netLinks(null);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_NETNS', `cannot list the interfaces of netns ${netnsPath}: ${describeCause(err)}`, { cause: err });
  }
  const r = choosePodLink(podLinks, hostLinks, hostName);
  if ('problem' in r) throw new PalisadeError('PALISADE_ERR_NETNS', `netns ${netnsPath}: ${r.problem}`);
  return r;
}
