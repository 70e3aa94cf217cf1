/**
 * Metrics whose values are kept elsewhere as plain numbers and read when Prometheus scrapes.
 *
 * prom-client's own Counter/Histogram hash the label set on every update (about 2 µs for the
 * dozen Istio labels, per metric, per flow). The flow metrics instead find their series once per
 * flow in a Map keyed by the label values and add to numbers; these classes hand those numbers
 * to prom-client's Registry, which formats them, at scrape time only.
 */
import type { Metric, Registry } from 'prom-client';

export type Labels = Record<string, string>;

/** Bucket counts of one histogram series (non-cumulative; cumulated when read). */
export interface HistogramData {
  /** counts[i] observations ≤ bounds[i] and > bounds[i-1]; the last slot is +Inf */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export function newHistogram(bounds: readonly number[]): HistogramData {
  return { counts: new Float64Array(bounds.length + 1), sum: 0, count: 0 };
}

export function observe(h: HistogramData, bounds: readonly number[], v: number): void {
  let i = 0;
  const n = bounds.length;
  while (i < n && v > bounds[i]!) i++;
  h.counts[i]! += 1;
  h.sum += v;
  h.count += 1;
}

interface Value {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: Value[];
  aggregator: 'sum';
}

/** The part of prom-client's metric contract its Registry uses. */
abstract class ReadMetric {
  readonly aggregator = 'sum';
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  protected abstract values(): Value[];

  async get(): Promise<MetricSnapshot> {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: 'sum' };
  }

  /** The numbers live with their owner; a registry reset does not touch them. */
  reset(): void {}

  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }
}

/** A counter (or gauge) per label set, read from `read()` at scrape time. */
export class ReadCounter extends ReadMetric {
  readonly type: 'counter' | 'gauge';

  constructor(
    name: string,
    help: string,
    private readonly read: () => Iterable<{ labels: Labels; value: number }>,
    type: 'counter' | 'gauge' = 'counter',
  ) {
    super(name, help);
    this.type = type;
  }

  protected values(): Value[] {
    const out: Value[] = [];
    for (const s of this.read()) out.push({ labels: s.labels, value: s.value });
    return out;
  }
}

/** A histogram per label set, read from `read()` at scrape time. */
export class ReadHistogram extends ReadMetric {
  readonly type = 'histogram';
  private readonly leLabels = new WeakMap<Labels, Array<Record<string, string | number>>>();

  constructor(
    name: string,
    help: string,
    private readonly bounds: readonly number[],
    private readonly read: () => Iterable<{ labels: Labels; data: HistogramData }>,
  ) {
    super(name, help);
  }

  protected values(): Value[] {
    const out: Value[] = [];
    const bucket = `${this.name}_bucket`;
    const sum = `${this.name}_sum`;
    const count = `${this.name}_count`;
    for (const { labels, data } of this.read()) {
      const les = this.bucketLabels(labels);
      let acc = 0;
      for (let i = 0; i < les.length; i++) {
        acc += data.counts[i]!;
        out.push({ labels: les[i]!, value: acc, metricName: bucket });
      }
      out.push({ labels, value: data.sum, metricName: sum });
      out.push({ labels, value: data.count, metricName: count });
    }
    return out;
  }

  /** `{...labels, le}` per bucket, made once per series. */
  private bucketLabels(labels: Labels): Array<Record<string, string | number>> {
    let les = this.leLabels.get(labels);
    if (!les) {
      les = [...this.bounds.map((le) => ({ ...labels, le })), { ...labels, le: '+Inf' }];
      this.leLabels.set(labels, les);
    }
    return les;
  }
}
