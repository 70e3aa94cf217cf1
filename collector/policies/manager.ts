/**
 * The collector as the source of truth for policies (standalone mode): every change — an
 * `apply`, a `delete`, an `egress allow|deny|remove`, an edit in `--policy-dir` — is validated
 * against the whole set, made a numbered version in the repository (author, time, diff),
 * appended to the audit log and pushed to every agent. Agents answer with the version they
 * enforce (`policy-status`), which `status()` reports next to the collector's own.
 *
 * Policies from `--policy-dir` are owned by the directory: the API can read them but not change
 * them (edit the file); a file that defines a policy created through the API takes it over.
 */
import * as path from 'node:path';
import { endpointMatch } from '../../common/flows-api';
import type {
  EgressLearnResponse,
  EgressListResponse,
  EgressRuleRequest,
  EgressRuleView,
  NodeStatus,
  PolicyChangeResponse,
  PolicyGetResponse,
  PolicyHistoryResponse,
  PolicyListResponse,
  PolicyTestResponse,
  StatusResponse,
  AuditKind,
} from '../../common/control-api';
import { describeCause, invalidArgument, isPalisadeError, PalisadeError } from '../../common/errors';
import { WORKLOAD_LABEL } from '../../common/labels';
import type { Logger } from '../../common/log';
import { encodeMessage, type PolicyStatusMessage, type RegistrySnapshot, type RegistryWorkload } from '../../common/mesh-protocol';
import { compilePolicyFiles, PolicyIndex, type CompiledEgressRule, type CompiledPolicy, type PolicySet } from '../../common/policy';
import { parseCidr } from '../../common/policy/ip';
import { hostProblem } from '../../common/policy/parse-egress';
import { readPolicyDir, watchPolicyDir, type PolicyFile } from '../../common/policy-files';
import type { FlowStore } from '../flows/store';
import { learnEgress } from './learn';
import { replayFlows } from './replay';
import { planChanges, policyKey, PolicyRepository, type DesiredPolicy, type Plan, type StoredPolicy } from './repository';

/** Most flows one `policy test` or `egress learn` reads. */
export const MAX_SCAN_FLOWS = 2_000_000;
const MAX_DESTINATIONS = 100;

export interface AuditSink {
  append(kind: AuditKind, actor: string, data: Record<string, unknown>): unknown;
}

export interface PolicyManagerOptions {
  dataDir: string;
  /** Policies owned by a directory, watched. */
  policyDir?: string;
  log: Logger;
  /** The live workload registry (workload names and labels). */
  registry: () => RegistrySnapshot;
  flows: FlowStore;
  audit?: AuditSink;
  /** Send a `policies` frame to every connected agent. */
  push: (frame: string) => void;
}

interface AgentPolicyState {
  version: number;
  ok: boolean;
  problems: string[];
  time: string;
}

const quote = (v: string): string => JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);

function desiredOf(p: CompiledPolicy, origin: 'api' | 'dir', file?: string): DesiredPolicy {
  return {
    kind: p.kind,
    namespace: p.namespace,
    name: p.name,
    origin,
    ...(file === undefined ? {} : { file }),
    manifest: p.manifest as Record<string, unknown>,
  };
}

const filesOf = (set: readonly DesiredPolicy[]): PolicyFile[] =>
  set.map((p) => ({ source: `${p.origin}:${policyKey(p)}`, text: JSON.stringify(p.manifest) }));

export class PolicyManager {
  private readonly repo: PolicyRepository;
  private readonly log: Logger;
  private encoded = '';
  private stopWatching: (() => void) | undefined;
  private readonly agents = new Map<string, AgentPolicyState>();

  constructor(private readonly opts: PolicyManagerOptions) {
    this.log = opts.log.child({ component: 'policies' });
    this.repo = PolicyRepository.open(opts.dataDir);
  }

  /**
   * Load the store; with a policy directory, bring its policies in (a directory that does not
   * validate refuses the start: PALISADE_ERR_POLICY_INVALID with every problem) and watch it.
   */
  start(): void {
    // What is stored must still compile (a newer collector may be stricter): refuse to push garbage.
    compilePolicyFiles(filesOf(this.repo.current()));
    const dir = this.opts.policyDir;
    if (dir !== undefined) {
      const files = readPolicyDir(dir);
      this.syncDir(files);
      this.stopWatching = watchPolicyDir(dir, files, {
        onFiles: (next) => {
          try {
            this.syncDir(next);
          } catch (err) {
            if (!isPalisadeError(err)) throw err;
            const problems = (err as { problems?: readonly string[] }).problems ?? [err.message];
            this.log.error({ event: 'policy-rejected', problems }, `policy change rejected (policy directory); agents keep version ${this.repo.version}`);
          }
        },
        onError: (err) => this.log.error({ dir, error: describeCause(err) }, 'policy directory unreadable'),
      });
    }
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
    this.agents.set(node, { version: m.version, ok: m.ok, problems: m.problems, time: new Date().toISOString() });
    if (!m.ok) this.log.error({ node, version: m.version, problems: m.problems.slice(0, 5) }, 'agent rejected a policy version');
    else this.log.debug({ node, version: m.version }, 'agent enforces policy version');
  }

  status(extra: { flowsStored: number; auditRecords: number }): StatusResponse {
    const snap = this.opts.registry();
    const workloads = new Map<string, number>();
    for (const w of snap.workloads) workloads.set(w.node, (workloads.get(w.node) ?? 0) + 1);
    const nodes: NodeStatus[] = snap.nodes
      .map((n) => {
        const state = this.agents.get(n.node);
        return {
          node: n.node,
          connected: n.online,
          ...(state ? { policyVersion: state.version } : {}),
          ...(state && !state.ok ? { policyProblems: state.problems } : {}),
          workloads: workloads.get(n.node) ?? 0,
          lastSeen: n.lastSeen,
        };
      })
      .sort((a, b) => (a.node < b.node ? -1 : 1));
    return { policyVersion: this.repo.version, nodes, flows: { stored: extra.flowsStored }, audit: { records: extra.auditRecords } };
  }

  // ---- reads ------------------------------------------------------------------------------

  list(): PolicyListResponse {
    return { version: this.repo.version, policies: this.repo.current().map((p) => this.repo.summary(p)) };
  }

  get(ref: string): PolicyGetResponse {
    const p = this.resolve(ref);
    return { policy: this.repo.summary(p), manifest: p.manifest };
  }

  history(ref?: string): PolicyHistoryResponse {
    if (ref === undefined) return { versions: this.repo.history() };
    // A deleted policy has history but is no longer stored: accept a full Kind/namespace/name.
    const key = this.findKey(ref);
    return { versions: this.repo.history(key) };
  }

  // ---- writes -----------------------------------------------------------------------------

  /** Create or replace every policy in `files`, all or nothing. */
  apply(files: PolicyFile[], dryRun: boolean, author: string): PolicyChangeResponse {
    const { next, warnings, incoming } = this.withFiles(files, 'apply');
    return { ...this.change(next, author, 'apply', dryRun, incoming), ...(warnings.length ? { warnings } : {}) };
  }

  delete(ref: string, dryRun: boolean, author: string): PolicyChangeResponse {
    const target = this.resolve(ref);
    this.checkWritable(target, 'delete');
    const next = this.repo.current().filter((p) => p.id !== target.id);
    return this.change(next, author, 'delete', dryRun);
  }

  /** `egress allow|deny W DEST… [--port P]`: one new EgressPolicy selecting exactly that workload. */
  egressRule(req: EgressRuleRequest, author: string): PolicyChangeResponse {
    const w = this.workload(req.workload);
    if (!Array.isArray(req.destinations) || req.destinations.length === 0) throw invalidArgument('name at least one destination (a host, *.suffix or CIDR)');
    if (req.destinations.length > MAX_DESTINATIONS) throw invalidArgument(`at most ${MAX_DESTINATIONS} destinations at once`);
    const hosts: string[] = [];
    const cidrs: string[] = [];
    for (const d of req.destinations) {
      const kind = classifyDestination(d);
      if ('problem' in kind) throw invalidArgument(`invalid destination ${quote(String(d))}: ${kind.problem}`);
      if (kind.host !== undefined) hosts.push(kind.host);
      else cidrs.push(kind.cidr);
    }
    const ports = req.ports ?? [];
    for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalidArgument(`invalid port ${quote(String(p))}: use a number from 1 to 65535`);
    const portList = [...new Set(ports)].sort((a, b) => a - b);
    const entry = (k: 'hosts' | 'cidrs', values: string[]): Record<string, unknown> => ({
      [k]: [...new Set(values)],
      ...(portList.length ? { ports: portList } : {}),
    });
    const id = this.repo.nextId();
    const name = `${w.name}-${req.action}-${id}`.slice(0, 63).replace(/-+$/, '');
    const manifest = {
      apiVersion: 'palisade.dev/v1',
      kind: 'EgressPolicy',
      metadata: { name, namespace: w.namespace, labels: { 'palisade.dev/managed-by': 'cli' } },
      spec: {
        selector: { matchLabels: { [WORKLOAD_LABEL]: w.name } },
        [req.action]: [...(hosts.length ? [entry('hosts', hosts)] : []), ...(cidrs.length ? [entry('cidrs', cidrs)] : [])],
      },
    };
    const { next } = this.withFiles([{ source: `egress ${req.action}`, text: JSON.stringify(manifest) }], 'egress');
    const result = this.change(next, author, `egress-${req.action}`, req.dryRun === true);
    return { ...result, id };
  }

  egressRemove(id: number, dryRun: boolean, author: string): PolicyChangeResponse {
    if (!Number.isSafeInteger(id) || id < 1) throw invalidArgument(`invalid id ${quote(String(id))}: use an ID from palisade egress list`);
    const target = this.repo.byId(id);
    if (!target || target.kind !== 'EgressPolicy') {
      throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no egress rule with ID ${id} (palisade egress list shows them)`);
    }
    this.checkWritable(target, 'remove');
    const next = this.repo.current().filter((p) => p.id !== id);
    return this.change(next, author, 'egress-remove', dryRun);
  }

  egressList(workloadRef?: string): EgressListResponse {
    const snap = this.opts.registry();
    const only = workloadRef === undefined ? undefined : this.workload(workloadRef);
    const stored = new Map(this.repo.current().map((p) => [policyKey(p), p]));
    // Selection and rules as the agents see them: the compiled set and its index.
    const index = new PolicyIndex(compilePolicyFiles(filesOf([...stored.values()].filter((p) => p.kind === 'EgressPolicy'))));
    const rules: EgressRuleView[] = [];
    for (const p of index.egress) {
      const selected = snap.workloads.filter((w) => index.selects(p, w));
      if (only && !selected.some((w) => w.namespace === only.namespace && w.name === only.name)) continue;
      const { id, origin, version } = stored.get(policyKey(p))!;
      const workloads = [...new Set(selected.map((w) => `${w.namespace}/${w.name}`))].sort();
      const view = (action: 'allow' | 'deny', r: CompiledEgressRule): EgressRuleView => ({
        id,
        namespace: p.namespace,
        policy: p.name,
        selector: p.selector ? { ...p.selector } : null,
        workloads,
        action,
        hosts: [...(r.hosts ?? []), ...r.hostSuffixes.map((suffix) => `*${suffix}`)],
        cidrs: (r.cidrs ?? []).map((c) => c.text),
        ports: r.ports ? [...r.ports].sort((x, y) => x - y) : [],
        origin,
        version,
      });
      rules.push(...p.deny.map((r) => view('deny', r)), ...p.rules.map((r) => view('allow', r)));
    }
    return { version: this.repo.version, rules };
  }

  learn(workloadRef: string, since: number, opts: { groupSuffixes: boolean; includeDenied: boolean }): EgressLearnResponse {
    const w = this.workload(workloadRef, true);
    const flows = this.opts.flows.scan({ direction: 'egress', from: `${w.namespace}/${w.name}`, since }, MAX_SCAN_FLOWS);
    return learnEgress(flows, w, opts);
  }

  /** Replay stored flows since `since` under the current set and under the set `files` would make. */
  test(files: PolicyFile[], since: number): PolicyTestResponse {
    const { next } = this.withFiles(files, 'test');
    const current = compilePolicyFiles(filesOf(this.repo.current()));
    const candidate = compilePolicyFiles(filesOf(next));
    const labels = new Map(this.opts.registry().workloads.map((w) => [`${w.namespace}/${w.name}`, w.labels]));
    return replayFlows({
      flows: this.opts.flows.scan({ since }, MAX_SCAN_FLOWS),
      current,
      candidate,
      workloadLabels: (namespace, name) => labels.get(`${namespace}/${name}`),
    });
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
    for (const p of incoming) next.set(policyKey(p), desiredOf(p, 'api'));
    return { next: [...next.values()], warnings: [...(set.warnings ?? [])], incoming: keys };
  }

  private checkWritable(p: StoredPolicy, verb: string): void {
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
    compilePolicyFiles(filesOf(next)); // each object compiled alone already; the set must hold too
    const changes = plan.changes.filter((c) => c.op !== 'unchanged' || shown?.has(policyKey(c)) === true);
    if (dryRun || !plan.changed) return { version: this.repo.version, applied: false, dryRun, changes };
    const version = this.commit(plan, author, action);
    return { version, applied: true, dryRun: false, changes };
  }

  private syncDir(files: PolicyFile[]): void {
    const dir = this.opts.policyDir!;
    const set = compilePolicyFiles(files);
    const fromDir = [...set.authorization, ...set.egress].map((p) => desiredOf(p, 'dir', path.relative(dir, p.source) || p.source));
    const dirKeys = new Set(fromDir.map(policyKey));
    const current = this.repo.current();
    for (const p of current) {
      if (p.origin === 'api' && dirKeys.has(policyKey(p))) {
        this.log.warn({ policy: policyKey(p), id: p.id }, 'the policy directory now defines a policy created through the API: the directory owns it from now on');
      }
    }
    const next = [...current.filter((p) => p.origin !== 'dir' && !dirKeys.has(policyKey(p))), ...fromDir];
    const plan = planChanges(current, next);
    compilePolicyFiles(filesOf(next));
    if (!plan.changed) return;
    this.commit(plan, 'policy-dir', 'policy-dir');
  }

  /**
   * Audit, store, push. The audit record is written first: a change the audit log cannot record
   * (a tampered or broken log) is refused and nothing changes.
   */
  private commit(plan: Plan, author: string, action: string): number {
    const changed = plan.changes.filter((c) => c.op !== 'unchanged').map((c) => ({ op: c.op, kind: c.kind, namespace: c.namespace, name: c.name }));
    this.opts.audit?.append('policy-change', author, { version: this.repo.version + 1, action, changes: changed });
    const { version } = this.repo.commit(plan, author, action);
    this.log.info({ event: 'policy-version', version, author, action, changes: changed.map((c) => `${c.op} ${c.kind} ${c.namespace}/${c.name}`) }, 'policy version ready');
    this.encode();
    this.opts.push(this.encoded);
    return version;
  }

  private encode(): void {
    this.encoded = encodeMessage({ type: 'policies', version: this.repo.version, files: filesOf(this.repo.current()) });
  }

  /** `[Kind/]namespace/name` or a unique name → the stored policy. */
  private resolve(ref: string): StoredPolicy {
    const matches = this.matching(ref);
    if (matches.length === 0) throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no policy ${quote(ref)} (palisade policy list shows them)`);
    if (matches.length > 1) {
      throw invalidArgument(`${quote(ref)} names ${matches.length} policies (${matches.map((p) => policyKey(p)).join(', ')}): name it as Kind/namespace/name`);
    }
    return matches[0]!;
  }

  private matching(ref: string): StoredPolicy[] {
    if (typeof ref !== 'string' || ref.length === 0 || ref.length > 512) throw invalidArgument('invalid policy name: give [Kind/]namespace/name or a name');
    const parts = ref.split('/');
    if (parts.length > 3 || parts.some((x) => x === '')) throw invalidArgument(`invalid policy name ${quote(ref)}: give [Kind/]namespace/name or a name`);
    const [kind, namespace, name] = parts.length === 3 ? parts : parts.length === 2 ? [undefined, parts[0], parts[1]] : [undefined, undefined, parts[0]];
    if (kind !== undefined && kind !== 'AuthorizationPolicy' && kind !== 'EgressPolicy') {
      throw invalidArgument(`invalid policy kind ${quote(kind)}: use AuthorizationPolicy or EgressPolicy`);
    }
    return this.repo
      .current()
      .filter((p) => (kind === undefined || p.kind === kind) && (namespace === undefined || p.namespace === namespace) && p.name === name);
  }

  /** The history key for `ref`: a stored policy, or a full Kind/namespace/name of a deleted one. */
  private findKey(ref: string): string {
    const matches = this.matching(ref);
    if (matches.length === 1) return policyKey(matches[0]!);
    if (matches.length > 1) return policyKey(this.resolve(ref));
    const parts = ref.split('/');
    if (parts.length === 3 && this.repo.history(ref, 1).length > 0) return ref;
    throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `no policy ${quote(ref)} (a deleted one needs its full Kind/namespace/name)`);
  }

  /** A registered workload by `namespace/name` or unique `name`. */
  private workload(ref: string, allowUnknownNamespaced = false): { namespace: string; name: string } {
    if (typeof ref !== 'string' || ref.length === 0 || ref.length > 253) throw invalidArgument('invalid workload: give namespace/name or name');
    const m = endpointMatch(ref);
    const snap = this.opts.registry();
    let found: RegistryWorkload[];
    if (m.kind === 'namespaced') found = snap.workloads.filter((w) => w.namespace === m.namespace && w.name === m.workload);
    else if (m.kind === 'workload') found = snap.workloads.filter((w) => w.name === m.workload);
    else throw invalidArgument(`invalid workload ${quote(ref)}: give namespace/name or name, not an address or identity`);
    const unique = [...new Map(found.map((w) => [`${w.namespace}/${w.name}`, w])).values()];
    if (unique.length === 1) return { namespace: unique[0]!.namespace, name: unique[0]!.name };
    if (unique.length > 1) throw invalidArgument(`workload ${quote(ref)} is ambiguous (${unique.map((w) => `${w.namespace}/${w.name}`).join(', ')}): name it as namespace/name`);
    if (allowUnknownNamespaced && m.kind === 'namespaced') return { namespace: m.namespace, name: m.workload };
    const known = [...new Set(snap.workloads.map((w) => `${w.namespace}/${w.name}`))].sort().slice(0, 10);
    throw new PalisadeError('PALISADE_ERR_NOT_FOUND', `unknown workload ${quote(ref)} (registered: ${known.length ? known.join(', ') : 'none'})`);
  }
}

/** A destination from the command line: a host, `*.suffix`, or an address / CIDR. */
export function classifyDestination(d: unknown): { host: string } | { cidr: string; host?: undefined } | { problem: string } {
  if (typeof d !== 'string' || d.length === 0 || d.length > 300) return { problem: 'give a host, *.suffix or CIDR' };
  const looksIp = /^[0-9.]+(\/\d+)?$/.test(d) || d.includes(':');
  if (looksIp) {
    const r = parseCidr(d);
    if ('problem' in r) return { problem: r.problem };
    return { cidr: r.cidr.text };
  }
  const host = d.toLowerCase().replace(/\.$/, '');
  const problem = hostProblem(host);
  return problem ? { problem } : { host };
}
