/**
 * Open-loop DNS load from inside a pod: `rate` queries a second for `seconds`, each timed from its
 * scheduled send time (no coordinated omission), over one UDP socket with an ID per query.
 *   node dist/test/bench/dns/loadgen.js SERVER RATE SECONDS NAME
 * NAME `{i}` is replaced by the query's number (unique names: nothing cached).
 * Prints {sent, answered, lost, errors, p50, p90, p99, max} (latencies in µs) as one JSON line.
 */
import * as dgram from 'node:dgram';
import { query } from '../../fixtures/dns-messages';

const GRACE_MS = 3000;

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : NaN;
}

async function main(): Promise<void> {
  const [server, rateArg, secondsArg, name] = process.argv.slice(2);
  const rate = Number(rateArg);
  const total = Math.round(rate * Number(secondsArg));
  const sock = dgram.createSocket('udp4');
  const due = new Map<number, bigint>();
  const latencies: number[] = [];
  let errors = 0;
  sock.on('message', (m) => {
    const id = m.readUInt16BE(0);
    const t = due.get(id);
    if (t === undefined) return;
    due.delete(id);
    if ((m[3]! & 0xf) !== 0 && (m[3]! & 0xf) !== 3) errors++;
    latencies.push(Number(process.hrtime.bigint() - t) / 1000);
  });
  await new Promise<void>((resolve) => sock.bind(0, () => resolve()));
  const start = process.hrtime.bigint();
  const interval = 1e9 / rate;
  for (let i = 0; i < total; i++) {
    const at = start + BigInt(Math.round(i * interval));
    const wait = Number(at - process.hrtime.bigint()) / 1e6;
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const id = i & 0xffff;
    // From the scheduled time when late (open loop), from now when a timer woke us early.
    const now = process.hrtime.bigint();
    due.set(id, now > at ? at : now);
    sock.send(query((name ?? 'a.example').replace('{i}', String(i)), { id }), 53, server!);
  }
  await new Promise((r) => setTimeout(r, GRACE_MS));
  sock.close();
  latencies.sort((a, b) => a - b);
  const out = { sent: total, answered: latencies.length, lost: due.size, errors, p50: percentile(latencies, 0.5), p90: percentile(latencies, 0.9), p99: percentile(latencies, 0.99), max: latencies.at(-1) };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

if (require.main === module) void main();
