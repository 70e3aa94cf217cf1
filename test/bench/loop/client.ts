/**
 * The control-API client of test/bench/collector-loop.ts, in its own thread: writing a
 * 1,000-policy file (manyPolicies), sending it and reading the megabyte answer cost the bench's
 * own client milliseconds at a time, which on the collector's thread counted as the collector's
 * event-loop delay. Each request: `{ round }` in, `{ status, ms, text }` out (text: the start of a
 * refusal).
 */
import * as https from 'node:https';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import type { RunningCollector } from '../../../collector/collector';
import { manyPolicies } from '../../integration/collector/event-loop-fixtures';
import { apiGet } from '../../integration/collector/flows-fixtures';

export interface ClientInput {
  port: number;
  caPem: string;
  token: string;
  policies: number;
}

export interface ClientAnswer {
  status: number;
  ms: number;
  text: string;
}

const input = workerData as ClientInput;
// apiGet reads these two of a running collector
const col = { port: input.port, ca: { certPem: input.caPem } } as unknown as RunningCollector;
const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });

parentPort?.on('message', (m: { round: number } | 'stop') => {
  if (m === 'stop') {
    agent.destroy();
    parentPort?.close();
    return;
  }
  const t = performance.now();
  const body = { files: [{ source: 'many.yaml', text: manyPolicies(input.policies, m.round) }] };
  apiGet(col, '/v1/policies/apply', { token: input.token, agent }, 'POST', body).then(
    (r) => parentPort?.postMessage({ status: r.status, ms: performance.now() - t, text: r.status === 200 ? '' : r.text.slice(0, 300) } satisfies ClientAnswer),
    (err: Error) => parentPort?.postMessage({ status: 0, ms: performance.now() - t, text: err.message } satisfies ClientAnswer),
  );
});
