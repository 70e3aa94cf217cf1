/**
 * Which policy version each agent enforces: agents answer every `policies` frame with a
 * `policy-status` (the version, or the problems that made them keep the previous one), and
 * `palisade status` shows it per node next to the collector's own version.
 */
import type { NodeStatus, StatusResponse } from '../../common/control-api';
import type { Logger } from '../../common/log';
import type { PolicyStatusMessage, RegistrySnapshot } from '../../common/mesh-protocol';

interface AgentPolicyState {
  version: number;
  ok: boolean;
  problems: string[];
  wireRules?: string;
  time: string;
}

export class AgentPolicyStatus {
  private readonly agents = new Map<string, AgentPolicyState>();

  constructor(private readonly log: Logger) {}

  /** An agent said which version it enforces. */
  report(node: string, m: PolicyStatusMessage): void {
    const before = this.agents.get(node)?.wireRules;
    this.agents.set(node, { version: m.version, ok: m.ok, problems: m.problems, ...(m.wireRules !== undefined ? { wireRules: m.wireRules } : {}), time: new Date().toISOString() });
    if (m.wireRules !== undefined && m.wireRules !== before) this.log.error({ node, problem: m.wireRules }, 'agent cannot write its UDP/ICMP rules (failing closed)');
    if (!m.ok) this.log.error({ node, version: m.version, problems: m.problems.slice(0, 5) }, 'agent rejected a policy version');
    else this.log.debug({ node, version: m.version }, 'agent enforces policy version');
  }

  /** The status answer: the collector's version and, per registered node, what it enforces. */
  status(snap: RegistrySnapshot, policyVersion: number, extra: { flowsStored: number; auditRecords: number }): StatusResponse {
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
          ...(state?.wireRules !== undefined ? { wireRulesStale: state.wireRules } : {}),
          workloads: workloads.get(n.node) ?? 0,
          lastSeen: n.lastSeen,
        };
      })
      .sort((a, b) => (a.node < b.node ? -1 : 1));
    return { policyVersion, nodes, flows: { stored: extra.flowsStored }, audit: { records: extra.auditRecords } };
  }
}
