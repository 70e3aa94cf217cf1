/**
 * The agent's side of the per-pod filters (bpf/pod.bpf.c):
 * - registers the agent's cgroup, the only sockets strict pods take new connections from, and
 *   withdraws it when the agent stops;
 * - keeps the kernel's UDP/ICMP rules (palisade_rules) equal to the policies in force for the
 *   enrolled pods (kernel-rules.ts): compiled again only when what they are made of changes (the
 *   policies, the enrolled pods, and the mesh's workloads when a strict pod takes UDP), written
 *   whole in slices off the event loop's critical path, one write at a time. A set that cannot be
 *   written fails closed for the pods whose rules changed (rule-plan.ts), is counted
 *   (`palisade_wire_rules_stale`, `palisade_wire_rule_failures_total`, the node's `palisade
 *   status`) and tried again with backoff;
 * - reports every interval what the filters dropped and let through (packet-summaries.ts);
 *   a draining agent stops both (stopReporting) and leaves them to its successor.
 */
import type { Registry } from 'prom-client';
import { describeCause } from '../../common/errors';
import type { FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { PolicyIndex } from '../../common/policy';
import type { Datapath } from '../datapath/datapath';
import { ownCgroup } from '../datapath/mounts';
import { MAX_RULES_PER_GENERATION, writeRuleSet } from '../datapath/pod-rules';
import { registerAgentCgroup, unregisterAgentCgroup } from '../datapath/pod-wire';
import type { LocalWorkloads } from '../local-workloads';
import type { MeshRegistry } from '../mesh/mesh-registry';
import { ReadCounter } from '../metrics/series';
import type { EnforcedPolicies } from '../policy/enforced';
import { allowedPorts, compileKernelRules, type KernelRule, type RulePod, type RuleRef, type RuleSource } from './kernel-rules';
import { DropTotals, PacketSummaries } from './packet-summaries';
import { changedPods, failClosedRules, refKey, retryDelayMs, rulesByPod, signatures } from './rule-plan';
import type { Named, SummaryContext } from './summary-flows';

export const DEFAULT_SUMMARY_INTERVAL_MS = 10_000;

export interface WireEnforcementInputs {
  node: string;
  datapath: Datapath;
  workloads: LocalWorkloads;
  policies: EnforcedPolicies;
  /** The mesh's workloads, once the agent is meshed. */
  registry?: () => MeshRegistry | undefined;
  /** Where the summaries go (the agent's flow sink: access log, collector; the traffic metrics skip them). */
  flows: FlowSink;
  totals: DropTotals;
  summaryIntervalMs?: number;
  /** Rule entries written at most (default and ceiling: the table's half, MAX_RULES_PER_GENERATION). */
  maxRules?: number;
  /** The rules in force went stale (the problem) or are current again (undefined). */
  onStale?: (problem: string | undefined) => void;
  log: Logger;
}

/** What the rules in force are, next to what the policies want. */
export interface WireRulesState {
  /** The last write was not the whole wanted set: the pods in `closedPods` are denied UDP/ICMP by rules. */
  stale: boolean;
  /** Enrolled pods whose rules could not be written (kernel ids). */
  closedPods: number[];
  /** Why, when stale. */
  problem?: string;
  /** Writes that failed since the agent started. */
  failures: number;
}

/** The inputs the rules were last compiled from: the same again compiles to the same rules. */
interface CompiledFrom {
  index: PolicyIndex;
  pods: string;
  sources: string;
}

export class WireEnforcement {
  private readonly cgroup: { path: string; id: bigint };
  private readonly log: Logger;
  private readonly summaries: PacketSummaries;
  /**
   * Rule refs handed to the kernel, by number. Numbers are never reused; those neither the
   * generation in force nor the one before uses are forgotten after each write (a flow still
   * naming one is reported with reason `rule-changed`).
   */
  private readonly refs = new Map<number, RuleRef>();
  private readonly refIds = new Map<string, number>();
  private nextRef = 1;
  /** Ref numbers the last two generations use. */
  private refsInUse: Array<Set<number>> = [new Set(), new Set()];
  private timers: NodeJS.Timeout[] = [];
  private registryVersion = -1;
  private reportingStopped = false;
  /** The enrolled pods the rules were last written for. */
  private enrolled = '';
  private compiledFrom: CompiledFrom | undefined;
  /** Per pod, the signature of its rules in the kernel. */
  private inForce = new Map<number, string>();
  /** False until this agent wrote a set: what a previous agent left is unknown and always replaced. */
  private inForceKnown = false;
  private writing = false;
  private again = false;
  private retry: NodeJS.Timeout | undefined;
  /** The retry's time came: stale rules are tried again even if nothing they are made of changed. */
  private retryDue = false;
  private failuresInRow = 0;
  private readonly maxRules: number;
  private readonly state: WireRulesState = { stale: false, closedPods: [], failures: 0 };
  private readonly onPolicies = (): void => this.syncRules();

  constructor(private readonly inputs: WireEnforcementInputs) {
    this.log = inputs.log.child({ component: 'wire' });
    this.cgroup = ownCgroup();
    const ctx: Omit<SummaryContext, 'intervalMs'> = {
      node: inputs.node,
      pod: (id) => this.podsById().get(id),
      peer: (ip) => this.peer(ip),
      rule: (ref) => this.refs.get(ref),
    };
    this.maxRules = Math.min(inputs.maxRules ?? MAX_RULES_PER_GENERATION, MAX_RULES_PER_GENERATION);
    this.summaries = new PacketSummaries(inputs.datapath, ctx, inputs.flows, inputs.totals, this.log);
  }

  /** After enrollment: the agent's cgroup in, the rules written, the counters read from now on. */
  start(): void {
    registerAgentCgroup(this.inputs.datapath, this.cgroup.id, process.pid);
    this.log.info({ cgroup: this.cgroup.path, cgroupId: this.cgroup.id.toString() }, 'strict pods accept connections from this cgroup');
    this.syncRules();
    this.summaries.start();
    this.inputs.policies.on('change', this.onPolicies);
    const every = this.inputs.summaryIntervalMs ?? DEFAULT_SUMMARY_INTERVAL_MS;
    this.timers = [setInterval(() => this.report(), every), setInterval(() => this.watchRegistry(), 1000)];
    for (const t of this.timers) t.unref();
  }

  /** Enrollment changed: the rules follow. */
  refresh(): void {
    this.syncRules();
  }

  /** One summary interval now (also what close() ends with). */
  report(): void {
    try {
      this.summaries.collect();
    } catch (err) {
      this.log.error({ err }, 'cannot read the per-pod counters');
    }
  }

  /**
   * Stop reporting and writing rules (a draining agent hands both to its successor): one last
   * interval is reported now, none after. The agent's cgroup stays registered.
   */
  stopReporting(): void {
    if (this.reportingStopped) return;
    this.reportingStopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.inputs.policies.off('change', this.onPolicies);
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.report();
  }

  /** `palisade_wire_rules_stale` and `palisade_wire_rule_failures_total`. */
  register(registry: Registry): void {
    new ReadCounter(
      'palisade_wire_rules_stale',
      'Enrolled pods whose UDP/ICMP rules could not be written to the kernel: denied UDP/ICMP by rules (fail closed) until a retry writes them; 0 when the rules in force are the policies\'',
      () => [{ labels: {}, value: this.state.closedPods.length }],
      'gauge',
    ).register(registry);
    new ReadCounter(
      'palisade_wire_rule_failures_total',
      'Writes of the UDP/ICMP rules that failed (too many entries, a map error); each is retried with backoff',
      () => [{ labels: {}, value: this.state.failures }],
    ).register(registry);
  }

  close(): void {
    this.stopReporting();
    try {
      unregisterAgentCgroup(this.inputs.datapath, this.cgroup.id, process.pid);
    } catch {
      // The data path is gone already (uninstalled): nothing to withdraw.
    }
  }

  /** Every second: a new registry version or another set of enrolled pods may change the rules. */
  private watchRegistry(): void {
    const v = this.inputs.registry?.()?.version ?? -1;
    const pods = this.inputs.datapath
      .pods()
      .map((p) => `${p.podId}:${p.netnsCookie}`)
      .sort()
      .join(',');
    if (v === this.registryVersion && pods === this.enrolled) return;
    this.registryVersion = v;
    this.enrolled = pods;
    this.syncRules();
  }

  /** Bring the rules in the kernel in line with the policies: one write at a time, the last asked for wins. */
  private syncRules(): void {
    if (this.reportingStopped) return;
    if (this.writing) {
      this.again = true;
      return;
    }
    this.writing = true;
    void (async () => {
      do {
        this.again = false;
        try {
          await this.syncOnce();
        } catch (err) {
          this.log.error({ err }, 'UDP/ICMP rules not updated');
        }
      } while (this.again && !this.reportingStopped);
      this.writing = false;
    })();
  }

  /** Compile (when an input changed) and write what differs from what is in force. */
  private async syncOnce(): Promise<void> {
    const started = process.hrtime.bigint();
    const index = this.inputs.policies.index;
    const pods: RulePod[] = [];
    for (const [podId, w] of this.podsById()) pods.push({ podId, workload: { namespace: w.namespace, labels: w.labels, ip: w.ip, strict: w.strict } });
    // The mesh's workloads matter only to strict pods that take UDP on some port.
    const needSources = pods.some((p) => p.workload.strict && allowedPorts(index, p.workload).length > 0);
    const sources = needSources ? this.sources() : [];
    const from: CompiledFrom = {
      index,
      pods: JSON.stringify(pods),
      sources: sources.map((s) => `${s.ip} ${s.identity} ${s.namespace}`).join('\n'),
    };
    const prev = this.compiledFrom;
    const retrying = this.state.stale && this.retryDue;
    this.retryDue = false;
    // Unchanged inputs compile to the same rules: nothing to do, unless stale rules are due a retry.
    if (!retrying && prev && prev.index === from.index && prev.pods === from.pods && prev.sources === from.sources) return;
    const rules = compileKernelRules(pods, index, sources);
    const byPod = rulesByPod(rules);
    const wanted = signatures(byPod);
    const changed = changedPods(this.inForce, wanted);
    this.compiledFrom = from;
    if (changed.length === 0 && this.inForceKnown) return this.nowCurrent(); // what the kernel has is what is wanted
    try {
      const gen = await this.write(rules);
      this.inForce = wanted;
      this.nowCurrent();
      this.log.info({ event: 'wire-rules', entries: rules.length, pods: changed.length, generation: gen, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'UDP/ICMP rules in force');
      return;
    } catch (err) {
      await this.failed(describeCause(err), byPod, changed);
    }
  }

  /** The wanted set could not be written: the pods whose rules changed get none, and a retry is planned. */
  private async failed(problem: string, byPod: Map<number, KernelRule[]>, changed: number[]): Promise<void> {
    this.state.failures++;
    this.failuresInRow++;
    // A pod whose rules were all taken away is where it should be once it has none.
    let closedPods = changed.filter((pod) => byPod.has(pod));
    let note = `${problem}; UDP/ICMP of the ${closedPods.length} pod(s) whose rules changed is denied until they are written`;
    const closed = failClosedRules(byPod, changed);
    try {
      await this.write(closed);
      const kept = new Map(this.inForce);
      for (const pod of changed) kept.delete(pod);
      this.inForce = kept;
      if (closedPods.length === 0) {
        this.log.warn({ event: 'wire-rules', entries: closed.length, problem, failures: this.state.failures }, 'UDP/ICMP rules in force, written without the pods whose rules were removed');
        return this.nowCurrent();
      }
    } catch (err) {
      // Not even that: no rule for any pod, which denies every pod's UDP/ICMP by rules.
      this.state.failures++;
      closedPods = [...new Set([...byPod.keys(), ...this.inForce.keys()])].sort((a, b) => a - b);
      note = `${problem}; nor the fail-closed set (${describeCause(err)}): UDP/ICMP by rules is denied to every pod`;
      try {
        await this.write([]);
        this.inForce = new Map();
      } catch (last) {
        note = `${problem}; no set could be written (${describeCause(last)}): the rules in force may be looser than the policies`;
      }
    }
    this.state.stale = true;
    this.state.closedPods = closedPods;
    this.state.problem = note;
    this.log.error({ event: 'wire-rules-stale', pods: closedPods.length, failures: this.state.failures, problem: note }, 'UDP/ICMP rules not written; failing closed');
    this.inputs.onStale?.(note);
    this.planRetry();
  }

  private planRetry(): void {
    if (this.retry || this.reportingStopped) return;
    const wait = retryDelayMs(this.failuresInRow);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.retryDue = true;
      this.syncRules();
    }, wait);
    this.retry.unref();
  }

  /** The wanted set is in force (again). */
  private nowCurrent(): void {
    this.failuresInRow = 0;
    if (!this.state.stale) return;
    this.state.stale = false;
    this.state.closedPods = [];
    delete this.state.problem;
    this.log.info({ event: 'wire-rules-current' }, 'UDP/ICMP rules in force are the policies\' again');
    this.inputs.onStale?.(undefined);
  }

  /** Number the refs, write the set, forget refs neither this generation nor the one before uses. */
  private async write(rules: readonly KernelRule[]): Promise<number> {
    const used = new Set<number>();
    const entries = rules.map((r) => {
      const ref = this.refOf(r.ref);
      used.add(ref);
      return { ...r, ref };
    });
    const gen = await writeRuleSet(this.inputs.datapath, entries, this.maxRules);
    this.inForceKnown = true;
    this.refsInUse = [this.refsInUse[1]!, used];
    for (const [key, id] of this.refIds) {
      if (this.refsInUse[0]!.has(id) || used.has(id)) continue;
      this.refIds.delete(key);
      this.refs.delete(id);
    }
    return gen;
  }

  private refOf(ref: RuleRef): number {
    const key = refKey(ref);
    let id = this.refIds.get(key);
    if (id === undefined) {
      id = this.nextRef++;
      this.refs.set(id, ref);
      this.refIds.set(key, id);
    }
    return id;
  }

  /** The enrolled pods by their kernel id, with the workload each is. */
  private podsById(): Map<number, ReturnType<LocalWorkloads['all']>[number] & Named> {
    const out = new Map<number, ReturnType<LocalWorkloads['all']>[number] & Named>();
    for (const p of this.inputs.datapath.pods()) {
      const w = this.inputs.workloads.byNetnsCookie(p.netnsCookie);
      if (w) out.set(p.podId, { ...w, workload: w.name });
    }
    return out;
  }

  /** Sources UDP to a strict pod may come from: this node's workloads and the mesh's. */
  private sources(): RuleSource[] {
    const out = new Map<string, RuleSource>();
    for (const w of this.inputs.registry?.()?.all() ?? []) out.set(w.ip, { ip: w.ip, identity: w.identity, namespace: w.namespace });
    for (const w of this.inputs.workloads.all()) out.set(w.ip, { ip: w.ip, identity: w.identity, namespace: w.namespace });
    return [...out.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0)); // the same mesh compiles to the same rules
  }

  private peer(ip: string): (Named & { mesh: boolean }) | undefined {
    const local = this.inputs.workloads.byIp(ip);
    if (local) return { workload: local.name, namespace: local.namespace, identity: local.identity, mesh: true };
    const remote = this.inputs.registry?.()?.byIp(ip);
    return remote ? { workload: remote.name, namespace: remote.namespace, identity: remote.identity, mesh: true } : undefined;
  }
}

export { DropTotals };
