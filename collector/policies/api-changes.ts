/**
 * Kubernetes mode: a change through the collector's API, validated by the manager as in standalone
 * mode, is written to the Kubernetes API (an ApiPolicyStore: collector/kubernetes/policy-writes.ts)
 * instead of this collector's policies.db, and comes back through the watch like every replica's
 * (PolicyManager.syncKubernetes). It is audited first — author, action, the replica it went through,
 * the changes — and, when the write fails, again with why. One change is written at a time.
 */
import type { AuditKind } from '../../common/control-api';
import { PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { CanonicalData } from '../audit/audit-log';
import { apiWritesOf, type ApiPolicyStore } from './kubernetes-policies';
import { changesOf, policyKey, type Plan, type PolicyRepository } from './repository';

/** Where policy changes are recorded (the audit log). */
export interface AuditSink {
  append(kind: AuditKind, actor: string, data: Record<string, unknown>): unknown;
  /** `append`, anchored off the event loop: resolves once the record is as durable as `append` leaves it. */
  appendAnchored?(kind: AuditKind, actor: string, data: Record<string, unknown>): Promise<unknown>;
  /** `appendAnchored` in two steps: the record on disk, then (`anchored`) audit.head naming it. */
  appendSynced?(kind: AuditKind, actor: string, data: Record<string, unknown> | CanonicalData): Promise<{ anchored: Promise<void> }>;
}

export interface ApiChangesOptions {
  store: ApiPolicyStore;
  repo: PolicyRepository;
  audit: AuditSink | undefined;
  log: Logger;
  /** Why the Kubernetes API's objects were last refused as a set here, if they were. */
  refusal: () => string | undefined;
  /** Until no change is being written (here or to the API). */
  idle: () => Promise<void>;
}

export class ApiChanges {
  /** The change being written (other changes wait for it). */
  writing: Promise<void> | undefined;

  constructor(private readonly o: ApiChangesOptions) {}

  get store(): ApiPolicyStore {
    return this.o.store;
  }

  /** Write `plan`'s changes and answer once they are in force here: the version that made them. */
  async write(plan: Plan, author: string, action: string): Promise<number> {
    const { store, repo, audit } = this.o;
    let done!: () => void;
    this.writing = new Promise((resolve) => (done = resolve));
    try {
      const record = { action, via: 'kubernetes', replica: store.replica, changes: changesOf(plan) };
      if (audit?.appendAnchored) await audit.appendAnchored('policy-change', author, record);
      else audit?.append('policy-change', author, record);
      try {
        await store.write(apiWritesOf(plan.changes, plan.next), author);
      } catch (err) {
        audit?.append('policy-change', author, { ...record, failed: err instanceof Error ? err.message : String(err) });
        throw err;
      }
      const current = new Map(repo.current().map((p) => [policyKey(p), p]));
      const notInForce = record.changes.filter((c) => (c.op === 'delete' ? current.has(policyKey(c)) : current.get(policyKey(c))?.origin !== 'kubernetes'));
      if (notInForce.length > 0) {
        const what = notInForce.map((c) => `${c.kind} ${c.namespace}/${c.name}`).join(', ');
        throw new PalisadeError('PALISADE_ERR_POLICY_INVALID', `written to the Kubernetes API but not in force at this collector: the API's objects were refused as a set (${this.o.refusal() ?? 'see its log'}): ${what}`);
      }
      return repo.version;
    } finally {
      this.writing = undefined;
      done();
    }
  }

  /**
   * Once the watch has listed: the policies created through this collector's API before it stored
   * them in the Kubernetes API (origin `api`, in its policies.db only) are written there, each
   * alone, authored as they were, so every replica enforces them; back through the watch the API
   * owns them (origin `kubernetes`). One the cluster cannot take stays in force here only (logged).
   * Returns how many are left.
   */
  async publishLocal(): Promise<number> {
    const { store, repo, log } = this.o;
    let left = 0;
    for (const p of repo.current().filter((x) => x.origin === 'api')) {
      await this.o.idle();
      const now = repo.current().find((x) => policyKey(x) === policyKey(p));
      if (now?.origin !== 'api' || store.holds(p)) continue;
      if (store.served(p.kind) === false) continue; // no CRD: it stays this replica's, as a change of that kind would
      const author = repo.summary(now).author || 'collector';
      try {
        await this.write({ changes: [{ op: 'create', kind: p.kind, namespace: p.namespace, name: p.name, diff: '' }], next: [now], changed: true }, author, 'publish');
        log.info({ policy: policyKey(p) }, 'policy created through this collector\'s API before Kubernetes mode stored it: now in the Kubernetes API, shared by every replica');
      } catch (err) {
        left += 1;
        log.warn({ policy: policyKey(p), reason: err instanceof Error ? err.message : String(err) }, 'cannot publish a policy of this collector\'s own store to the Kubernetes API: it stays in force at this replica only');
      }
    }
    return left;
  }
}
