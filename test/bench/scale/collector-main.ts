/**
 * The scale simulator's collector, alone in its own process so its CPU and memory are measured
 * without the simulated agents: `node collector-main.js <data dir> <port>` starts the real
 * collector on 127.0.0.1:<port> (0: any), prints one JSON line `{port, adminToken, pid}` once it
 * listens, and stops on SIGTERM. Warnings and errors go to stderr. Every second it writes its
 * process.memoryUsage() to <data dir>/../collector-memory.json (where the RSS is: V8 heap, or
 * buffers outside it — frames queued on sockets).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startCollector } from '../../../collector/collector';
import { createRootLogger } from '../../../common/log';

async function main(): Promise<void> {
  const [dataDir, port] = process.argv.slice(2);
  if (dataDir === undefined || port === undefined || !/^\d{1,5}$/.test(port)) {
    process.stderr.write('usage: collector-main <data dir> <port>\n');
    process.exit(2);
  }
  const running = await startCollector({ dataDir, log: createRootLogger({ level: process.env.PALISADE_LOG_LEVEL ?? 'warn', name: 'collector' }), listen: `127.0.0.1:${port}` });
  process.stdout.write(`${JSON.stringify({ port: running.port, adminToken: running.adminToken, pid: process.pid })}\n`);
  const memoryFile = path.join(path.dirname(dataDir), 'collector-memory.json');
  setInterval(() => fs.writeFileSync(memoryFile, JSON.stringify(process.memoryUsage())), 1000).unref();
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    void running.stop().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
