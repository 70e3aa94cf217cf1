/**
 * The flow store's writer thread carries its name (`flow-writer`) in `top -H` and /proc, so an
 * operator and the benches (test/bench/loop/thread-cpu.ts) can tell its CPU from the collector's
 * event loop; it is gone once the store is closed.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { FlowStore } from '../../../collector/flows/store';
import { threadCpu } from '../../bench/loop/thread-cpu';

describe('collector: the flow writer thread is named', () => {
  it('flow-writer shows in /proc while the store is open, and not after close', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-writer-name-'));
    try {
      const store = await FlowStore.openWithWriterThread({ file: path.join(dir, 'flows.db'), log: pino({ level: 'silent' }) });
      try {
        assert.ok(threadCpu().has('flow-writer'), `threads: ${[...threadCpu().keys()].join(', ')}`);
      } finally {
        await store.close();
      }
      assert.ok(!threadCpu().has('flow-writer'), `threads after close: ${[...threadCpu().keys()].join(', ')}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
