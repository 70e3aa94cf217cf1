/**
 * Reads what the per-pod filters counted and turns each interval's differences into flow records
 * (summary-flows.ts) and the `palisade_dropped_packets_total` metric, so that counts add up: every
 * dropped packet is in exactly one denied summary and in the metric. What a counter has already
 * reported is kept in the kernel (palisade_drops_seen): a restarted agent reports the drops of
 * the time no agent ran, and none twice. Allowed UDP/ICMP flows are reported from the agent's
 * start; a flow the kernel table evicted between two reads loses that part (the table is LRU),
 * and a key a new flow took over in between reports what the new flow carried (summary-flows.ts
 * dgramDelta). A pod that left between two reads is still reported, by its address.
 */
import type { Registry } from 'prom-client';
import type { FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import { COUNTED_ONLY, encodeDropKey, encodeFlowKey } from '../datapath/pod-codec';
import { readDropsSeen, writeDropSeen, type DgramFlow, type DropCounter, type WireHandles } from '../datapath/pod-wire';
import { ReadCounter } from '../metrics/series';
import { dgramDelta, dgramFlow, dropFlow, type DgramCounts, type SummaryContext } from './summary-flows';

/** The counters a summary is read from. */
export interface CountedPath extends WireHandles {
  drops(): DropCounter[];
  dgramFlows(): DgramFlow[];
}

/** `palisade_dropped_packets_total`: packets the per-pod filters dropped, per pod, reason and direction. */
export class DropTotals {
  private readonly series = new Map<string, { labels: Record<string, string>; value: number }>();

  add(labels: { namespace: string; workload: string; reason: string; direction: string }, packets: number): void {
    const key = `${labels.namespace}/${labels.workload}/${labels.reason}/${labels.direction}`;
    const s = this.series.get(key);
    if (s) s.value += packets;
    else this.series.set(key, { labels: { ...labels }, value: packets });
  }

  register(registry: Registry): void {
    new ReadCounter(
      'palisade_dropped_packets_total',
      'Packets the per-pod filters dropped, by pod, reason and direction (from-pod, to-pod); each interval is also one denied flow summary',
      () => this.series.values(),
    ).register(registry);
  }
}

export class PacketSummaries {
  private readonly dgramSeen = new Map<string, DgramCounts>();
  private lastAt = Date.now();

  constructor(
    private readonly path: CountedPath,
    private readonly ctx: Omit<SummaryContext, 'intervalMs'>,
    private readonly sink: FlowSink,
    private readonly totals: DropTotals,
    private readonly log: Logger,
  ) {}

  /** Take the UDP/ICMP counters as they are now as the start (earlier traffic is not this agent's). */
  start(): void {
    this.lastAt = Date.now();
    for (const f of this.path.dgramFlows()) this.dgramSeen.set(encodeFlowKey(f).toString('hex'), f);
  }

  /** One interval: every drop counter and flow that moved becomes a record. Returns how many records. */
  collect(): number {
    const now = Date.now();
    const ctx: SummaryContext = { ...this.ctx, intervalMs: Math.max(0, now - this.lastAt) };
    this.lastAt = now;
    return this.collectDrops(ctx) + this.collectDgrams(ctx);
  }

  private collectDrops(ctx: SummaryContext): number {
    const seen = readDropsSeen(this.path);
    let records = 0;
    for (const c of this.path.drops()) {
      const before = seen.get(encodeDropKey(c).toString('hex')) ?? 0n;
      if (c.packets <= before) continue;
      const packets = Number(c.packets - before);
      // The pods' own IPv6 link-local chatter is counted (metrics) but is no flow: nobody sent it.
      if (!COUNTED_ONLY.has(c.reason)) {
        this.sink.record(dropFlow(c, c.sample, packets, ctx));
        records++;
      }
      const pod = ctx.pod(c.podId);
      this.totals.add({ namespace: pod?.namespace ?? '', workload: pod?.workload ?? `pod-${c.podId}`, reason: c.reason, direction: c.direction }, packets);
      writeDropSeen(this.path, c, c.packets);
    }
    return records;
  }

  private collectDgrams(ctx: SummaryContext): number {
    const live = new Set<string>();
    let records = 0;
    for (const f of this.path.dgramFlows()) {
      const key = encodeFlowKey(f).toString('hex');
      live.add(key);
      const d = dgramDelta(this.dgramSeen.get(key), f);
      this.dgramSeen.set(key, f);
      if (d.packetsOut + d.packetsIn === 0) continue;
      this.sink.record(dgramFlow(f, d, ctx));
      records++;
    }
    for (const key of this.dgramSeen.keys()) if (!live.has(key)) this.dgramSeen.delete(key);
    if (this.dgramSeen.size > 100_000) this.log.warn({ flows: this.dgramSeen.size }, 'more UDP/ICMP flows than expected');
    return records;
  }
}
