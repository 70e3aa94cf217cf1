/**
 * The registry's entries, pure: a registration as the registry holds it, what turns one node's
 * workload list into another (the delta's changes), and the registry's state as the state dir
 * keeps it (./registry-state.ts) and gives it back.
 */
import { spiffeId } from '../common/identity';
import type { RegistryChange, RegistryService, RegistryWorkload, ServiceRegistration, WorkloadRegistration } from '../common/mesh-protocol';
import type { RegistrationShare, Stamp } from './nodes/registration-share';

/** A registry as a previous process left it (registry-state.ts `parseRegistryState`). */
export interface RestoredRegistry {
  epoch: string;
  /** The version the state is at, and the highest one that process may have sent. */
  version: number;
  reserved: number;
  kubeServices: RegistryService[];
  nodes: Array<RegistrationShare & { node: string }>;
}

/** The registry's state as the state dir keeps it (read-only views, not copies). */
export interface DiskRegistry {
  epoch: string;
  version: number;
  kubeServices: readonly RegistryService[];
  nodes: Array<{ node: string; nodeAddress: string; online: boolean; lastSeen: Date; stamp: Stamp; workloads: readonly RegistryWorkload[]; services: readonly ServiceRegistration[] }>;
}

/** A registration as the registry holds it (the key order is the wire's: deltas compare entries as JSON). */
export function registryWorkload(trustDomain: string, node: string, nodeAddress: string, w: WorkloadRegistration): RegistryWorkload {
  return {
    node,
    nodeAddress,
    name: w.name,
    namespace: w.namespace,
    serviceAccount: w.serviceAccount,
    identity: spiffeId(trustDomain, w.namespace, w.serviceAccount),
    ip: w.ip,
    labels: { ...w.labels },
  };
}

export function copyWorkload(w: RegistryWorkload): RegistryWorkload {
  return { ...w, labels: { ...w.labels } };
}

/** What turns one node's workload list `before` into `after`: removals, then additions and replacements (by IP). */
export function workloadChanges(before: readonly RegistryWorkload[], after: readonly RegistryWorkload[]): RegistryChange[] {
  const next = new Map(after.map((w) => [w.ip, w]));
  const prev = new Map(before.map((w) => [w.ip, w]));
  const changes: RegistryChange[] = [];
  for (const w of before) if (!next.has(w.ip)) changes.push({ op: 'remove-workload', ip: w.ip });
  for (const w of after) {
    const old = prev.get(w.ip);
    if (!old || !sameWorkload(old, w)) changes.push({ op: 'set-workload', workload: copyWorkload(w) });
  }
  return changes;
}

/** Two entries made by `registryWorkload` are the same on the wire (field by field, labels in the same order): what comparing their JSON said, without making it. */
function sameWorkload(a: RegistryWorkload, b: RegistryWorkload): boolean {
  if (a.node !== b.node || a.nodeAddress !== b.nodeAddress || a.name !== b.name || a.namespace !== b.namespace) return false;
  if (a.serviceAccount !== b.serviceAccount || a.identity !== b.identity || a.ip !== b.ip) return false;
  const ka = Object.keys(a.labels);
  const kb = Object.keys(b.labels);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i] || a.labels[ka[i]!] !== b.labels[kb[i]!]) return false;
  return true;
}

