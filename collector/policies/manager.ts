/**
 * The collector as the source of truth for policies (standalone mode): every change — an
 * `apply`, a `delete`, an `egress allow|deny|remove`, an edit in `--policy-dir` — is validated
 * against the whole set, made a numbered version in the repository (author, time, diff),
 * appended to the audit log and pushed to every agent. Agents answer with the version they
 * enforce (agent-status.ts).
 *
 * Policies from `--policy-dir` are owned by the directory (policy-dir.ts): the API can read them
 * but not change them (edit the file); a file that defines a policy created through the API takes
 * it over.
 */
import type {
  AuditKind,
  EgressLearnResponse,
  EgressListResponse,
  EgressRuleRequest,
  PolicyChangeResponse,
  PolicyGetResponse,
  PolicyHistoryResponse,
  PolicyListResponse,
  PolicyTestResponse,
  StatusResponse,
} from '../../common/control-api';
import { invalidArgument, isPalisadeError, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { encodeMessage, type PolicyStatusMessage, type RegistrySnapshot } from '../../common/mesh-protocol';
import { compilePolicyFiles, type PolicySet } from '../../common/policy';
import type { PolicyFile } from '../../common/policy-files';
import type { FlowStore } from '../flows/store';
import { AgentPolicyStatus } from './agent-status';
import { CompiledPolicies } from './compiled-set';
import { egressRuleManifest, egressRuleViews } from './egress-rules';
import { withKubernetesPolicies } from './kubernetes-policies';
import { followPolicyDir, withDirPolicies } from './policy-dir';
import { historyKey, quoteRef, resolvePolicy, resolveWorkload } from './references';
import { desiredPolicy, planChanges, policyKey, PolicyRepository, type DesiredPolicy, type Plan, type StoredPolicy } from './repository';
import { learnStored, replayStored } from './what-if';

export interface AuditSink {
  append(kind: AuditKind, actor: string, data: Record<string, unknown>): unknown;
}

export interface PolicyManagerOptions {
  dataDir: string;
  /** Policies owned by a directory, watched. */
  policyDir?: string;
  /** Policies owned by the Kubernetes API come in (syncKubernetes): they are read-only here. */
  kubernetes?: boolean;
  log: Logger;
  /** The live workload registry (workload names and labels). */
  registry: () => RegistrySnapshot;
  flows: FlowStore;
  audit?: AuditSink;
  /** Send a `policies` frame to every connected agent. */
  push: (frame: string) => void;
}

export class PolicyManager {
  /** The Kubernetes API's accepted policy objects, as last synced (re-applied after a policy directory change). */
  private kubernetesFiles: PolicyFile[] | undefined;
  private readonly repo: PolicyRepository;
  private readonly log: Logger;
  private readonly agents: AgentPolicyStatus;
  /** The set in force, compiled as the agents compile it (kept in step with the repository). */
  private compiled = CompiledPolicies.EMPTY;
  private encoded = '';
  private stopWatching: (() => void) | undefined;

  constructor(private readonly opts: PolicyManagerOptions) {
    this.log = opts.log.child({ component: 'policies' });
    this.agents = new AgentPolicyStatus(this.log);
    this.repo = PolicyRepository.open(opts.dataDir);
  }

  /**
   * Load the store; with a policy directory, bring its policies in (a directory that does not
   * validate refuses the start: PALISADE_ERR_POLICY_INVALID with every problem) and watch it.
   */
  start(): void {
    // What is stored must still compile (a newer collector may be stricter): refuse to push garbage.
    this.compiled = CompiledPolicies.of(this.repo.current());
    const dir = this.opts.policyDir;
    if (dir !== undefined) this.stopWatching = followPolicyDir(dir, (files) => this.syncDir(dir, files), this.log, () => this.repo.version);
    this.encode();
    this.log.info({ event: 'policy-version', version: this.repo.version, policies: this.repo.current().length }, 'policy store ready');
  }

  /** The current version as a `policies` frame (for a session that just said hello). */
  frame(): string {
    return this.encoded;
  }

  get version(): number {
    return this.repo.version;
  }

  close(): void {
    this.stopWatching?.();
    this.repo.close();
  }

  // ---- agents -----------------------------------------------------------------------------

  /** An agent said which version it enforces. */
  agentStatus(node: string, m: PolicyStatusMessage): void {
    this.agents.report(node, m);
  }

  status(extra: { flowsStored: number; auditRecords: number }): StatusResponse {
    return this.agents.status(this.opts.registry(), this.repo.version, extra);
  }

  // ---- reads ------------------------------------------------------------------------------

  list(): PolicyListResponse {
    return { version: this.repo.version, policies: this.repo.current().map((p) => this.repo.summary(p)) };
  }

  get(ref: string): PolicyGetResponse {
    const p = resolvePolicy(this.repo.current(), ref);
    return { policy: this.repo.summary(p), manifest: p.manifest };
  }

  history(ref?: string): PolicyHistoryResponse {
    if (ref === undefined) return { versions: this.repo.history() };
    // A deleted policy has history but is no longer stored: accept a full Kind/namespace/name.
    const key = historyKey(this.repo.current(), ref, (k) => this.repo.history(k, 1).length > 0);
    return { versions: this.repo.history(key) };
  }

  egressList(workloadRef?: string): EgressListResponse {
    const snap = this.opts.registry();
    const only = workloadRef === undefined ? undefined : resolveWorkload(snap.workloads, workloadRef);
    const stored = new Map(this.repo.current().map((p) => [policyKey(p), p]));
    // Selection and rules as the agents see them: the compiled set and its index.
    return { version: this.repo.version, rules: egressRuleViews(this.compiled.index, stored, snap.workloads, only) };
  }

  learn(workloadRef: string, since: number, opts: { groupSuffixes: boolean; includeDenied: boolean }): EgressLearnResponse {
    const w = resolveWorkload(this.opts.registry().workloads, workloadRef, true);
    return learnStored(this.opts.flows, w, since, opts);
  }

  /** Replay stored flows since `since` under the current set and under the set `files` would make. */
  test(files: PolicyFile[], since: number): PolicyTestResponse {
    const { next } = this.withFiles(files, 'test');
    const candidate = this.compiled.with(next);
    return replayStored(this.opts.flows, since, this.opts.registry().workloads, { current: this.compiled.set, candidate: candidate.set });
  }

  // ---- writes -----------------------------------------------------------------------------

  /** Create or replace every policy in `files`, all or nothing. */
  apply(files: PolicyFile[], dryRun: boolean, author: string): PolicyChangeResponse {
    const { next, warnings, incoming } = this.withFiles(files, 'apply');
    return { ...this.change(next, author, 'apply', dryRun, incoming), ...(warnings.length ? { warnings } : {}) };
  }

  delete(ref: string, dryRun: boolean, author: string): PolicyChangeResponse {
    const target = resolvePolicy(this.repo.current(), ref);
    this.checkWritable(target, 'delete');
    const next = this.repo.current().filter((p) => p.id !== target.id);
    return this.change(next, author, 'delete', dryRun);
  }

  /** `egress allow|deny W DEST… [--port P]`: one new EgressPolicy selecting exactly that workload. */
  egressRule(req: EgressRuleRequest, author: string): PolicyChangeResponse {
    const w = resolveWorkload(this.opts.registry().workloads, req.workload);
    const id = this.repo.nextId();
    const manifest = egressRuleManifest(w, req, id);
    const { next } = this.withFiles([{ source: `egress ${req.action}`, text: JSON.stringify(manifest) }], 'egress');
    const result = this.change(next, author, `egress-${req.action}`, req.dryRun === true);
    return { ...result, id };
  }

  egressRemove(id: number, dryRun: boolean, author: string): PolicyChangeResponse {
    if (!Number.isSafeInteger(id) || id < 1) throw invalidArgument(`invalid id ${quoteRef(String(id))}: use an ID from palisade egress list`);
    const target = this.repo.byId(id);
    if (!target || target.kind !== 'EgressPolicy') {
      throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no egress rule with ID ${id} (palisade egress list shows them)`);
    }
    this.checkWritable(target, 'remove');
    const next = this.repo.current().filter((p) => p.id !== id);
    return this.change(next, author, 'egress-remove', dryRun);
  }

  // ---- internals --------------------------------------------------------------------------

  /** The set in force with every policy of `files` created or replaced; throws on any problem. */
  private withFiles(files: PolicyFile[], what: 'apply' | 'egress' | 'test'): { next: DesiredPolicy[]; warnings: string[]; incoming: Set<string> } {
    if (!Array.isArray(files) || files.length === 0) throw invalidArgument('no policy files given');
    const set: PolicySet = compilePolicyFiles(files);
    const incoming = [...set.authorization, ...set.egress];
    if (incoming.length === 0) throw invalidArgument(`${files.map((f) => f.source).join(', ')}: no policies in it (nothing to ${what === 'test' ? 'test' : 'apply'})`);
    const keys = new Set(incoming.map(policyKey));
    const stored = this.repo.current();
    if (what !== 'test') for (const p of stored) if (keys.has(policyKey(p))) this.checkWritable(p, 'change');
    const next = new Map<string, DesiredPolicy>(stored.map((p) => [policyKey(p), p]));
    for (const p of incoming) next.set(policyKey(p), desiredPolicy(p, 'api'));
    return { next: [...next.values()], warnings: [...(set.warnings ?? [])], incoming: keys };
  }

  /**
   * The Kubernetes API's policy objects (each already checked alone) replace those it owned
   * before. Throws PALISADE_ERR_POLICY_INVALID when the set as a whole does not hold (nothing
   * changes then). Returns the objects the policy directory shadows.
   */
  syncKubernetes(files: PolicyFile[]): string[] {
    this.kubernetesFiles = files;
    const current = this.repo.current();
    const { next, takenOver, shadowed } = withKubernetesPolicies(compilePolicyFiles(files), current);
    for (const p of takenOver) {
      this.log.warn({ policy: policyKey(p), id: p.id }, 'a Kubernetes policy object now defines a policy created through the API: the Kubernetes API owns it from now on');
    }
    const plan = planChanges(current, next);
    const candidate = this.compiled.with(next);
    if (plan.changed) this.commit(plan, candidate, 'kubernetes', 'kubernetes');
    return shadowed;
  }

  private checkWritable(p: StoredPolicy, verb: string): void {
    if (p.origin === 'kubernetes' && this.opts.kubernetes) {
      throw new PalisadeError(
        'PALISADE_ERR_CONFLICT',
        `${p.kind} ${p.namespace}/${p.name} is managed by the Kubernetes API: ${verb} it there (kubectl edit ${p.kind.toLowerCase()} -n ${p.namespace} ${p.name})`,
      );
    }
    if (p.origin === 'dir' && this.opts.policyDir !== undefined) {
      throw new PalisadeError(
        'PALISADE_ERR_CONFLICT',
        `${p.kind} ${p.namespace}/${p.name} is managed by the collector's policy directory (${p.file ?? '?'}): ${verb} it there`,
      );
    }
  }

  /**
   * Validate `next` as a whole, then (unless a dry run) make it the new version and push it. The
   * answer lists what changed, and as `unchanged` only the policies named in `shown` (those of
   * the applied files), not every other stored one.
   */
  private change(next: DesiredPolicy[], author: string, action: string, dryRun: boolean, shown?: ReadonlySet<string>): PolicyChangeResponse {
    const plan = planChanges(this.repo.current(), next);
    const candidate = this.compiled.with(next); // each object compiled alone already; the set must hold too
    const changes = plan.changes.filter((c) => c.op !== 'unchanged' || shown?.has(policyKey(c)) === true);
    if (dryRun || !plan.changed) return { version: this.repo.version, applied: false, dryRun, changes };
    const version = this.commit(plan, candidate, author, action);
    return { version, applied: true, dryRun: false, changes };
  }

  /** The policy directory's files changed (or were read at start): they replace its policies. */
  private syncDir(dir: string, files: PolicyFile[]): void {
    const current = this.repo.current();
    const { next, takenOver } = withDirPolicies(dir, compilePolicyFiles(files), current);
    for (const p of takenOver) {
      this.log.warn({ policy: policyKey(p), id: p.id }, 'the policy directory now defines a policy created through the API: the directory owns it from now on');
    }
    const plan = planChanges(current, next);
    const candidate = this.compiled.with(next);
    if (!plan.changed) return;
    this.commit(plan, candidate, 'policy-dir', 'policy-dir');
    // A name the directory stopped defining may be a Kubernetes object's again.
    if (this.kubernetesFiles) {
      try {
        this.syncKubernetes(this.kubernetesFiles);
      } catch (err) {
        if (!isPalisadeError(err)) throw err;
        this.log.error({ event: 'policy-rejected', problems: (err as { problems?: readonly string[] }).problems ?? [err.message] }, 'policy objects of the Kubernetes API refused as a set after a policy directory change');
      }
    }
  }

  /**
   * Audit, store, push. The audit record is written first: a change the audit log cannot record
   * (a tampered or broken log) is refused and nothing changes. `candidate` is `plan.next`
   * compiled; the compiled set follows what the repository now holds (an unchanged policy keeps
   * its stored manifest), reusing what `candidate` and the previous set compiled.
   */
  private commit(plan: Plan, candidate: CompiledPolicies, author: string, action: string): number {
    const changed = plan.changes.filter((c) => c.op !== 'unchanged').map((c) => ({ op: c.op, kind: c.kind, namespace: c.namespace, name: c.name }));
    this.opts.audit?.append('policy-change', author, { version: this.repo.version + 1, action, changes: changed });
    const { version } = this.repo.commit(plan, author, action);
    this.compiled = candidate.with(this.repo.current(), this.compiled);
    this.log.info({ event: 'policy-version', version, author, action, changes: changed.map((c) => `${c.op} ${c.kind} ${c.namespace}/${c.name}`) }, 'policy version ready');
    this.encode();
    this.opts.push(this.encoded);
    return version;
  }

  private encode(): void {
    this.encoded = encodeMessage({ type: 'policies', version: this.repo.version, files: [...this.compiled.files] });
  }
}
