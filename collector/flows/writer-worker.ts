/**
 * The flow store's writer thread (started by collector/flows/writer-thread.ts): better-sqlite3
 * opened here, so a batch's commit — its inserts, the rollup, the fsync of a checkpoint — and
 * retention's deletes never hold the collector's event loop. A batch arrives as one message: an
 * agent's flows frame as its bytes (parsed and validated here: flows-frame.ts), or its records'
 * stored JSON, one a line. What arrives while the thread is busy is committed together, in one
 * transaction (writer.ts commitGroup), and each batch is answered once that committed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import type { FlowRecord } from '../../common/flow';
import { FlowsFrameRefusal, readFlowsFrame } from './flows-frame';
import type { RetentionOptions } from './retention';
import { storedJsons } from './schema';
import { SessionGaps } from './session-gaps';
import { BatchWaits, FlowWriter, openDatabase, type GroupGate, type Pending } from './writer';
import type { FromWriter, ToWriter } from './writer-thread';

const port = parentPort!;
const input = workerData as { file: string; retention: RetentionOptions; level: string };
// Log lines go to the collector's own logger (writer-thread.ts relogs them).
const log = pino({ level: input.level }, { write: (line: string) => port.postMessage({ type: 'log', line }) });
const { db } = openDatabase(input.file);
const writer = new FlowWriter(db, {
  ...input.retention,
  log,
  now: Date.now,
  metrics: { deleted: (count, reason) => port.postMessage({ type: 'deleted-pass', count, reason }) },
  onDeleted: (count) => port.postMessage({ type: 'deleted', count }),
});
writer.retention.start();
const gaps = new SessionGaps();
const send = (m: FromWriter): void => port.postMessage(m);

type Batch = Extract<ToWriter, { type: 'commit' | 'frame' }>;
/** Batches received while the thread was busy: committed together on the next turn. */
let waiting: Batch[] = [];

const keyOf = (p: Pending): string => `${p.meta.node}\n${p.meta.session}`;
const gate: GroupGate = {
  refusal: (p) => (gaps.mayTake(keyOf(p), p.meta.seq) ? undefined : `batch ${p.meta.seq} waits for an earlier batch of its session that failed`),
  settled: (p, stored) => (stored ? gaps.taken(keyOf(p), p.meta.seq) : gaps.failed(keyOf(p), p.meta.seq)),
};

/** The batch's records and stored JSON; a batch that cannot be read (a frame refused) is answered here: undefined. */
function read(m: Batch): Pending | undefined {
  try {
    if (m.type === 'commit') {
      const jsons = m.jsons.length === 0 ? [] : m.jsons.split('\n');
      return { meta: m.meta, records: jsons.map((j) => JSON.parse(j) as FlowRecord), jsons };
    }
    const f = readFlowsFrame(Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength), m.meta, m.meta.node, m.flows);
    return { meta: m.meta, records: f.flows, jsons: storedJsons(f) };
  } catch (err) {
    const refusal = err instanceof FlowsFrameRefusal;
    gaps.failed(`${m.meta.node}\n${m.meta.session}`, m.meta.seq); // as the collector's side does: later batches wait for it
    if (!refusal) log.error({ err, node: m.meta.node, session: m.meta.session, seq: m.meta.seq }, 'flow frame not read');
    send({ type: 'refused', id: m.id, message: (err as Error).message, protocol: refusal, ...(refusal && err.wrongNode ? { wrongNode: true } : {}) });
    return undefined;
  }
}

function commitWaiting(): void {
  const batches = waiting;
  waiting = [];
  const group: Array<{ m: Batch; p: Pending }> = [];
  for (const m of batches) {
    const p = read(m);
    if (p) group.push({ m, p });
  }
  // read (its records are parsed into strings and objects of their own): the frames' buffers go back to be filled again
  const buffers = batches.flatMap((m) => (m.type === 'frame' ? [m.bytes.buffer as ArrayBuffer] : []));
  if (buffers.length > 0) port.postMessage({ type: 'buffers', buffers } satisfies FromWriter, buffers);
  if (group.length === 0) return;
  let results: ReturnType<FlowWriter['commitGroup']>;
  try {
    results = writer.commitGroup(
      group.map((g) => g.p),
      gate,
    );
  } catch (err) {
    for (const { m, p } of group) gaps.failed(keyOf(p), m.meta.seq);
    log.error({ err, batches: group.length }, 'flow batches not stored');
    for (const { m } of group) send({ type: 'failed', id: m.id, message: (err as Error).message });
    return;
  }
  results.forEach((r, k) => {
    const { m, p } = group[k]!;
    if (r instanceof Error) {
      if (r instanceof BatchWaits) return send({ type: 'failed', id: m.id, message: r.message });
      log.error({ err: r, node: m.meta.node, session: m.meta.session, seq: m.meta.seq }, 'flow batch not stored');
      return send({ type: 'failed', id: m.id, message: r.message });
    }
    // a frame's records stay here: the collector gets what its listeners need without parsing it
    const denied = m.type === 'frame' ? p.records.filter((f) => f.verdict === 'denied') : undefined;
    send({ type: 'committed', id: m.id, ...r, ...(denied && { denied }) });
  });
}

port.on('message', (m: ToWriter) => {
  if (m.type === 'commit' || m.type === 'frame') {
    if (waiting.length === 0) setImmediate(commitWaiting);
    waiting.push(m);
  } else if (m.type === 'enforce') {
    writer.retention.enforce().then(
      (deleted) => send({ type: 'enforced', id: m.id, deleted }),
      (err: Error) => send({ type: 'failed', id: m.id, message: err.message }),
    );
  } else if (m.type === 'close') {
    commitWaiting();
    void writer.stop().finally(() => {
      db.close();
      send({ type: 'closed', id: m.id });
    });
  }
});
send({ type: 'ready', rows: writer.rows() });
