/**
 * Connection-level balancing among a service's ready endpoints: round robin per service port,
 * so consecutive connections from any pod of this node spread over every ready endpoint. A
 * DestinationRule's loadBalancer applies per connection here (a connection is not HTTP on this
 * path): RANDOM, a consistent hash of the client pod's address (useSourceIp); ROUND_ROBIN,
 * LEAST_REQUEST and hashes of request parts (no request here) keep round robin. Its
 * connectionPool's tcp.maxConnections bounds the connections to the Service from this node.
 */
import type { ServiceTarget } from '../mesh/mesh-registry';
import type { LoadBalancer } from '../../common/routes';
import { fnv1a, rendezvous } from '../traffic/balance';

const MAX_SERVICES = 100_000;

export class ServiceBalancer {
  private readonly next = new Map<string, number>();
  private readonly open = new Map<string, number>();

  /** The endpoint for the next connection; `target` has at least one. */
  pick = (target: ServiceTarget, lb?: LoadBalancer, sourceIp?: string): { ip: string; port: number } => {
    const eps = target.endpoints;
    if (lb?.kind === 'RANDOM') return eps[Math.floor(Math.random() * eps.length)]!;
    if (lb?.kind === 'HASH' && lb.by === 'source-ip' && sourceIp !== undefined) {
      const keys = eps.map((e) => `${e.ip}:${e.port}`);
      return eps[rendezvous(fnv1a(sourceIp), keys, keys.map((_, i) => i))!]!;
    }
    const key = `${target.service.namespace}/${target.service.name}:${target.port}`;
    const i = this.next.get(key) ?? 0;
    this.next.set(key, (i + 1) % 1_000_000_007);
    return eps[i % eps.length]!;
  };

  /** A connection to `service` (namespace/name:port) under at most `max` from this node: its release, or undefined. */
  admit(service: string, max: number): (() => void) | undefined {
    const n = this.open.get(service) ?? 0;
    if (n >= max) return undefined;
    if (this.open.size >= MAX_SERVICES && n === 0) return () => undefined;
    this.open.set(service, n + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.open.get(service) ?? 1) - 1;
      if (left <= 0) this.open.delete(service);
      else this.open.set(service, left);
    };
  }
}
