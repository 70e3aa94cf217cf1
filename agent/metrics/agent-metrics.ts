/**
 * The agent's Prometheus registry (its own, never prom-client's global one): traffic metrics from
 * flow records (flow-metrics.ts), the flow reporter's counters, workload certificate expiry,
 * eBPF maps and kernel counters (datapath-metrics.ts) and the proxy's limits (limit-metrics.ts). Everything but the traffic metrics is read when Prometheus scrapes.
 */
import { Gauge, Registry } from 'prom-client';
import type { FlowReporterStats } from '../flows/reporter';
import { MIRROR_OUTCOMES } from '../traffic/mirror';
import type { TrafficStats } from '../traffic/router';
import type { FlowMetrics } from './flow-metrics';
import { registerDatapathMetrics, type DatapathMetricsSources } from './datapath-metrics';
import { registerLimitMetrics, type LimitSources } from './limit-metrics';
import { ReadCounter } from './series';

export interface AgentMetricsSources {
  flows: FlowMetrics;
  /** The collector reporter (a meshed agent only). */
  reporter?: { stats(): FlowReporterStats };
  /** Workload certificates (the IdentityManager of a meshed agent, once it exists). */
  identities?: () => { identities(): Array<{ identity: string; notAfter: Date | undefined }> } | undefined;
  /** The data path once installed. */
  datapath?: DatapathMetricsSources['datapath'];
  /** The node's enrollment once the workload sources run. */
  enrollment?: DatapathMetricsSources['enrollment'];
  /** The proxy's connection caps, sniff budget and refusal counts. */
  limits?: LimitSources;
  /** The source node's routing (a meshed agent, once its proxy runs). */
  traffic?: () => { stats(): TrafficStats } | undefined;
  /** HBONE connections ended by an unanswered keepalive PING, by side (a meshed agent, once running). */
  hbone?: () => { source: number; destination: number } | undefined;
  now?: () => number;
}

export function createAgentRegistry(src: AgentMetricsSources): Registry {
  const registry = new Registry();
  const now = src.now ?? Date.now;
  src.flows.register(registry);
  if (src.limits) registerLimitMetrics(registry, src.limits);

  const flows = src.flows;
  new ReadCounter('palisade_flows_produced_total', 'Flow records the proxy produced', () => [{ labels: {}, value: flows.produced }]).register(registry);
  const reporter = src.reporter;
  if (reporter) {
    new ReadCounter('palisade_flows_sent_total', 'Flow records sent to the collector (first sends; resends not counted)', () => [
      { labels: {}, value: reporter.stats().sent },
    ]).register(registry);
    new ReadCounter('palisade_flows_acknowledged_total', 'Flow records the collector acknowledged', () => [
      { labels: {}, value: reporter.stats().acknowledged },
    ]).register(registry);
    new ReadCounter('palisade_flows_lost_total', 'Flow records dropped before the collector acknowledged them (buffer full, or refused at the boundary)', () => [
      { labels: {}, value: reporter.stats().lost },
    ]).register(registry);
    new ReadCounter('palisade_flows_buffered', 'Flow records held for the collector: waiting, or sent and not yet acknowledged', () => [
      { labels: {}, value: reporter.stats().buffered },
    ], 'gauge').register(registry);
  }

  const traffic = src.traffic;
  if (traffic) {
    new ReadCounter('palisade_traffic_state_dropped_total', 'Routing state dropped to stay bounded: ejections ended early (table full), latency estimates forgotten early (balancer full), upstream connections closed instead of kept idle (the client pod held half its connection share)', () => {
      const s = traffic()?.stats();
      return [
        { labels: { what: 'ejection' }, value: s?.ejectionsOverflowed ?? 0 },
        { labels: { what: 'latency-estimate' }, value: s?.estimatesEvicted ?? 0 },
        { labels: { what: 'idle-upstream' }, value: s?.idleUpstreamsRefused ?? 0 },
      ];
    }).register(registry);
    new ReadCounter('palisade_traffic_mirrors_total', 'Mirrored copies of routed requests (RequestMirror) by how they ended: answered (their answer discarded), failed, or dropped (in-flight limit, body too large, no endpoint, request incomplete)', () => {
      const m = traffic()?.stats().mirrors;
      return MIRROR_OUTCOMES.map((outcome) => ({ labels: { outcome }, value: m?.[outcome] ?? 0 }));
    }).register(registry);
  }

  const hbone = src.hbone;
  if (hbone) {
    new ReadCounter('palisade_hbone_keepalive_failures_total', 'HBONE connections destroyed, with their tunnels, because the peer node did not answer a keepalive PING: side="source" (this node opened it), side="destination" (a source node opened it to this node)', () => {
      const k = hbone();
      return [
        { labels: { side: 'source' }, value: k?.source ?? 0 },
        { labels: { side: 'destination' }, value: k?.destination ?? 0 },
      ];
    }).register(registry);
  }

  const identities = src.identities;
  if (identities) {
    new Gauge({
      name: 'palisade_workload_certificate_expiry_seconds',
      help: 'Seconds until the workload certificate of an identity on this node expires (negative once expired)',
      labelNames: ['identity'],
      registers: [registry],
      collect() {
        this.reset();
        const t = now();
        for (const c of identities()?.identities() ?? []) {
          if (c.notAfter) this.set({ identity: c.identity }, Math.round((c.notAfter.getTime() - t) / 1000));
        }
      },
    });
  }

  if (src.datapath) registerDatapathMetrics(registry, { datapath: src.datapath, ...(src.enrollment ? { enrollment: src.enrollment } : {}) });
  return registry;
}
