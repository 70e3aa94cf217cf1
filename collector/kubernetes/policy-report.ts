/**
 * Where kubectl users see what the collector made of their policy objects: a refused object gets a
 * Warning Event (reason PolicyRejected, its problems as the message: `kubectl describe` shows it)
 * and, for our own EgressPolicy and FaultInjection, the status condition Accepted=False with the same
 * message; an accepted one gets Accepted=True (Istio's AuthorizationPolicy status is istiod's, and an
 * HTTPRoute's or GRPCRoute's status is per parent Gateway, so those are left alone). One report per
 * object generation (a status update is not a new one), and no status patch when the object
 * already carries that condition for its generation: replicas reporting on each other's status
 * patches would otherwise change the object for ever. A report the API refuses (no RBAC) is logged once.
 */
import * as os from 'node:os';
import { describeCause } from '../../common/errors';
import type { KubeClient } from '../../common/kube/client';
import type { Logger } from '../../common/log';
import { ownsStatus, type PolicyObject, type PolicyResource } from './policy-objects';

const MAX_MESSAGE = 1024;
const ACCEPTED_MESSAGE = 'enforced by the mesh';

/** Whether the object's status already says so for its generation (another replica reported it). */
function hasCondition(o: PolicyObject, accepted: boolean, message: string): boolean {
  const conditions = (o as { status?: { conditions?: unknown } }).status?.conditions;
  if (!Array.isArray(conditions)) return false;
  return conditions.some((c: { type?: unknown; status?: unknown; message?: unknown; observedGeneration?: unknown }) =>
    c?.type === 'Accepted' && c.status === (accepted ? 'True' : 'False') && c.message === message && c.observedGeneration === o.metadata?.generation);
}

export class PolicyReporter {
  private readonly reported = new Map<string, string>();
  private warnedRbac = false;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  /** The object was refused: `problems` (one line each) say why; the previous version stays. */
  rejected(resource: PolicyResource, o: PolicyObject, problems: readonly string[]): void {
    const message = clip(problems.join('; '));
    if (!this.firstTime(o, `rejected ${message}`)) return;
    void this.event(resource, o, message);
    if (ownsStatus(resource) && !hasCondition(o, false, message)) void this.status(resource, o, false, message);
  }

  accepted(resource: PolicyResource, o: PolicyObject): void {
    if (!this.firstTime(o, 'accepted')) return;
    if (ownsStatus(resource) && !hasCondition(o, true, ACCEPTED_MESSAGE)) void this.status(resource, o, true, ACCEPTED_MESSAGE);
  }

  forget(o: PolicyObject): void {
    if (o.metadata?.uid) this.reported.delete(o.metadata.uid);
  }

  private firstTime(o: PolicyObject, what: string): boolean {
    const uid = o.metadata?.uid;
    if (!uid) return false;
    const key = `${o.metadata?.generation ?? o.metadata?.resourceVersion} ${what}`;
    if (this.reported.get(uid) === key) return false;
    this.reported.set(uid, key);
    return true;
  }

  private async event(resource: PolicyResource, o: PolicyObject, message: string): Promise<void> {
    const m = o.metadata!;
    const now = new Date();
    const body = {
      metadata: { generateName: `${m.name}.`, namespace: m.namespace },
      involvedObject: { apiVersion: o.apiVersion, kind: resource.kind, name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion },
      reason: 'PolicyRejected',
      message,
      type: 'Warning',
      source: { component: 'palisade-collector' },
      reportingComponent: 'palisade-collector',
      reportingInstance: os.hostname(),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.report(`create an Event for ${resource.kind} ${m.namespace}/${m.name}`, () => this.client.core.createNamespacedEvent({ namespace: m.namespace!, body: body as never }));
  }

  private async status(resource: PolicyResource, o: PolicyObject, accepted: boolean, message: string): Promise<void> {
    const m = o.metadata!;
    const [group, version] = (o.apiVersion ?? `${resource.group}/${resource.versions[0]}`).split('/') as [string, string];
    const condition = {
      type: 'Accepted',
      status: accepted ? 'True' : 'False',
      reason: accepted ? 'Accepted' : 'Invalid',
      message,
      observedGeneration: m.generation,
      lastTransitionTime: new Date().toISOString(),
    };
    const { k8s } = this.client;
    await this.report(`update the status of ${resource.kind} ${m.namespace}/${m.name}`, () =>
      this.client.custom.patchNamespacedCustomObjectStatus(
        { group, version, namespace: m.namespace!, plural: resource.plural, name: m.name!, body: { status: { conditions: [condition] } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      ),
    );
  }

  private async report(what: string, request: () => Promise<unknown>): Promise<void> {
    try {
      await this.client.call(what, request);
    } catch (err) {
      const level = this.warnedRbac ? 'debug' : 'warn';
      this.warnedRbac = true;
      this.log[level]({ reason: describeCause(err) }, 'cannot report on a policy object in the Kubernetes API');
    }
  }
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text;
}
