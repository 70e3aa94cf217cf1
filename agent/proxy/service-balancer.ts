/**
 * Connection-level balancing among a service's ready endpoints: round robin per service port,
 * so consecutive connections from any pod of this node spread over every ready endpoint. (Request-
 * level balancing and routing rules are the traffic issue's.)
 */
import type { ServiceTarget } from '../mesh/mesh-registry';

export class ServiceBalancer {
  private readonly next = new Map<string, number>();

  /** The endpoint for the next connection; `target` has at least one. */
  pick = (target: ServiceTarget): { ip: string; port: number } => {
    const key = `${target.service.namespace}/${target.service.name}:${target.port}`;
    const i = this.next.get(key) ?? 0;
    this.next.set(key, (i + 1) % 1_000_000_007);
    return target.endpoints[i % target.endpoints.length]!;
  };
}
