/**
 * What the flow store tells its listeners after each committed batch (store.ts onStored): the
 * follow stream, the denied-flow summarizer, the flow sinks. A batch that came as an agent's frame
 * was parsed in the writer thread: its listeners get the count, the frame's bytes and its denied
 * records at no cost, and every record (with its id and wire JSON) only when one asks — the frame
 * is parsed again here then, once per batch.
 */
import type { FlowRecord } from '../../common/flow';
import { storedFrameMessage } from './flows-frame';
import { storedFlowJson, storedJsons } from './schema';

/** A flow just stored: the record, its id and its wire form (`{"id":…}` JSON). */
export interface StoredEntry {
  id: number;
  record: FlowRecord;
  json: string;
}

export interface StoredBatch {
  /** Flows stored. */
  readonly count: number;
  /** The agent's frame these flows were parsed from, when ingest was given it. */
  readonly frame?: Uint8Array;
  /** The batch's denied records. */
  readonly denied: readonly FlowRecord[];
  /** Every flow stored, in order (made on the first call, then kept). */
  entries(): readonly StoredEntry[];
}

export type StoredListener = (batch: StoredBatch) => void;

/** A batch whose records are here already (`jsons[i]`: record i's stored JSON). */
export function batchOf(ids: readonly number[], records: readonly FlowRecord[], jsons: readonly string[], frame?: Uint8Array): StoredBatch {
  let entries: StoredEntry[] | undefined;
  let denied: FlowRecord[] | undefined;
  return {
    count: ids.length,
    frame,
    get denied() {
      return (denied ??= records.filter((f) => f.verdict === 'denied'));
    },
    entries: () => (entries ??= records.map((record, i) => ({ id: ids[i]!, record, get json() { return storedFlowJson(ids[i]!, jsons[i]!); } }))),
  };
}

/** A batch stored from an agent's frame in the writer thread: its records are read from the frame when asked for. */
export function frameBatch(ids: readonly number[], frame: Uint8Array, denied: readonly FlowRecord[]): StoredBatch {
  let entries: readonly StoredEntry[] | undefined;
  return {
    count: ids.length,
    frame,
    denied,
    entries: () => {
      if (entries) return entries;
      // the writer thread checked this frame before storing it
      const m = storedFrameMessage(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
      return (entries = batchOf(ids, m.flows, storedJsons(m), frame).entries());
    },
  };
}
