/**
 * The collector's flow sinks beyond the store, built from `--flow-sink` values: each gets every
 * flow the store commits, once (batches in the order stored; several requests may be out at once,
 * so a receiver may see them in another order). docs/architecture.md "Flow sinks".
 */
import type { SinkCounts } from '../../common/flows-api';
import type { Logger } from '../../common/log';
import type { StoredListener } from '../flows/store';
import { OtlpSink, type OtlpSinkOptions, type SinkMetrics } from './otlp-sink';
import type { FlowSink } from './sink';
import { sinkName, type SinkSpec } from './sink-spec';

export interface FlowSinksOptions {
  log: Logger;
  metrics?: SinkMetrics;
  /** the collector's trust domain: the OTLP resource's `palisade.trust_domain` */
  trustDomain: string;
  /** buffering and retry settings for every OTLP sink (tests, the bench) */
  otlp?: Partial<Omit<OtlpSinkOptions, 'name' | 'url' | 'log' | 'resource' | 'metrics'>>;
}

export class FlowSinks {
  readonly list: readonly FlowSink[];

  constructor(specs: readonly SinkSpec[], opts: FlowSinksOptions) {
    const resource = { 'service.name': 'palisade-collector', 'palisade.trust_domain': opts.trustDomain };
    const list: FlowSink[] = [];
    for (const s of specs) {
      if (s.kind !== 'otlp') continue; // the store is always there
      list.push(new OtlpSink({ ...opts.otlp, name: sinkName(s), url: s.url, log: opts.log, metrics: opts.metrics, resource }));
      opts.log.info({ sink: sinkName(s), url: s.url.origin + s.url.pathname }, 'flow sink added');
    }
    this.list = list;
  }

  /** What the store calls after each committed batch. */
  readonly onStored: StoredListener = (batch) => {
    for (const s of this.list) s.write(batch);
  };

  counts(): Record<string, SinkCounts> {
    const out: Record<string, SinkCounts> = {};
    for (const s of this.list) out[s.name] = s.counts();
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.list.map((s) => s.close()));
  }
}
