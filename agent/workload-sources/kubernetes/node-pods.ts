/**
 * What the agent knows about its node's pods, joined by pod UID: the Pod objects (from the API),
 * the namespaces' labels, and the pod sandboxes (from CNI, with their network namespaces). What
 * each pod should be in the mesh is `desiredFor`, a pure function of that (table-tested).
 */
import type { DesiredWorkload } from '../node-enrollment';
import { meshMembership, workloadFromPod, type PodView } from './pod-workload';
import type { SandboxRecord } from './sandbox-store';

export type Desired =
  /** In the mesh, as this workload. */
  | { kind: 'enroll'; desired: DesiredWorkload; why: string }
  /** Not in the mesh (not a member, or no sandbox on this node). */
  | { kind: 'leave'; why: string }
  /** Not known well enough to change anything (the pod or its namespace not seen yet). */
  | { kind: 'wait'; why: string }
  /** A member the mesh cannot carry: one line. */
  | { kind: 'refuse'; problem: string };

/** What the pod with this sandbox should be, given what the API says. */
export function desiredFor(
  pod: PodView | undefined,
  sandbox: SandboxRecord | undefined,
  namespaceLabels: Record<string, string> | undefined,
  trustDomain: string,
): Desired {
  if (!sandbox) return { kind: 'leave', why: 'no sandbox on this node' };
  if (!pod) return { kind: 'wait', why: 'the pod is not known yet' };
  if (!namespaceLabels) return { kind: 'wait', why: `namespace ${pod.namespace} is not known yet` };
  const m = meshMembership(pod, namespaceLabels);
  if (!m.member) return { kind: 'leave', why: m.why };
  if (sandbox.ip === undefined) {
    return { kind: 'refuse', problem: `pod ${pod.namespace}/${pod.name} has no IPv4 address (IPv6-only pods are not in the mesh yet)` };
  }
  const w = workloadFromPod(pod, { netns: sandbox.netns, ip: sandbox.ip }, trustDomain);
  if (!w.ok) return { kind: 'refuse', problem: w.problem };
  return { kind: 'enroll', desired: { workload: w.workload, ...(sandbox.hostInterface ? { hostInterface: sandbox.hostInterface } : {}) }, why: m.why };
}

export class NodePods {
  readonly pods = new Map<string, PodView>();
  readonly namespaces = new Map<string, Record<string, string>>();
  readonly sandboxes = new Map<string, SandboxRecord>();
  private readonly names = new Map<string, string>();
  private readonly containers = new Map<string, string>();

  /** Record a Pod object; returns the UID of an older pod of the same name it replaces, if any. */
  setPod(view: PodView): string | undefined {
    const name = `${view.namespace}/${view.name}`;
    const before = this.names.get(name);
    this.pods.set(view.uid, view);
    this.names.set(name, view.uid);
    return before !== undefined && before !== view.uid ? before : undefined;
  }

  deletePod(uid: string): PodView | undefined {
    const view = this.pods.get(uid);
    if (!view) return undefined;
    this.pods.delete(uid);
    const name = `${view.namespace}/${view.name}`;
    if (this.names.get(name) === uid) this.names.delete(name);
    return view;
  }

  podByName(namespace: string, name: string): PodView | undefined {
    const uid = this.names.get(`${namespace}/${name}`);
    return uid === undefined ? undefined : this.pods.get(uid);
  }

  /** Record the pod's current sandbox (a newer one replaces the older). */
  setSandbox(record: SandboxRecord): void {
    const old = this.sandboxes.get(record.uid);
    if (old && old.containerId !== record.containerId && this.containers.get(old.containerId) === record.uid) this.containers.delete(old.containerId);
    this.sandboxes.set(record.uid, record);
    this.containers.set(record.containerId, record.uid);
  }

  deleteSandbox(uid: string): SandboxRecord | undefined {
    const old = this.sandboxes.get(uid);
    if (!old) return undefined;
    this.sandboxes.delete(uid);
    if (this.containers.get(old.containerId) === uid) this.containers.delete(old.containerId);
    return old;
  }

  uidOfContainer(containerId: string): string | undefined {
    return this.containers.get(containerId);
  }

  /** UIDs with a sandbox whose pod is in `namespace`. */
  sandboxesIn(namespace: string): string[] {
    return [...this.sandboxes.values()].filter((s) => s.namespace === namespace).map((s) => s.uid);
  }
}
