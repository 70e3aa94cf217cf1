/**
 * The mesh's services as the registry pushes them (pure, table-tested): Kubernetes Services (with
 * their EndpointSlices already joined, ./kubernetes/services-watch.ts) as they are, and services
 * nodes declare in their workloads files, whose endpoints are the registry's workloads of the
 * service's namespace that carry every label of its selector (ready while their node is online).
 * A name or a virtual IP and port claimed twice goes to the first claim (Kubernetes, then nodes by
 * name); the later claim is refused with one line for its node.
 */
import type { RegistryEndpoint, RegistryService, RegistryWorkload, ServiceRegistration } from '../common/mesh-protocol';

export interface ResolvedServices {
  services: RegistryService[];
  /** One line per refused declaration, by the node that made it. */
  refused: Map<string, string[]>;
}

export function resolveServices(
  declared: ReadonlyMap<string, readonly ServiceRegistration[]>,
  kube: readonly RegistryService[],
  workloads: readonly RegistryWorkload[],
  online: (node: string) => boolean,
): ResolvedServices {
  const byName = new Map<string, { service: RegistryService; from: string; spec?: string }>();
  const vipPorts = new Map<string, string>();
  const refused = new Map<string, string[]>();
  const refuse = (node: string, line: string): void => void (refused.get(node) ?? refused.set(node, []).get(node)!).push(line);
  const claimVips = (s: { namespace: string; name: string; vips: string[]; ports: Array<{ port: number }> }): string | undefined => {
    const id = `${s.namespace}/${s.name}`;
    for (const vip of s.vips) for (const p of s.ports) {
      const owner = vipPorts.get(`${vip}:${p.port}`);
      if (owner !== undefined && owner !== id) return `${vip}:${p.port} is already the address of service ${owner}`;
    }
    for (const vip of s.vips) for (const p of s.ports) vipPorts.set(`${vip}:${p.port}`, id);
    return undefined;
  };
  for (const s of kube) {
    if (claimVips(s) !== undefined) continue; // the API server gives out cluster IPs once
    byName.set(`${s.namespace}/${s.name}`, { service: s, from: 'kubernetes' });
  }
  for (const node of [...declared.keys()].sort()) {
    for (const d of declared.get(node)!) {
      const id = `${d.namespace}/${d.name}`;
      const spec = JSON.stringify([d.vips, d.ports, Object.entries(d.selector).sort()]);
      const known = byName.get(id);
      if (known) {
        if (known.spec === spec) continue; // the same declaration from another node
        refuse(node, `service ${id}: ${known.from === 'kubernetes' ? 'Kubernetes has a Service of that name' : `declared differently by node ${known.from}`}`);
        continue;
      }
      const clash = claimVips(d);
      if (clash !== undefined) {
        refuse(node, `service ${id}: ${clash}`);
        continue;
      }
      const targetPorts = d.ports.map((p) => p.targetPort);
      const endpoints: RegistryEndpoint[] = workloads
        .filter((w) => w.namespace === d.namespace && selects(d.selector, w.labels))
        .map((w) => ({ ip: w.ip, ready: online(w.node), targetPorts }))
        // By address, whichever node registered first: the same workloads give the same snapshot.
        .sort(byIp);
      const service: RegistryService = { namespace: d.namespace, name: d.name, vips: [...d.vips], ports: d.ports.map((p) => ({ name: p.name, port: p.port })), endpoints };
      byName.set(id, { service, from: node, spec });
    }
  }
  const services = [...byName.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v.service);
  return { services, refused };
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector)) if (!Object.prototype.hasOwnProperty.call(labels, k) || labels[k] !== v) return false;
  return true;
}

/** Order by IPv4 address (workloads, endpoints). */
export function byIp(a: { ip: string }, b: { ip: string }): number {
  return ipv4Number(a.ip) - ipv4Number(b.ip);
}

/** A dotted IPv4 address as a number (no split and no array per comparison: a snapshot sorts 100,000 of them). */
function ipv4Number(ip: string): number {
  let acc = 0;
  let octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      acc = acc * 256 + octet;
      octet = 0;
    } else if (c >= 48 && c <= 57) octet = octet * 10 + (c - 48);
    else return NaN; // as Number() of a part that is not digits
  }
  return acc * 256 + octet;
}
