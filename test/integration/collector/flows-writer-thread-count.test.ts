/**
 * The flow store's row count after its writer thread dies: a batch the thread committed just
 * before it died (its 'committed' message never arrived) is in the database but was never counted,
 * so the store takes the count the restarted thread reads from the database. Without that,
 * rows() — the flows metric and retention's row limit — read low for ever after a crash.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { FlowStore } from '../../../collector/flows/store';
import { tcpFlow } from '../../unit/agent/flows/fixtures';
import { waitFor } from '../../harness/wait';

describe('collector: the flow store counts its rows again after the writer thread restarts', () => {
  it('rows written that the store never heard of are counted once the thread is back', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-writer-count-'));
    const file = path.join(dir, 'flows.db');
    try {
      const store = await FlowStore.openWithWriterThread({ file, log: pino({ level: 'silent' }) });
      try {
        await store.ingest('n1', { session: 's1', seq: 1, lost: 0, flows: [tcpFlow(1, { node: 'n1' }), tcpFlow(2, { node: 'n1' })] });
        assert.equal(store.rows(), 2);
        // Rows the store's thread committed without its answer arriving, as a crash right after a
        // COMMIT leaves them: written here by another connection.
        const other = FlowStore.open({ file, log: pino({ level: 'silent' }) });
        other.ingest('n1', { session: 's2', seq: 1, lost: 0, flows: [tcpFlow(3, { node: 'n1' }), tcpFlow(4, { node: 'n1' }), tcpFlow(5, { node: 'n1' })] });
        await other.close();
        assert.equal(store.rows(), 2, 'not heard of yet');
        const thread = store.writerThread!;
        await thread.crash();
        await waitFor(() => thread.restarted === 1 && store.rows() !== 2, 10_000, { what: 'the thread started again and counted' });
        assert.equal(store.rows(), 5);
        await store.ingest('n1', { session: 's1', seq: 2, lost: 0, flows: [tcpFlow(6, { node: 'n1' })] });
        assert.equal(store.rows(), 6);
      } finally {
        await store.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
