/**
 * Where the collector hands every flow it stored: the SQLite flow store is the store of record
 * (acknowledgements, queries, follow, policy test); each further FlowSink gets every stored flow
 * once, after its batch committed. docs/architecture.md "Flow sinks".
 */
import type { FlowRecord } from '../../common/flow';
import type { SinkCounts } from '../../common/flows-api';

export type { SinkCounts };

export interface FlowSink {
  /** `sqlite`, `otlp:<host:port>` */
  readonly name: string;
  /**
   * Takes flows the collector just stored; never throws, never waits. `frame`, when given, is the
   * agent's JSON frame they were parsed from (its `flows` array is `records`, in order).
   */
  write(records: readonly FlowRecord[], frame?: Uint8Array): void;
  counts(): SinkCounts;
  /** Deliver what it can within its grace period; what is left counts as lost. */
  close(): Promise<void>;
}
