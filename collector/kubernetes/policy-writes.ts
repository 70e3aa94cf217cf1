/**
 * Policy changes made through the collector's API in Kubernetes mode (`policy apply|delete`,
 * `egress allow|deny|remove`, the dashboard's apply) go to the Kubernetes API, the store every
 * replica reads: each policy as its object (./policy-objects.ts `policyObjectOf`), created, or
 * updated / deleted at the resourceVersion this replica's watch last saw. The manager validated
 * the whole change first; here every object is made before anything is written (a kind the cluster
 * does not serve refuses the change, nothing written), then they are written in order. A failure
 * — a 409 (another replica or kubectl changed the object since: a conflict), the API away, a
 * refusal — rolls back the objects already written, newest first (a created one deleted, an
 * updated one put back, each at the resourceVersion written, so nobody else's later change is
 * undone); the answer is one line saying what failed and, when a rollback itself failed, exactly
 * which objects stay written. The change is answered once it came back through this replica's
 * own watch and is in force here (bounded: `inForceTimeoutMs`).
 */
import { PalisadeError } from '../../common/errors';
import type { KubeClient } from '../../common/kube/client';
import { statusOf } from '../../common/kube/client';
import type { Logger } from '../../common/log';
import type { ApiPolicyStore, ApiPolicyWrite } from '../policies/kubernetes-policies';
import { appliedThroughCollector, policyObjectOf, policySourceOf, POLICY_RESOURCES, type PolicyObject, type PolicyResource } from './policy-objects';
import type { PolicyWatch } from './policy-watch';

/** What a write did, for the audit record and the rollback. */
export interface WrittenObject {
  op: 'create' | 'update' | 'delete';
  object: string;
  resourceVersion: string | undefined;
}

interface Step {
  op: WrittenObject['op'];
  source: string;
  resource: PolicyResource;
  version: string;
  namespace: string;
  name: string;
  body: PolicyObject | undefined;
  /** The object as the watch last saw it (update, delete). */
  before: PolicyObject | undefined;
}

export const DEFAULT_IN_FORCE_TIMEOUT_MS = 10_000;

export class PolicyWrites implements ApiPolicyStore {
  constructor(
    private readonly opts: { client: KubeClient; watch: PolicyWatch; log: Logger; replica: string; inForceTimeoutMs?: number },
  ) {}

  get replica(): string {
    return this.opts.replica;
  }

  /** Whether the policy's object was written through a collector (so it may be changed through one). */
  writable(p: { kind: string; namespace: string; name: string }): boolean {
    return appliedThroughCollector(this.opts.watch.object(policySourceOf(p.kind, p.namespace, p.name)));
  }

  served(kind: string): boolean | undefined {
    const v = this.opts.watch.servedVersion(kind);
    return v === undefined ? undefined : v !== 'not installed';
  }

  /** Whether the Kubernetes API holds the policy's object (else it is this replica's own, from before). */
  holds(p: { kind: string; namespace: string; name: string }): boolean {
    return this.opts.watch.object(policySourceOf(p.kind, p.namespace, p.name)) !== undefined;
  }

  /**
   * Write `writes` in order (`author` applied them), then wait until they are in force here.
   * Throws one line (PALISADE_ERR_CONFLICT on a 409, PALISADE_ERR_KUBERNETES when the API fails);
   * the objects written before a failure are rolled back.
   */
  async write(writes: readonly ApiPolicyWrite[], author: string): Promise<WrittenObject[]> {
    const steps = writes.map((w) => this.step(w, `${author} via ${this.opts.replica}`));
    const done: Array<{ step: Step; written: PolicyObject | undefined }> = [];
    for (const step of steps) {
      try {
        done.push({ step, written: await this.sendOrRetry(step) });
      } catch (err) {
        const rollback = await this.rollBack(done);
        throw writeFailure(step, err, done.length, rollback);
      }
    }
    const written = done.map(({ step, written: o }) => ({ op: step.op, object: step.source, resourceVersion: step.op === 'delete' ? undefined : o?.metadata?.resourceVersion }));
    await this.opts.watch.whenInForce(
      written.map((w) => ({ source: w.object, resourceVersion: w.resourceVersion })),
      this.opts.inForceTimeoutMs ?? DEFAULT_IN_FORCE_TIMEOUT_MS,
    );
    return written;
  }

  /** The request a write makes; throws (nothing written yet) when the cluster cannot take it. */
  private step(w: ApiPolicyWrite, appliedBy: string): Step {
    const resource = POLICY_RESOURCES.find((r) => r.kind === w.kind);
    const source = policySourceOf(w.kind, w.namespace, w.name);
    if (!resource) throw new PalisadeError('PALISADE_ERR_INTERNAL', `${source}: not a kind of the Kubernetes API`);
    const served = this.opts.watch.servedVersion(resource.kind);
    if (served === undefined) throw new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', `${source}: this collector has not listed ${resource.plural}.${resource.group} yet: try again in a moment`);
    if (served === 'not installed') {
      throw new PalisadeError('PALISADE_ERR_KUBERNETES', `${source}: the cluster serves no ${resource.kind} (${resource.plural}.${resource.group}: CRD not installed), so it cannot be stored there: install the CRD`);
    }
    const version = served.slice(resource.group.length + 1);
    const before = this.opts.watch.object(source);
    if (before && !appliedThroughCollector(before)) {
      // kubectl's (or GitOps') object, refused by the watch so not in the store: still not ours to overwrite.
      throw new PalisadeError('PALISADE_ERR_CONFLICT', `${source} is managed by the Kubernetes API: change it there (kubectl edit ${resource.kind.toLowerCase()} -n ${w.namespace} ${w.name})`);
    }
    if (w.op === 'delete') {
      if (!before) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `${source} is not in the Kubernetes API (deleted meanwhile?)`);
      return { op: 'delete', source, resource, version, namespace: w.namespace, name: w.name, body: undefined, before };
    }
    const body = policyObjectOf(w.manifest ?? {}, resource, served, appliedBy, before);
    return { op: before ? 'update' : 'create', source, resource, version, namespace: w.namespace, name: w.name, body, before };
  }

  /**
   * `send`; an update or delete answered 409 whose object's spec did not change since it was read
   * (same uid and generation: only its status or metadata did, e.g. another replica's Accepted
   * condition) is made again once at the resourceVersion read now. A changed spec stays a conflict.
   */
  private async sendOrRetry(s: Step): Promise<PolicyObject | undefined> {
    try {
      return await this.send(s);
    } catch (err) {
      if (s.op === 'create' || codeOf(err) !== 409) throw err;
      const { client } = this.opts;
      const now = (await client.call(`read ${s.source}`, () => client.custom.getNamespacedCustomObject({ group: s.resource.group, version: s.version, plural: s.resource.plural, namespace: s.namespace, name: s.name }), { notFound: 'undefined' })) as PolicyObject | undefined;
      const was = s.before?.metadata;
      if (!now?.metadata || was?.generation === undefined || now.metadata.uid !== was.uid || now.metadata.generation !== was.generation) throw err;
      const before = { ...s.before, metadata: { ...was, resourceVersion: now.metadata.resourceVersion } };
      return this.send({ ...s, before, body: s.body && { ...s.body, metadata: { ...s.body.metadata, resourceVersion: now.metadata.resourceVersion } } });
    }
  }

  private async send(s: Step): Promise<PolicyObject | undefined> {
    const { client } = this.opts;
    const at = { group: s.resource.group, version: s.version, plural: s.resource.plural, namespace: s.namespace };
    const what = `${s.op} ${s.source}`;
    if (s.op === 'create') return (await client.call(what, () => client.custom.createNamespacedCustomObject({ ...at, body: s.body }))) as PolicyObject;
    if (s.op === 'update') return (await client.call(what, () => client.custom.replaceNamespacedCustomObject({ ...at, name: s.name, body: s.body }))) as PolicyObject;
    const preconditions = { resourceVersion: s.before?.metadata?.resourceVersion };
    await client.call(what, () => client.custom.deleteNamespacedCustomObject({ ...at, name: s.name, body: { preconditions } }));
    return undefined;
  }

  /** Undo `done`, newest first, each at the resourceVersion written; the objects that stay written. */
  private async rollBack(done: ReadonlyArray<{ step: Step; written: PolicyObject | undefined }>): Promise<string[]> {
    const { client } = this.opts;
    const left: string[] = [];
    for (const { step: s, written } of [...done].reverse()) {
      const at = { group: s.resource.group, version: s.version, plural: s.resource.plural, namespace: s.namespace, name: s.name };
      const rv = written?.metadata?.resourceVersion;
      try {
        if (s.op === 'create') {
          await client.call(`roll back ${s.source}`, () => client.custom.deleteNamespacedCustomObject({ ...at, body: { preconditions: { resourceVersion: rv } } }));
        } else if (s.op === 'update') {
          const back = { ...s.before, metadata: { ...s.before?.metadata, resourceVersion: rv } };
          await client.call(`roll back ${s.source}`, () => client.custom.replaceNamespacedCustomObject({ ...at, body: back }));
        } else {
          left.push(s.source); // a delete is not undone (deletes are written alone: nothing comes before one)
          continue;
        }
      } catch (err) {
        if (s.op === 'create' && codeOf(err) === 404) continue;
        this.opts.log.error({ object: s.source, err }, 'cannot roll back a policy object written by a change that failed: it stays in the Kubernetes API');
        left.push(s.source);
      }
    }
    return left;
  }
}

const codeOf = (err: unknown): number | undefined => statusOf((err as { cause?: unknown }).cause)?.code;

/** The one line a failed write of `s` answers with (`writtenBefore` objects were, `left` of them stay written). Pure. */
export function writeFailure(s: Pick<Step, 'op' | 'source'>, err: unknown, writtenBefore: number, left: readonly string[]): PalisadeError {
  const code = codeOf(err);
  const undone =
    writtenBefore === 0
      ? 'nothing was written'
      : left.length === 0
        ? `the ${writtenBefore} object(s) written before it were rolled back: nothing changed`
        : `rolled back but for ${left.join(', ')}, which stay written in the Kubernetes API`;
  if (code === 409) {
    const how = s.op === 'create' ? 'was created' : 'was changed';
    return new PalisadeError('PALISADE_ERR_CONFLICT', `conflict: ${s.source} ${how} in the Kubernetes API since this collector read it (another replica or kubectl); ${undone}: try again`);
  }
  const why = err instanceof Error ? err.message : String(err);
  if (code === undefined && /no answer from the Kubernetes API/.test(why)) {
    // The request may have reached the API all the same: say so rather than "nothing was written".
    return new PalisadeError('PALISADE_ERR_KUBERNETES', `${why}: ${s.source} may or may not be written (palisade policy list shows it once it is); ${undone.replace('nothing was written', 'nothing else was written')}`, { cause: err });
  }
  return new PalisadeError(err instanceof PalisadeError && err.code !== 'PALISADE_ERR_KUBERNETES' ? err.code : 'PALISADE_ERR_KUBERNETES', `${why}; ${undone}`, { cause: err });
}
