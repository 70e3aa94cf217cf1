/**
 * Part of the Kubernetes API double (./index.ts): what the API server fills in on create that
 * clients rely on — a Pod's service account ("default") and Pending phase, a Service's cluster IP
 * (allocated from 10.96.0.0/12, as kube-apiserver's default service range, unless given or "None").
 */
import type { ResourceType } from './resources';
import { ApiError, type KubeObject } from './store';

function record(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export class CreateDefaults {
  /** Next host offset in 10.96.0.0/12 (10.96.0.1 is the API server's own `kubernetes` Service). */
  private nextServiceIp = 10;
  private readonly usedServiceIps = new Set<string>();

  apply(type: ResourceType, body: unknown): unknown {
    if (type.group !== '') return body;
    if (type.resource === 'pods') return this.pod(record(body));
    if (type.resource === 'services') return this.service(record(body));
    return body;
  }

  /** A deleted Service gives its cluster IP back. */
  released(type: ResourceType, obj: KubeObject): void {
    if (type.group === '' && type.resource === 'services') this.usedServiceIps.delete(String(record(obj.spec).clusterIP));
  }

  private pod(body: Record<string, unknown>): unknown {
    const spec = { ...record(body.spec) };
    if (spec.serviceAccountName === undefined) spec.serviceAccountName = 'default';
    return { ...body, spec, status: { phase: 'Pending', ...record(body.status) } };
  }

  private service(body: Record<string, unknown>): unknown {
    const spec = { ...record(body.spec) };
    if (spec.type === 'ExternalName') return body;
    let ip = spec.clusterIP;
    if (ip === undefined || ip === '') {
      ip = this.allocate();
    } else if (ip !== 'None') {
      if (typeof ip !== 'string' || this.usedServiceIps.has(ip)) {
        throw new ApiError(422, 'Invalid', `Service is invalid: spec.clusterIP: Invalid value: ${JSON.stringify(ip)}: provided IP is already allocated`);
      }
      this.usedServiceIps.add(ip);
    }
    return { ...body, spec: { ...spec, clusterIP: ip, clusterIPs: [ip] } };
  }

  private allocate(): string {
    for (;;) {
      const n = this.nextServiceIp++;
      if (n >= 1 << 20) throw new ApiError(500, 'InternalError', 'the service IP range 10.96.0.0/12 is full');
      const ip = `10.${96 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
      if (!this.usedServiceIps.has(ip)) {
        this.usedServiceIps.add(ip);
        return ip;
      }
    }
  }
}
