/**
 * Where the collector hands every flow it stored: the SQLite flow store is the store of record
 * (acknowledgements, queries, follow, policy test); each further FlowSink gets every stored flow
 * once, after its batch committed. docs/architecture.md "Flow sinks".
 */
import type { StoredBatch } from '../flows/stored-batch';
import type { SinkCounts } from '../../common/flows-api';

export type { SinkCounts };

export interface FlowSink {
  /** `sqlite`, `otlp:<host:port>` */
  readonly name: string;
  /**
   * Takes a batch the collector just stored; never throws, never waits. A batch stored from an
   * agent's frame carries it (`frame`, its `flows` array the batch's flows, in order): a sink reads
   * it rather than the records, which the collector's thread would have to parse again
   * (`entries()`).
   */
  write(batch: StoredBatch): void;
  counts(): SinkCounts;
  /** Deliver what it can within its grace period; what is left counts as lost. */
  close(): Promise<void>;
}
