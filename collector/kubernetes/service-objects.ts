/**
 * A Kubernetes Service and its EndpointSlices as one mesh service (pure, table-tested): the cluster
 * IPs (IPv4), the TCP ports, and each endpoint's address with where each service port goes on it
 * (the slice's port of the same name). An endpoint whose `ready` condition is unset counts as ready
 * (the EndpointSlice API's rule); headless and ExternalName services have no virtual IP and are
 * left out.
 */
import { isIPv4 } from 'node:net';
import { MAX_SERVICE_ENDPOINTS, MAX_SERVICE_PORTS, MAX_SERVICE_VIPS, type RegistryEndpoint, type RegistryService } from '../../common/mesh-protocol';

/** The fields of a Service (client-node's V1Service) read here. */
export interface ServiceObject {
  metadata?: { namespace?: string; name?: string };
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: Array<{ name?: string; port?: number; protocol?: string; targetPort?: number | string }>;
  };
}

/** The fields of an EndpointSlice (client-node's V1EndpointSlice) read here. */
export interface EndpointSliceObject {
  metadata?: { namespace?: string; name?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean | null } }>;
  ports?: Array<{ name?: string | null; port?: number | null; protocol?: string | null }>;
}

/** The label joining an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export function serviceFromObjects(svc: ServiceObject, slices: readonly EndpointSliceObject[]): RegistryService | undefined {
  const namespace = svc.metadata?.namespace;
  const name = svc.metadata?.name;
  const spec = svc.spec;
  if (!namespace || !name || !spec || spec.type === 'ExternalName') return undefined;
  const vips = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter((ip) => isIPv4(ip)).slice(0, MAX_SERVICE_VIPS);
  if (vips.length === 0) return undefined;
  const servicePorts = (spec.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP' && Number.isInteger(p.port)).slice(0, MAX_SERVICE_PORTS);
  if (servicePorts.length === 0) return undefined;
  const ports = servicePorts.map((p) => ({ name: p.name ?? '', port: p.port! }));
  const endpoints = new Map<string, RegistryEndpoint>();
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4') continue;
    const byName = new Map((slice.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP' && Number.isInteger(p.port)).map((p) => [p.name ?? '', p.port!]));
    const targetPorts = servicePorts.map((p) => byName.get(p.name ?? '') ?? (typeof p.targetPort === 'number' ? p.targetPort : undefined));
    if (targetPorts.some((t) => t === undefined)) continue; // the slice does not say where a port goes
    for (const e of slice.endpoints ?? []) {
      const ready = e.conditions?.ready !== false;
      for (const ip of e.addresses ?? []) {
        if (!isIPv4(ip) || endpoints.has(ip) || endpoints.size >= MAX_SERVICE_ENDPOINTS) continue;
        endpoints.set(ip, { ip, ready, targetPorts: targetPorts as number[] });
      }
    }
  }
  return { namespace, name, vips, ports, endpoints: [...endpoints.values()].sort((a, b) => ipNumber(a.ip) - ipNumber(b.ip)) };
}

function ipNumber(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}
