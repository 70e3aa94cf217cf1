/**
 * The flow store's writer thread (started by collector/flows/writer-thread.ts): better-sqlite3
 * opened here, so a batch's commit — its inserts, the rollup, the fsync of a checkpoint — and
 * retention's deletes never hold the collector's event loop. A batch arrives as one message (its
 * records' stored JSON, one a line) and is answered once committed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import type { FlowRecord } from '../../common/flow';
import type { RetentionOptions } from './retention';
import { SessionGaps } from './session-gaps';
import { FlowWriter, openDatabase, type BatchMeta } from './writer';
import type { ToWriter } from './writer-thread';

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

port.on('message', (m: ToWriter) => {
  if (m.type === 'commit') {
    const key = `${m.meta.node}\n${m.meta.session}`;
    if (!gaps.mayTake(key, m.meta.seq)) {
      port.postMessage({ type: 'failed', id: m.id, message: `batch ${m.meta.seq} waits for an earlier batch of its session that failed` });
      return;
    }
    try {
      const jsons = m.jsons.length === 0 ? [] : m.jsons.split('\n');
      const records = jsons.map((j) => JSON.parse(j) as FlowRecord);
      const meta: BatchMeta = m.meta;
      port.postMessage({ type: 'committed', id: m.id, ...writer.commit(meta, records, jsons) });
      gaps.taken(key, meta.seq);
    } catch (err) {
      gaps.failed(key, m.meta.seq);
      log.error({ err, node: m.meta.node, session: m.meta.session, seq: m.meta.seq }, 'flow batch not stored');
      port.postMessage({ type: 'failed', id: m.id, message: (err as Error).message });
    }
  } else if (m.type === 'enforce') {
    writer.retention.enforce().then(
      (deleted) => port.postMessage({ type: 'enforced', id: m.id, deleted }),
      (err: Error) => port.postMessage({ type: 'failed', id: m.id, message: err.message }),
    );
  } else if (m.type === 'close') {
    void writer.stop().finally(() => {
      db.close();
      port.postMessage({ type: 'closed', id: m.id });
    });
  }
});
port.postMessage({ type: 'ready', rows: writer.rows() });
