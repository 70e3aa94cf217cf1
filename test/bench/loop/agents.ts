/**
 * The load of test/bench/collector-loop.ts, in its own thread (its own event loop, so the
 * collector's loop measures only the collector): `agents` real node sessions (TLS WebSocket, the
 * node certificates a join left behind) that each send a 500-flow batch every `intervalMs`, at
 * most 8 unacknowledged as an agent does, and time every acknowledgement.
 */
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { encodeMessage } from '../../../common/mesh-protocol';
import { nodeCertPath, nodeKeyPath } from '../../../agent/mesh/node-identity';
import { openCollectorSocket, parseCollectorUrl } from '../../../agent/mesh/transport';
import { realisticFlow } from '../flow-ingest';

export interface AgentsInput {
  url: string;
  caPem: string;
  /** One joined agent data dir per node, named `node-<i>`. */
  dirs: string[];
  intervalMs: number;
  batch: number;
}

export interface AgentsReport {
  sent: number;
  acked: number;
  /** Acknowledgement latencies (ms), send to ack. */
  ackMs: number[];
  /** Batches not sent because 8 were unacknowledged. */
  heldBack: number;
}

const WINDOW = 8;
/** Each run its own agent sessions: a batch of an earlier run's session would be a duplicate. */
const RUN = Math.random().toString(36).slice(2, 8);

async function run(input: AgentsInput): Promise<void> {
  const report: AgentsReport = { sent: 0, acked: 0, ackMs: [], heldBack: 0 };
  const sockets: WebSocket[] = [];
  const timers: NodeJS.Timeout[] = [];
  await Promise.all(
    input.dirs.map(async (dir, a) => {
      const node = `node-${a}`;
      const ws = openCollectorSocket({
        endpoint: parseCollectorUrl(input.url),
        caPem: input.caPem,
        cert: { certPem: fs.readFileSync(nodeCertPath(dir), 'utf8'), keyPem: fs.readFileSync(nodeKeyPath(dir), 'utf8') },
      });
      ws.on('error', () => undefined);
      sockets.push(ws);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      ws.send(encodeMessage({ type: 'hello', node, nodeAddress: `192.168.60.${a + 1}`, agentVersion: 'bench' }));
      const sentAt = new Map<number, number>();
      let seq = 0;
      let flowIndex = 0;
      ws.on('message', (data: Buffer) => {
        if (data.length > 4096) return; // registry and policies frames
        const m = JSON.parse(String(data)) as { type: string; seq?: number };
        if (m.type !== 'flows-ack' || m.seq === undefined) return;
        const now = performance.now();
        for (const [s, t] of sentAt) {
          if (s > m.seq) break;
          report.ackMs.push(now - t);
          report.acked++;
          sentAt.delete(s);
        }
      });
      // Start the nodes spread over one interval, as independent agents would be.
      await new Promise((r) => setTimeout(r, (input.intervalMs * a) / input.dirs.length));
      timers.push(
        setInterval(() => {
          if (sentAt.size >= WINDOW) {
            report.heldBack++;
            return;
          }
          const flows = [];
          const now = Date.now();
          for (let i = 0; i < input.batch; i++, flowIndex++) flows.push(realisticFlow(flowIndex, node, now));
          seq++;
          ws.send(encodeMessage({ type: 'flows', session: `bench-${RUN}-${node}`, seq, lost: 0, flows }));
          sentAt.set(seq, performance.now());
          report.sent++;
        }, input.intervalMs),
      );
    }),
  );
  parentPort!.postMessage({ type: 'running' });
  parentPort!.once('message', () => {
    for (const t of timers) clearInterval(t);
    // What is still unacknowledged gets a moment to be.
    setTimeout(() => {
      for (const ws of sockets) ws.terminate();
      parentPort!.postMessage({ type: 'report', report });
    }, 2_000);
  });
}

run(workerData as AgentsInput).catch((err: Error) => parentPort!.postMessage({ type: 'error', message: err.stack ?? err.message }));
