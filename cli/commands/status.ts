/**
 * `palisade status`: the collector's policy version and, per node, whether its agent is
 * connected and which version it enforces — an agent that lags or rejected a version stands out.
 * In Kubernetes mode also the collector replicas: each one's Lease and how the answering replica
 * judges it.
 */
import type { Command } from 'commander';
import { CONTROL_API, type KubernetesStatus, type NodeStatus, type ReplicaStatus, type RouteStatus, type StatusResponse } from '../../common/control-api';
import { expectShape } from '../api-answers';
import { addApiOptions, apiClient } from '../api-options';
import type { ApiFlags } from '../config';
import type { ApiDeps } from '../deps';
import { oneOfFlag } from '../options';
import { formatTable } from '../table';

/** `current`, `behind (vN)`, `rejected vN`, `not reported`, `offline`. */
export function policyState(n: NodeStatus, version: number): string {
  if (n.policyProblems && n.policyProblems.length > 0) return `rejected v${n.policyVersion ?? '?'}: ${n.policyProblems[0]}`;
  if (n.policyVersion === undefined) return n.connected ? 'not reported' : 'offline';
  if (n.policyVersion === version) return n.connected ? 'current' : 'offline (was current)';
  return `behind (enforces v${n.policyVersion})`;
}

/** What the collector makes of the cluster: one line, then one per refused policy object. */
export function kubernetesLines(k: KubernetesStatus): string {
  const kinds = Object.entries(k.policyKinds).map(([kind, v]) => `${kind} ${v}`).join(', ');
  const head = `kubernetes: ${k.synced ? 'synced' : 'not synced yet (nothing from the API applies until it is)'}; ${k.services} services; ${k.pods === undefined ? '' : `${k.pods} pods; `}${k.policyObjects} policy objects in force, ${k.refused.length} refused${k.ignoredRoutes ? `, ${k.ignoredRoutes} gateway routes left alone` : ''} (${kinds})\n`;
  return head + k.refused.map((r) => `  refused ${r.object}: ${r.problems[0] ?? '?'}${r.problems.length > 1 ? ` (+${r.problems.length - 1} more)` : ''}; ${r.previousInForce ? 'its previous version stays in force' : 'not in force'}\n`).join('');
}

/** `0.4 s ago`, `12 s ago`, `3 min ago`: an age on the answering replica's clock. */
export function ageText(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s ago`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

/** The collector replicas (Kubernetes mode): one row each, as the replica answering judges them. */
export function replicaLines(replicas: readonly ReplicaStatus[]): string {
  const rows = replicas.map((r) => [
    r.self ? `${r.replica} (answering)` : r.replica,
    r.lease === 'held' ? `held, ${r.durationMs === undefined ? '?' : `${r.durationMs / 1000} s`}` : r.lease,
    r.renewedAgoMs === undefined ? '-' : ageText(r.renewedAgoMs),
    r.why === undefined ? r.judgement : `${r.judgement}: ${r.why}`,
    r.offline > 0 ? `${r.nodes} (${r.offline} offline here)` : String(r.nodes),
  ]);
  return formatTable(['REPLICA', 'LEASE', 'RENEWED', 'JUDGED', 'NODES'], rows);
}

/** The routes in force: one row each, with how many connected agents enforce its version. */
export function routeLines(routes: readonly RouteStatus[]): string {
  const rows = routes.map((r) => [r.kind, `${r.namespace}/${r.name}`, r.parents.join(','), r.summary === undefined ? String(r.rules) : `${r.summary}${r.rules > 0 ? ` (+${r.rules} ports)` : ''}${r.warning === undefined ? '' : ` — warning: ${r.warning}`}`, `v${r.version}`, `${r.enforcedBy}/${r.agents}`]);
  return formatTable(['ROUTE KIND', 'ROUTE', 'PARENTS', 'RULES / POLICY', 'VERSION', 'AGENTS ENFORCING'], rows);
}

/** One line per node whose agent could not write its UDP/ICMP kernel rules (it fails closed and retries). */
export function wireRulesLines(nodes: readonly NodeStatus[]): string {
  return nodes
    .filter((n) => n.wireRulesStale !== undefined)
    .map((n) => `${n.node}: UDP/ICMP rules stale (failing closed, retried): ${n.wireRulesStale}\n`)
    .join('');
}

export function registerStatusCommands(program: Command, deps: ApiDeps): void {
  addApiOptions(
    program
      .command('status')
      .description("the collector's policy version and each node's agent: connected, enforced version, workloads")
      .option('-o, --output <format>', 'table|json', 'table'),
  ).action(async (flags: ApiFlags & { output: string }) => {
    const output = oneOfFlag('-o', flags.output, ['table', 'json'] as const);
    const r = expectShape<StatusResponse>(await apiClient(flags, deps.env ?? process.env).getJson(CONTROL_API.status), CONTROL_API.status, {
      policyVersion: 'number',
      nodes: 'array',
      flows: 'object',
      audit: 'object',
    });
    if (output === 'json') return deps.stdout(`${JSON.stringify(r)}\n`);
    deps.stdout(`policy version ${r.policyVersion}; ${r.flows.stored} flows stored; ${r.audit.records} audit records\n`);
    if (r.kubernetes) deps.stdout(kubernetesLines(r.kubernetes));
    if (r.kubernetes?.replicas && r.kubernetes.replicas.length > 0) deps.stdout(replicaLines(r.kubernetes.replicas));
    for (const [name, c] of Object.entries(r.flows.sinks ?? {})) {
      deps.stdout(`flow sink ${name}: ${c.accepted} accepted = ${c.delivered} delivered + ${c.lost} lost + ${c.buffered} buffered\n`);
    }
    if (r.routes && r.routes.length > 0) deps.stdout(routeLines(r.routes));
    if (r.nodes.length === 0) return deps.stdout('no nodes have connected\n');
    const rows = r.nodes.map((n) =>
      [n.node, n.connected ? 'yes' : 'no', n.policyVersion === undefined ? '-' : `v${n.policyVersion}`, policyState(n, r.policyVersion), String(n.workloads), n.lastSeen ?? '-']);
    deps.stdout(formatTable(['NODE', 'CONNECTED', 'POLICY', 'STATE', 'WORKLOADS', 'LAST SEEN'], rows));
    deps.stdout(wireRulesLines(r.nodes));
    const lagging = r.nodes.filter((n) => n.connected && policyState(n, r.policyVersion) !== 'current');
    if (lagging.length > 0) deps.stderr(`${lagging.length} connected agent${lagging.length === 1 ? '' : 's'} not at policy version ${r.policyVersion}: ${lagging.map((n) => n.node).join(', ')}\n`);
  });
}
