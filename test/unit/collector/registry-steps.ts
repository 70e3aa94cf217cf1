/**
 * Random registry changes for the registry's property tests (registry-deltas, registry-restart):
 * nodes coming online at new addresses, going offline, revoked; registrations that add, relabel,
 * move and drop workloads and declare services, some refused; Kubernetes Services changing — and
 * how an agent takes the frames (as CollectorClient does).
 */
import { MeshRegistry } from '../../../agent/mesh/mesh-registry';
import { MAX_COLLECTOR_FRAME_BYTES, NODE_REPLIES, parseMessage, type RegistryService, type ServiceRegistration, type WorkloadRegistration } from '../../../common/mesh-protocol';
import type { WorkloadRegistry } from '../../../collector/registry';
import type { Rng } from '../../harness/random';

export const NODES = ['node-a', 'node-b', 'node-c', 'node-d'];
export const ADDRESSES = ['192.168.0.1', '192.168.0.2', '192.168.0.3', '192.168.0.4', '192.168.0.5'];
const NAMES = ['web', 'api', 'db', 'cache', 'queue', 'auth'];
export const FIXED_NOW = new Date('2026-12-07T05:00:00.000Z');

/** Deliver frames to an agent's registry as CollectorClient does: snapshot → replace, delta → apply if it follows. */
export function deliver(agent: MeshRegistry, frame: string): boolean {
  const m = parseMessage(frame, NODE_REPLIES, MAX_COLLECTOR_FRAME_BYTES);
  if (m.type === 'registry') {
    const { type: _t, ...snapshot } = m;
    agent.replace(snapshot);
    return true;
  }
  if (m.type !== 'registry-delta') throw new Error(`unexpected ${m.type}`);
  return agent.apply(m);
}

export function randomWorkloads(rng: Rng): WorkloadRegistration[] {
  const out: WorkloadRegistration[] = [];
  for (let i = rng.int(6); i > 0; i--) {
    out.push({
      name: `${rng.pick(NAMES)}-${rng.int(3)}`,
      namespace: rng.pick(['default', 'shop']),
      serviceAccount: rng.pick(['web', 'api']),
      // a small pool: IPs collide across nodes (refused) and move between registrations
      ip: `10.1.0.${1 + rng.int(12)}`,
      labels: rng.chance(0.5) ? { app: rng.pick(NAMES) } : { app: rng.pick(NAMES), tier: rng.pick(['a', 'b']) },
    });
  }
  return out;
}

/** Declarations nodes pick from: the same one twice is one service; `web` declared differently, or a taken name or address, is refused. */
export const DECLARED: ServiceRegistration[] = [
  { namespace: 'default', name: 'web', vips: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }], selector: { app: 'web' } },
  { namespace: 'default', name: 'web', vips: ['10.96.0.11'], ports: [{ name: 'http', port: 80, targetPort: 8081 }], selector: { app: 'web' } },
  {
    namespace: 'shop',
    name: 'api',
    vips: ['10.96.0.20'],
    ports: [
      { name: 'http', port: 80, targetPort: 8080 },
      { name: 'admin', port: 9000, targetPort: 9090 },
    ],
    selector: { app: 'api', tier: 'a' },
  },
  { namespace: 'default', name: 'cache', vips: ['10.96.0.1'], ports: [{ name: '', port: 443, targetPort: 6379 }], selector: { app: 'cache' } },
  { namespace: 'default', name: 'db', vips: ['10.96.0.30'], ports: [{ name: '', port: 5432, targetPort: 5432 }], selector: { app: 'db' } },
];

function randomDeclared(rng: Rng): ServiceRegistration[] {
  return rng.chance(0.4) ? [] : DECLARED.filter(() => rng.chance(0.35));
}

/** Kubernetes Services as the watch gives them (some clash with declarations by name or address). */
function randomKube(rng: Rng): RegistryService[] {
  const endpoints = (): RegistryService['endpoints'] => Array.from({ length: rng.int(3) }, () => ({ ip: `10.2.0.${1 + rng.int(9)}`, ready: rng.chance(0.7), targetPorts: [8443] }));
  const pool: RegistryService[] = [
    { namespace: 'default', name: 'kubernetes', vips: ['10.96.0.1'], ports: [{ name: 'https', port: 443 }], endpoints: endpoints() },
    { namespace: 'default', name: 'web', vips: ['10.96.0.12'], ports: [{ name: 'http', port: 80 }], endpoints: endpoints() },
    { namespace: 'kube-system', name: 'metrics', vips: ['10.96.0.50'], ports: [{ name: '', port: 8443 }], endpoints: endpoints() },
    // takes over another service's address now and then (the first claim wins)
    { namespace: 'kube-system', name: 'dns', vips: [rng.pick(['10.96.0.53', '10.96.0.50', '10.96.0.20'])], ports: [{ name: '', port: rng.pick([8443, 80, 53]) }], endpoints: endpoints() },
  ];
  return pool.filter(() => rng.chance(0.5));
}

/** One random change to the registry (some are no-ops and produce no delta). */
export function step(rng: Rng, registry: WorkloadRegistry, online: Set<string>): void {
  const node = rng.pick(NODES);
  const r = rng.int(11);
  if (r === 10) {
    registry.setKubernetesServices(randomKube(rng));
  } else if (r < 2) {
    registry.nodeOnline(node, rng.pick(ADDRESSES));
    online.add(node);
  } else if (r < 3) {
    registry.nodeOffline(node);
  } else if (r < 4 && rng.chance(0.3)) {
    registry.removeNode(node);
    online.delete(node);
  } else if (online.has(node)) {
    registry.register(node, randomWorkloads(rng), randomDeclared(rng));
  }
}

