/**
 * The collector's Prometheus registry (one per collector, never prom-client's global one, so
 * several collectors can run in one process): flows ingested, refused, deduplicated and deleted,
 * the store's size, and API requests by status. Served at GET /metrics.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { FlowStore, FlowStoreMetrics } from '../flows/store';
import type { LossReason, SinkMetrics } from '../sinks/otlp-sink';
import type { FlowSinks } from '../sinks/sinks';

export class CollectorMetrics implements FlowStoreMetrics, SinkMetrics {
  readonly registry = new Registry();
  private readonly ingestedTotal: Counter;
  private readonly refusedTotal: Counter<'reason'>;
  private readonly duplicateTotal: Counter;
  private readonly deletedTotal: Counter<'reason'>;
  private readonly apiRequests: Counter<'route' | 'status'>;
  private readonly sinkDelivered: Counter<'sink'>;
  private readonly sinkLost: Counter<'sink' | 'reason'>;
  private store: FlowStore | undefined;
  private sinks: FlowSinks | undefined;

  constructor() {
    const registers = [this.registry];
    this.ingestedTotal = new Counter({ name: 'palisade_collector_flows_ingested_total', help: 'Flow records stored', registers });
    this.refusedTotal = new Counter({
      name: 'palisade_collector_flows_refused_total',
      help: 'Flow records refused (whole batches), by reason',
      labelNames: ['reason'],
      registers,
    });
    this.duplicateTotal = new Counter({
      name: 'palisade_collector_flow_batches_duplicate_total',
      help: 'Flow batches acknowledged again without storing them (resent after a reconnect)',
      registers,
    });
    this.deletedTotal = new Counter({
      name: 'palisade_collector_flows_deleted_total',
      help: 'Flow records deleted by retention, by reason (age or size)',
      labelNames: ['reason'],
      registers,
    });
    const metrics = this;
    new Gauge({
      name: 'palisade_collector_flow_store_rows',
      help: 'Flow records in the store',
      registers,
      collect() {
        if (metrics.store) this.set(metrics.store.rows());
      },
    });
    new Gauge({
      name: 'palisade_collector_flow_store_bytes',
      help: 'Bytes of the flow database in use (free pages not counted)',
      registers,
      collect() {
        if (metrics.store) this.set(metrics.store.bytes());
      },
    });
    this.sinkDelivered = new Counter({
      name: 'palisade_collector_sink_flows_delivered_total',
      help: 'Flow records a flow sink delivered (its receiver acknowledged them), by sink',
      labelNames: ['sink'],
      registers,
    });
    this.sinkLost = new Counter({
      name: 'palisade_collector_sink_flows_lost_total',
      help: 'Flow records a flow sink gave up, by sink and reason (buffer-full, refused, shutdown)',
      labelNames: ['sink', 'reason'],
      registers,
    });
    new Gauge({
      name: 'palisade_collector_sink_flows_buffered',
      help: 'Flow records waiting in a flow sink or in flight, by sink',
      labelNames: ['sink'],
      registers,
      collect() {
        for (const [sink, c] of Object.entries(metrics.sinks?.counts() ?? {})) this.set({ sink }, c.buffered);
      },
    });
    this.apiRequests = new Counter({
      name: 'palisade_collector_api_requests_total',
      help: 'API requests answered, by route and HTTP status',
      labelNames: ['route', 'status'],
      registers,
    });
  }

  /** The store whose size the gauges report. */
  watch(store: FlowStore | undefined): void {
    this.store = store;
  }

  /** The sinks whose buffers the gauge reports. */
  watchSinks(sinks: FlowSinks): void {
    this.sinks = sinks;
  }

  delivered(sink: string, count: number): void {
    this.sinkDelivered.inc({ sink }, count);
  }

  lost(sink: string, count: number, reason: LossReason): void {
    this.sinkLost.inc({ sink, reason }, count);
  }

  ingested(count: number): void {
    this.ingestedTotal.inc(count);
  }

  refused(count: number, reason: 'wrong-node' | 'busy'): void {
    this.refusedTotal.inc({ reason }, count);
  }

  duplicate(): void {
    this.duplicateTotal.inc();
  }

  deleted(count: number, reason: 'age' | 'size'): void {
    this.deletedTotal.inc({ reason }, count);
  }

  request(route: string, status: number): void {
    this.apiRequests.inc({ route, status: String(status) });
  }
}
