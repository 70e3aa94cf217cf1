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
 *
 * In Kubernetes mode a change through the API, validated the same way, is written to the
 * Kubernetes API instead (api-changes.ts) and made a version here when it comes back through the
 * watch (syncKubernetes), as every replica makes it.
 */
import type {
  EgressLearnResponse,
  EgressListResponse,
  EgressRuleRequest,
  PolicyChange,
  PolicyChangeResponse,
  PolicyGetResponse,
  PolicyHistoryResponse,
  PolicyListResponse,
  PolicyTestResponse,
  StatusResponse,
} from '../../common/control-api';
import { invalidArgument, isPalisadeError, PalisadeError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { passTurn, Slice } from '../../common/slice';
import { encodeMessage, type PolicyStatusMessage, type RegistrySnapshot, type RegistryWorkload } from '../../common/mesh-protocol';
import { allOf, compilePolicyFiles, type PolicySet } from '../../common/policy';
import type { PolicyFile } from '../../common/policy-files';
import { bytesSliced, jsonSliced } from '../api/respond';
import { CanonicalData } from '../audit/audit-log';
import type { FlowStore } from '../flows/store';
import { AgentPolicyStatus } from './agent-status';
import { CompiledPolicies, policyFiles } from './compiled-set';
import { PolicyParser, type ParsedPolicies } from './policy-parser';
import { routeStatusOf } from './route-status';
import { authorizationSelecting, digestOf, EMPTY_DIGEST, type SetDigest } from './set-digest';
import { egressRuleManifest, egressRuleViews } from './egress-rules';
import { ApiChanges, type AuditSink } from './api-changes';
import { storeOf, withKubernetesPolicies, type ApiPolicyStore } from './kubernetes-policies';
import { followPolicyDir, withDirPolicies } from './policy-dir';
import { historyKey, quoteRef, resolvePolicy, resolveWorkload } from './references';
import { changesOf, desiredPolicy, planChanges, policyKey, PolicyRepository, type DesiredPolicy, type Plan, type StoredPolicy } from './repository';
import { WhatIf } from './what-if';

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
  /** Send a `policies` frame (its text, or that text as bytes) to every connected agent. */
  push: (frame: string | Buffer) => void;
  /** How long reading the policy files of one request may take (default 5 s: policy-parser.ts). */
  parseDeadlineMs?: number;
}

/** Work on many policies on the event loop (plans, rows, the frame, what crosses to the worker) yields after about this long. */
const COMPILE_SLICE_MS = 2;
/** policies.db is checkpointed off the event loop after about this many policies were written (checkpointSoon). */
const CHECKPOINT_AFTER_CHANGES = 200;
/** A change prepared while others were committed is prepared again at most this many times. */
const MAX_CHANGE_ATTEMPTS = 3;

/** What a change brings in: policies read from files, as plain data or compiled. */
type Incoming = Pick<DesiredPolicy, 'kind' | 'namespace' | 'name' | 'manifest'>;

export class PolicyManager {
  /** The Kubernetes API's accepted policy objects, as last synced (re-applied after a policy directory change). */
  private kubernetesFiles: PolicyFile[] | undefined;
  private readonly repo: PolicyRepository;
  /** Policy files from the API are read off the event loop, within budgets. */
  private readonly parser: PolicyParser;
  /** `policy test` and `egress learn` read the stored flows off the event loop. */
  private readonly whatIf: WhatIf;
  private readonly log: Logger;
  private readonly agents: AgentPolicyStatus;
  /**
   * Policies compiled on this thread, as the agents compile them, by the changes made at once (the
   * store at start, the policy directory, the Kubernetes API): reused by the next such change. A
   * change from the API is compiled in the policy worker instead (set-check.ts), so this may be
   * older than the set in force (reuse goes by file text: never wrong, only slower — a directory
   * change after many API changes compiles theirs here, at once). Empty after the start when
   * neither a directory nor Kubernetes is in use: nothing reads it then.
   */
  private compiled = CompiledPolicies.EMPTY;
  /** What the queries read of the set in force (set-digest.ts). */
  private digest: SetDigest = EMPTY_DIGEST;
  private encoded = '';
  private stopWatching: (() => void) | undefined;
  /** A change from the API being written (its rows in slices): the next commit waits for it. */
  private writing: Promise<void> | undefined;
  /** Policy directory and Kubernetes changes that came while one was written: made right after. */
  private readonly deferred: Array<() => void> = [];
  /** Policies written since policies.db was last checkpointed in the worker (checkpointSoon). */
  private changesSinceCheckpoint = 0;
  /** Kubernetes mode: changes through the API, written to the Kubernetes API (useKubernetesApi). */
  private api: ApiChanges | undefined;
  /** Why the Kubernetes API's objects were last refused as a set (undefined: they were not). */
  private kubernetesRefusal: string | undefined;

  constructor(private readonly opts: PolicyManagerOptions) {
    this.log = opts.log.child({ component: 'policies' });
    this.agents = new AgentPolicyStatus(this.log);
    this.repo = PolicyRepository.open(opts.dataDir);
    this.parser = new PolicyParser({ log: this.log, ...(opts.parseDeadlineMs !== undefined ? { deadlineMs: opts.parseDeadlineMs } : {}) });
    this.whatIf = new WhatIf({ flowsFile: opts.flows.file, log: this.log });
  }

  /**
   * Load the store; with a policy directory, bring its policies in (a directory that does not
   * validate refuses the start: PALISADE_ERR_POLICY_INVALID with every problem) and watch it.
   */
  start(): void {
    // What is stored must still compile (a newer collector may be stricter): refuse to push garbage.
    this.compiled = CompiledPolicies.of(this.repo.current());
    this.digest = digestOf(this.compiled.set, this.compiled.index);
    const dir = this.opts.policyDir;
    if (dir !== undefined) this.stopWatching = followPolicyDir(dir, (files) => this.syncDir(dir, files), this.log, () => this.repo.version);
    this.encode();
    // only the policy directory's and the Kubernetes API's changes reuse it: without them every
    // change is compiled in the worker, and this thread need not keep the start's set compiled
    if (dir === undefined && !this.opts.kubernetes) this.compiled = CompiledPolicies.EMPTY;
    this.parser.warm(this.repo.current());
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
    void this.parser.close();
    void this.whatIf.close();
    this.repo.close();
  }

  /**
   * Kubernetes mode: changes through the API (apply, delete, egress rules) are written to the
   * Kubernetes API from now on, and come back through its watch (syncKubernetes) like every
   * replica's. Until this is called they are refused.
   */
  useKubernetesApi(store: ApiPolicyStore): void {
    this.api = new ApiChanges({ store, repo: this.repo, audit: this.opts.audit, log: this.log, refusal: () => this.kubernetesRefusal, idle: () => this.idle() });
  }

  /** Kubernetes mode: publish the policies stored here before (ApiChanges.publishLocal); how many are left. */
  publishLocal(): Promise<number> {
    return this.api?.publishLocal() ?? Promise.resolve(0);
  }

  // ---- agents -----------------------------------------------------------------------------

  /** An agent said which version it enforces. */
  agentStatus(node: string, m: PolicyStatusMessage): void {
    this.agents.report(node, m);
  }

  status(extra: { flowsStored: number; auditRecords: number }): StatusResponse {
    const status = this.agents.status(this.opts.registry(), this.repo.version, extra);
    const routes = this.digest.routes;
    return routes.length > 0 ? { ...status, routes: routeStatusOf(routes, this.repo.current(), status.nodes) } : status;
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
    // Selection and rules as the agents see them: the compiled set's digest.
    return { version: this.repo.version, rules: egressRuleViews(this.digest, stored, snap.workloads, only) };
  }

  /** The authorization policies selecting workload `ref` now, in evaluation order (the dashboard's node panel). */
  selecting(ref: string): { workload: RegistryWorkload; policies: Array<{ kind: 'AuthorizationPolicy'; namespace: string; name: string; action: string }> } {
    const snap = this.opts.registry();
    const w = resolveWorkload(snap.workloads, ref);
    const found = snap.workloads.find((x) => x.namespace === w.namespace && x.name === w.name)!;
    const selected = authorizationSelecting(this.digest, { namespace: found.namespace, labels: found.labels });
    return { workload: found, policies: selected.map((x) => ({ kind: 'AuthorizationPolicy' as const, namespace: x.namespace, name: x.name, action: x.action })) };
  }

  learn(workloadRef: string, since: number, opts: { groupSuffixes: boolean; includeDenied: boolean }): Promise<EgressLearnResponse> {
    const w = resolveWorkload(this.opts.registry().workloads, workloadRef, true);
    return this.whatIf.learn(w, since, opts);
  }

  /** Replay stored flows since `since` under the current set and under the set `files` would make. */
  async test(files: PolicyFile[], since: number): Promise<PolicyTestResponse> {
    const parsed = await this.parser.parse(files);
    this.withIncoming(parsed.policies, files, parsed.warnings, 'test'); // refuses files without policies
    return this.whatIf.replay(this.encoded, parsed.policies, since, this.opts.registry().workloads);
  }

  // ---- writes -----------------------------------------------------------------------------

  /**
   * Create or replace every policy in `files`, all or nothing. The files are read, and the set
   * they make compiled and checked (routes name Services the mesh knows, and FaultInjections in
   * force after the change), off the event loop (see `changeSliced`).
   */
  async apply(files: PolicyFile[], dryRun: boolean, author: string): Promise<PolicyChangeResponse> {
    const parsed: ParsedPolicies = await this.parser.parse(files);
    const shown = new Set(parsed.policies.map(policyKey));
    const result = await this.changeSliced(() => this.withIncomingSliced(parsed.policies, files), {
      author,
      action: 'apply',
      dryRun,
      shown,
      kinds: [...new Set(parsed.policies.map((p) => p.kind))],
    });
    const warnings = [...parsed.warnings, ...(result.warnings ?? [])];
    return { ...result, ...(warnings.length ? { warnings } : {}) };
  }

  delete(ref: string, dryRun: boolean, author: string): Promise<PolicyChangeResponse> {
    const target = resolvePolicy(this.repo.current(), ref);
    this.checkWritable(target, 'delete');
    return this.changeSliced(() => this.repo.current().filter((p) => p.id !== target.id), { author, action: 'delete', dryRun });
  }

  /** `egress allow|deny W DEST… [--port P]`: one new EgressPolicy selecting exactly that workload. */
  async egressRule(req: EgressRuleRequest, author: string): Promise<PolicyChangeResponse> {
    const w = resolveWorkload(this.opts.registry().workloads, req.workload);
    let id = 0;
    let name = '';
    const result = await this.changeSliced(
      () => {
        id = this.repo.nextId();
        const manifest = egressRuleManifest(w, req, id);
        name = (manifest.metadata as { name: string }).name;
        return this.withFiles([{ source: `egress ${req.action}`, text: JSON.stringify(manifest) }], 'egress').next;
      },
      { author, action: `egress-${req.action}`, dryRun: req.dryRun === true },
    );
    // In Kubernetes mode the policy came back through the watch: its ID is the one it was stored with.
    const stored = result.applied ? this.repo.current().find((p) => p.kind === 'EgressPolicy' && p.namespace === w.namespace && p.name === name) : undefined;
    return { ...result, id: stored?.id ?? id };
  }

  egressRemove(id: number, dryRun: boolean, author: string): Promise<PolicyChangeResponse> {
    if (!Number.isSafeInteger(id) || id < 1) throw invalidArgument(`invalid id ${quoteRef(String(id))}: use an ID from palisade egress list`);
    const target = this.repo.byId(id);
    if (!target || target.kind !== 'EgressPolicy') {
      throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no egress rule with ID ${id} (palisade egress list shows them)`);
    }
    this.checkWritable(target, 'remove');
    return this.changeSliced(() => this.repo.current().filter((p) => p.id !== id), { author, action: 'egress-remove', dryRun });
  }

  // ---- internals --------------------------------------------------------------------------

  /** The set in force with every policy of `files` created or replaced; throws on any problem. */
  private withFiles(files: PolicyFile[], what: 'apply' | 'egress' | 'test'): { next: DesiredPolicy[]; warnings: string[]; incoming: Set<string> } {
    if (!Array.isArray(files) || files.length === 0) throw invalidArgument('no policy files given');
    const set: PolicySet = compilePolicyFiles(files);
    return this.withIncoming(allOf(set), files, [...(set.warnings ?? [])], what);
  }

  /** The set in force with every policy of `incoming` (read from `files`) created or replaced. */
  private withIncoming(
    incoming: readonly Incoming[],
    files: readonly PolicyFile[],
    warnings: string[],
    what: 'apply' | 'egress' | 'test',
  ): { next: DesiredPolicy[]; warnings: string[]; incoming: Set<string> } {
    const next = new Map<string, DesiredPolicy>();
    for (const _ of this.incomingSteps(incoming, files, what, next));
    return { next: [...next.values()], warnings, incoming: new Set(incoming.map(policyKey)) };
  }

  /** `withIncoming(…).next` for an apply, made in slices (thousands of policies). */
  private async withIncomingSliced(incoming: readonly Incoming[], files: readonly PolicyFile[]): Promise<DesiredPolicy[]> {
    const next = new Map<string, DesiredPolicy>();
    const slice = new Slice(COMPILE_SLICE_MS);
    for (const _ of this.incomingSteps(incoming, files, 'apply', next)) await slice.pass();
    return [...next.values()];
  }

  /** Fills `next` (key → policy) with the stored set and then `incoming`; a step per hundred policies. */
  private *incomingSteps(incoming: readonly Incoming[], files: readonly PolicyFile[], what: 'apply' | 'egress' | 'test', next: Map<string, DesiredPolicy>): Generator<void> {
    if (incoming.length === 0) throw invalidArgument(`${files.map((f) => f.source).join(', ')}: no policies in it (nothing to ${what === 'test' ? 'test' : 'apply'})`);
    const keys = new Set<string>();
    for (let i = 0; i < incoming.length; i++) {
      keys.add(policyKey(incoming[i]!));
      if (i % 100 === 99) yield;
    }
    const stored = this.repo.current();
    for (let i = 0; i < stored.length; i++) {
      const p = stored[i]!;
      const key = policyKey(p);
      if (what !== 'test' && keys.has(key)) this.checkWritable(p, 'change');
      next.set(key, p);
      if (i % 100 === 99) yield;
    }
    for (let i = 0; i < incoming.length; i++) {
      const p = incoming[i]!;
      next.set(policyKey(p), desiredPolicy(p, 'api'));
      if (i % 100 === 99) yield;
    }
  }

  /**
   * The Kubernetes API's policy objects (each already checked alone) replace those it owned
   * before. Throws PALISADE_ERR_POLICY_INVALID when the set as a whole does not hold (nothing
   * changes then). Returns the objects the policy directory shadows. While a change from the API is
   * being written, it is made right after that (its refusal or shadowed objects logged) and
   * returns [].
   */
  syncKubernetes(files: PolicyFile[]): string[] {
    this.kubernetesFiles = files;
    if (this.writing) {
      this.defer(() => {
        const shadowed = this.syncKubernetes(files);
        if (shadowed.length > 0) this.log.warn({ objects: shadowed }, 'policy objects the collector\'s policy directory also defines: the directory\'s stay in force');
      }, 'policy objects of the Kubernetes API refused as a set');
      return [];
    }
    const current = this.repo.current();
    let set: PolicySet;
    try {
      set = compilePolicyFiles(files);
      this.kubernetesRefusal = undefined;
    } catch (err) {
      this.kubernetesRefusal = (err as { problems?: readonly string[] }).problems?.[0] ?? (err as Error).message;
      throw err;
    }
    const { next, takenOver, shadowed } = withKubernetesPolicies(set, current);
    for (const p of takenOver) {
      this.log.warn({ policy: policyKey(p), id: p.id }, 'a Kubernetes policy object now defines a policy created through the API: the Kubernetes API owns it from now on');
    }
    const plan = planChanges(current, next);
    const candidate = this.compiled.with(next);
    if (plan.changed) this.commit(plan, candidate, 'kubernetes', 'kubernetes');
    return shadowed;
  }

  private checkWritable(p: StoredPolicy, verb: string): void {
    if (p.origin === 'kubernetes' && this.opts.kubernetes && !this.api?.store.writable(p)) {
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
   * Validate `makeNext()` as a whole, then (unless a dry run) make it the new version and push it.
   * The plan (YAML diffs) is made in the worker or in slices, the candidate set compiled and
   * checked in the worker (set-check.ts: `shown`, of `kinds`, are what the change brings); if another change was committed meanwhile (another request, the policy
   * directory), all of it is made again against the new version, a few times at most. The answer
   * lists what changed, and as `unchanged` only the policies named in `shown` (those of the
   * applied files), not every other stored one.
   */
  private async changeSliced(
    makeNext: () => DesiredPolicy[] | Promise<DesiredPolicy[]>,
    how: { author: string; action: string; dryRun: boolean; shown?: ReadonlySet<string>; kinds?: readonly string[] },
  ): Promise<PolicyChangeResponse> {
    for (let attempt = 1; ; attempt++) {
      await this.idle();
      const base = this.repo.version;
      const next = await makeNext();
      await passTurn(COMPILE_SLICE_MS);
      // each object compiled alone already; the set must hold too (checked while the plan is made)
      const incoming = { keys: [...(how.shown ?? [])], kinds: how.kinds ?? [] };
      const [plan, candidate] = await Promise.all([
        this.parser.plan(this.repo.current(), next, COMPILE_SLICE_MS),
        this.parser.check(next, incoming, () => this.opts.registry().services ?? [], COMPILE_SLICE_MS),
      ]);
      await this.idle(); // a version being written is a change
      if (this.repo.version !== base) {
        if (attempt < MAX_CHANGE_ATTEMPTS) continue;
        throw new PalisadeError('PALISADE_ERR_CONFLICT', 'the policies kept changing while this change was being prepared: try again');
      }
      const changes = plan.changes.filter((c) => c.op !== 'unchanged' || how.shown?.has(policyKey(c)) === true);
      const where = this.storeOf(plan);
      const warnings = where.unserved.map((k) => `the cluster serves no ${k} (its CRD is not installed): kept at this collector only, not shared with other replicas`);
      const warned = warnings.length > 0 ? { warnings } : {};
      if (how.dryRun || !plan.changed) return { version: this.repo.version, applied: false, dryRun: how.dryRun, changes, ...warned };
      const version = where.where === 'api' ? await this.api!.write(plan, how.author, how.action) : await this.commitSliced(plan, candidate, how.author, how.action);
      return { version, applied: true, dryRun: false, changes, ...warned };
    }
  }

  /** Until no change is being written, here or to the Kubernetes API. */
  private async idle(): Promise<void> {
    while (this.writing || this.api?.writing) await (this.writing ?? this.api?.writing);
  }

  /**
   * Whether `plan` is written to the Kubernetes API: in Kubernetes mode, all but the delete of a
   * policy the API does not hold (this replica's own, from before: see publishLocal).
   */
  private storeOf(plan: Plan): { where: 'api' | 'local'; unserved: string[] } {
    if (!this.opts.kubernetes) return { where: 'local', unserved: [] };
    const store = this.api?.store;
    if (!store) throw new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'this collector is not connected to the Kubernetes API yet: try again in a moment');
    return storeOf(plan.changes, store);
  }

  /** The policy directory's files changed (or were read at start): they replace its policies. */
  private syncDir(dir: string, files: PolicyFile[]): void {
    if (this.writing) return this.defer(() => this.syncDir(dir, files), 'the policy directory refused after a change through the API');
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
    const changed = this.audited(plan, author, action);
    const { version } = this.repo.commit(plan, author, action);
    this.checkpointSoon(changed.length);
    return this.committed(version, candidate, changed, author, action);
  }

  /**
   * `commit` for a change from the API: the version's rows are written in slices (the event loop
   * runs between them: a version of thousands of policies must not hold the collector), in one
   * transaction all the same; other changes wait for it (`writing`, `deferred`).
   */
  private async commitSliced(plan: Plan, candidate: SetDigest, author: string, action: string): Promise<number> {
    let done!: () => void;
    this.writing = new Promise((resolve) => (done = resolve));
    try {
      const { changed, anchored } = await this.auditedSynced(plan, author, action);
      try {
        const { version } = await this.repo.commitSliced(plan, author, action, COMPILE_SLICE_MS);
        this.checkpointSoon(changed.length);
        return await this.committedSliced(version, candidate, changed, author, action);
      } finally {
        await anchored; // answered once audit.head names the record too
      }
    } finally {
      this.writing = undefined;
      done();
      for (const run of this.deferred.splice(0)) run();
    }
  }

  /** The audit record of the change `plan` makes (first: a change the log cannot record is refused); what changed. */
  private audited(plan: Plan, author: string, action: string): Array<Pick<PolicyChange, 'op' | 'kind' | 'namespace' | 'name'>> {
    const changed = changesOf(plan);
    this.opts.audit?.append('policy-change', author, { version: this.repo.version + 1, action, changes: changed });
    return changed;
  }

  /**
   * `audited`, the record's sync off the event loop; `anchored` settles once audit.head names it
   * (its writes, two fsyncs, overlap the version's commit: under heavy writes to the same file
   * system each fsync can take seconds).
   */
  private async auditedSynced(plan: Plan, author: string, action: string): Promise<{ changed: ReturnType<PolicyManager['audited']>; anchored: Promise<void> }> {
    const audit = this.opts.audit;
    if (!audit?.appendSynced) return { changed: this.audited(plan, author, action), anchored: Promise.resolve() };
    const changed = changesOf(plan);
    // thousands of changes: the record is made canonical in slices, then appended at once
    const data = await CanonicalData.of({ version: this.repo.version + 1, action, changes: changed }, COMPILE_SLICE_MS);
    const { anchored } = await audit.appendSynced('policy-change', author, data);
    return { changed, anchored };
  }

  /** The version is stored: the compiled set follows it, and every agent gets it. */
  private committed(version: number, candidate: CompiledPolicies, changed: ReturnType<PolicyManager['audited']>, author: string, action: string): number {
    this.compiled = candidate.with(this.repo.current(), this.compiled);
    this.digest = digestOf(this.compiled.set, this.compiled.index);
    this.log.info({ event: 'policy-version', version, author, action, changes: changed.map((c) => `${c.op} ${c.kind} ${c.namespace}/${c.name}`) }, 'policy version ready');
    this.encode();
    this.opts.push(this.encoded);
    return version;
  }

  /**
   * `committed` for a change checked in the worker (`candidate`: its set's digest), the frame
   * encoded in slices (a version of thousands of policies is megabytes of JSON); sessions that say
   * hello meanwhile get the previous frame, then this one with every other session.
   */
  private async committedSliced(version: number, candidate: SetDigest, changed: ReturnType<PolicyManager['audited']>, author: string, action: string): Promise<number> {
    this.digest = candidate;
    this.log.info({ event: 'policy-version', version, author, action, changes: changed.map((c) => `${c.op} ${c.kind} ${c.namespace}/${c.name}`) }, 'policy version ready');
    // the same text as encode(): JSON.stringify with the files' items encoded between event-loop turns, then to bytes the same way
    const slice = new Slice(COMPILE_SLICE_MS);
    const encoded = await jsonSliced({ type: 'policies', version: this.repo.version, files: policyFiles(this.repo.current()) }, COMPILE_SLICE_MS);
    const bytes = await bytesSliced(encoded, slice);
    this.encoded = encoded;
    this.opts.push(bytes);
    return version;
  }

  /**
   * After `changes` more policies were written: once about CHECKPOINT_AFTER_CHANGES were since the
   * last, policies.db is checkpointed in the worker, before its WAL reaches the size at which
   * SQLite checkpoints it on this thread (a 1,000-policy change writes about 350 of its 1,000 pages).
   */
  private checkpointSoon(changes: number): void {
    this.changesSinceCheckpoint += changes;
    if (this.changesSinceCheckpoint < CHECKPOINT_AFTER_CHANGES) return;
    this.changesSinceCheckpoint = 0;
    void this.parser.checkpoint(this.repo.file);
  }

  /** Run `change` once the version being written is committed; a refusal then is logged (`what`). */
  private defer(change: () => void, what: string): void {
    this.deferred.push(() => {
      try {
        change();
      } catch (err) {
        if (!isPalisadeError(err)) throw err;
        this.log.error({ event: 'policy-rejected', problems: (err as { problems?: readonly string[] }).problems ?? [err.message] }, what);
      }
    });
  }

  private encode(): void {
    this.encoded = encodeMessage({ type: 'policies', version: this.repo.version, files: [...this.compiled.files] });
  }
}
