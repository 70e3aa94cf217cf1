/**
 * The agent's side of the per-pod filters (bpf/pod.bpf.c):
 * - registers the agent's cgroup, the only sockets strict pods take new connections from, and
 *   withdraws it when the agent stops;
 * - keeps the kernel's UDP/ICMP rules (palisade_rules) equal to the policies in force for the
 *   enrolled pods (kernel-rules.ts), rewritten whole when policies, enrollment or the mesh change;
 * - reports every interval what the filters dropped and let through (packet-summaries.ts);
 *   a draining agent stops both (stopReporting) and leaves them to its successor.
 */
import type { FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { PolicyIndex } from '../../common/policy';
import type { Datapath } from '../datapath/datapath';
import { ownCgroup } from '../datapath/mounts';
import { writeRuleSet } from '../datapath/pod-rules';
import { registerAgentCgroup, unregisterAgentCgroup } from '../datapath/pod-wire';
import type { LocalWorkloads } from '../local-workloads';
import type { MeshRegistry } from '../mesh/mesh-registry';
import type { EnforcedPolicies } from '../policy/enforced';
import { compileKernelRules, type RulePod, type RuleRef, type RuleSource } from './kernel-rules';
import { DropTotals, PacketSummaries } from './packet-summaries';
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
  log: Logger;
}

export class WireEnforcement {
  private readonly cgroup: { path: string; id: bigint };
  private readonly log: Logger;
  private readonly summaries: PacketSummaries;
  /** Rule refs handed to the kernel: kept for the agent's life so a flow's ref always resolves. */
  private readonly refs: RuleRef[] = [];
  private readonly refIds = new Map<string, number>();
  private timers: NodeJS.Timeout[] = [];
  private registryVersion = -1;
  private reportingStopped = false;
  /** The enrolled pods the rules were last written for. */
  private enrolled = '';
  private readonly onPolicies = (): void => this.syncRules();

  constructor(private readonly inputs: WireEnforcementInputs) {
    this.log = inputs.log.child({ component: 'wire' });
    this.cgroup = ownCgroup();
    const ctx: Omit<SummaryContext, 'intervalMs'> = {
      node: inputs.node,
      pod: (id) => this.podsById().get(id),
      peer: (ip) => this.peer(ip),
      rule: (ref) => this.refs[ref - 1],
    };
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
    this.report();
  }

  close(): void {
    this.stopReporting();
    try {
      unregisterAgentCgroup(this.inputs.datapath, this.cgroup.id, process.pid);
    } catch {
      // The data path is gone already (uninstalled): nothing to withdraw.
    }
  }

  /** Every second: a new registry version or another set of enrolled pods rewrites the rules. */
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

  /** Compile and write the UDP/ICMP rules; a failure keeps the rules in force (logged). */
  private syncRules(index: PolicyIndex = this.inputs.policies.index): void {
    const started = process.hrtime.bigint();
    try {
      const pods: RulePod[] = [];
      for (const [podId, w] of this.podsById()) pods.push({ podId, workload: { namespace: w.namespace, labels: w.labels, ip: w.ip, strict: w.strict } });
      const rules = compileKernelRules(pods, index, this.sources());
      const gen = writeRuleSet(
        this.inputs.datapath,
        rules.map((r) => ({ ...r, ref: this.refOf(r.ref) })),
      );
      this.log.info({ event: 'wire-rules', entries: rules.length, generation: gen, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'UDP/ICMP rules in force');
    } catch (err) {
      this.log.error({ err }, 'UDP/ICMP rules not updated; the ones in force stay');
    }
  }

  private refOf(ref: RuleRef): number {
    const key = `${ref.reason}|${ref.policy ?? ''}|${ref.rule}`;
    let id = this.refIds.get(key);
    if (id === undefined) {
      this.refs.push(ref);
      id = this.refs.length;
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
    return [...out.values()];
  }

  private peer(ip: string): (Named & { mesh: boolean }) | undefined {
    const local = this.inputs.workloads.byIp(ip);
    if (local) return { workload: local.name, namespace: local.namespace, identity: local.identity, mesh: true };
    const remote = this.inputs.registry?.()?.byIp(ip);
    return remote ? { workload: remote.name, namespace: remote.namespace, identity: remote.identity, mesh: true } : undefined;
  }
}

export { DropTotals };
