/**
 * Watching the collector's event loop from its tests (it runs in the test's process): an
 * event-loop-delay histogram, and /healthz asked one request after another with every answer
 * timed.
 */
import * as https from 'node:https';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { RunningCollector } from '../../../collector/collector';
import { apiGet, type ApiCredentials } from './flows-fixtures';

/** /healthz, asked one request after another for as long as it runs; every answer timed. */
export class HealthPoller {
  readonly latencies: number[] = [];
  readonly failures: string[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(col: RunningCollector, creds: ApiCredentials) {
    this.done = (async () => {
      while (this.running) {
        const t = performance.now();
        try {
          const r = await apiGet(col, '/healthz', creds);
          if (r.status !== 200) this.failures.push(`status ${r.status}`);
        } catch (err) {
          this.failures.push((err as Error).message);
        }
        this.latencies.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
  }

  async stop(): Promise<{ answered: number; maxMs: number }> {
    this.running = false;
    await this.done;
    return { answered: this.latencies.length, maxMs: Math.max(...this.latencies) };
  }
}

/** An HTTPS agent that keeps one connection open (stopped with the test). */
export function keepAlive(stack: { push(fn: () => void): void }): https.Agent {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  stack.push(() => agent.destroy());
  return agent;
}

export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}

/** An event-loop-delay histogram (1 ms resolution) from now until `stop()`; figures in ms. */
export function loopDelay(): { stop: () => LoopDelay } {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  return {
    stop: () => {
      h.disable();
      return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
    },
  };
}

/** `count` ALLOW policies, one per workload, two rules each naming callers; `round` changes every one of them. */
export function manyPolicies(count: number, round: number): string {
  const docs: string[] = [];
  for (let i = 0; i < count; i++) {
    docs.push(
      `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-${i}, namespace: shop}\nspec:\n  selector: {matchLabels: {app: app-${i}}}\n  action: ALLOW\n` +
        `  rules:\n  - {from: [{source: {principals: [cluster.local/ns/shop/sa/caller-${round}-${i}]}}], to: [{operation: {methods: [GET], ports: ["8080"]}}]}\n` +
        `  - {from: [{source: {namespaces: [ops-${round}]}}], to: [{operation: {methods: [GET, HEAD], paths: ["/status/${i}"]}}]}\n`,
    );
  }
  return docs.join('---\n');
}
