/**
 * Figures for tracing (not a test): the CPU the proxy spends per HTTP request on tracing, at 1 %
 * and 100 % sampling, against none. Per request it does what the engine and the session do: begin
 * the hop from the client's headers (none sends trace context: the rate decides), rewrite the forwarded header lines,
 * and finish it as the proxy does (`traced`: the decision, then for exported hops the flow's
 * attributes and spans to the export queue, exported by OTLP/HTTP protobuf to a receiver in
 * another process that discards them). Reported: us of this process's CPU per request, export
 * included (the queue is flushed before the clock stops, and is big enough for every span: a
 * span dropped for want of room would cost nothing and flatter the figure).
 * Run: node dist/test/bench/tracing-cost.js [requests, default 100000]
 */
import { spawn } from 'node:child_process';
import { MeshTracer } from '../../agent/tracing/tracer';
import type { HttpRecord } from '../../agent/proxy/http';
import { traced } from '../../agent/proxy/proxy-flow';
import { withTraceHeaders } from '../../agent/tracing/trace-context';
import { realisticFlow } from './flow-ingest';

const RECEIVER = `require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => s.end()); })
  .listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;

const LINES = ['Host', 'web-2:8080', 'User-Agent', 'curl/8.5.0', 'Accept', '*/*', 'X-Request-Id', '5f1e2d3c'];

/** Requests that arrive without trace context: the sampling rate alone decides. */
function requests(n: number): Array<{ headers: Record<string, string[]>; lines: string[] }> {
  return Array.from({ length: n }, (_, i) => ({ headers: { host: ['web-2:8080'], 'x-request-id': [String(i)] }, lines: LINES }));
}

async function run(n: number, rate: number | undefined, url: string): Promise<{ us: number; exported: number }> {
  const tracer = rate === undefined ? undefined : new MeshTracer({ url, sampleRate: rate, node: 'node-2', exportIntervalMs: 200, maxQueue: 2 * n + 16 });
  const input = requests(n);
  const flows = Array.from({ length: 64 }, (_, i) => ({ ...realisticFlow(i, 'node-2', Date.now()), verdict: 'allowed' as const, http: { method: 'GET', path: '/echo', status: 200 } }));
  let exported = 0;
  let sink = 0;
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const r = input[i]!;
    if (tracer === undefined) {
      sink += r.lines.length;
      continue;
    }
    const hop = tracer.begin(r.headers);
    sink += withTraceHeaders(r.lines, hop).length;
    const f = flows[i & 63]!;
    f.traceId = undefined;
    const rec: HttpRecord = { method: 'GET', path: '/echo', host: 'web-2:8080', status: 200, bytesSent: 0, bytesReceived: 10, durationMs: 2, forwardedAfterMs: 1, trace: hop };
    if (traced(tracer, f, rec).traceId !== undefined) exported++;
    if ((i & 1023) === 0) await new Promise((res) => setImmediate(res));
  }
  await tracer?.close();
  const used = process.cpuUsage(cpu);
  const dropped = tracer?.counts().spans['queue-full'] ?? 0;
  if (dropped > 0) throw new Error(`${dropped} spans found the export queue full: the figure would leave out their export`);
  if (sink < 0) console.log(sink);
  return { us: (used.user + used.system) / n, exported };
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 100_000);
  const rx = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<string>((resolve) => rx.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
    const url = `http://127.0.0.1:${port}/v1/traces`;
    await run(5000, 1, url); // warm up
    for (const [what, rate] of [['no tracing', undefined], ['1 % sampling', 0.01], ['100 % sampling', 1]] as const) {
      const best = [await run(n, rate, url), await run(n, rate, url)].sort((a, b) => a.us - b.us)[0]!;
      console.log(`${what}: ${best.us.toFixed(2)} us CPU per request (${best.exported} of ${n} requests exported: 2 spans each), best of 2`);
    }
  } finally {
    rx.kill();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
