/**
 * `palisade demo traffic`'s load, run inside a demo pod: `node load-client.js URL RATE DURATION_MS`.
 * A GET every 1/RATE s on a connection of its own (so connection-level balancing shows too), for
 * DURATION_MS (0: until SIGTERM/SIGINT). One JSON line per answer on stdout:
 *   {"backend":"web-1","status":200,"ms":3}   the pod that answered (the demo web app names itself)
 *   {"error":"ECONNREFUSED","ms":1}          no answer
 *   {"event":"done","sent":N,"skipped":M}     at the end; skipped: ticks while MAX_IN_FLIGHT were open
 */
import * as http from 'node:http';

const MAX_IN_FLIGHT = 64;
const REQUEST_TIMEOUT_MS = 5000;

const [url, rateText, durationText] = process.argv.slice(2);
const rate = Number(rateText);
const durationMs = Number(durationText);
if (!url || !(rate > 0) || !(durationMs >= 0)) {
  process.stderr.write('usage: load-client.js URL RATE DURATION_MS\n');
  process.exit(2);
}

let inFlight = 0;
let sent = 0;
let skipped = 0;
let stopping = false;
const out = (o: Record<string, unknown>): boolean => process.stdout.write(`${JSON.stringify(o)}\n`);

function one(): void {
  if (inFlight >= MAX_IN_FLIGHT) {
    skipped++;
    return;
  }
  inFlight++;
  sent++;
  const started = Date.now();
  let body = '';
  let settled = false;
  const done = (o: Record<string, unknown>): void => {
    if (settled) return;
    settled = true;
    inFlight--;
    out({ ...o, ms: Date.now() - started });
    if (stopping && inFlight === 0) finish();
  };
  const req = http.get(url!, { agent: false, timeout: REQUEST_TIMEOUT_MS }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      if (body.length < 256) body += c;
    });
    res.on('end', () => done({ backend: /^hello from (\S+)/.exec(body)?.[1] ?? null, status: res.statusCode }));
    res.on('error', (err: NodeJS.ErrnoException) => done({ error: err.code ?? err.message }));
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
  req.on('error', (err: NodeJS.ErrnoException) => done({ error: err.code ?? err.message }));
}

function finish(): void {
  out({ event: 'done', sent, skipped });
  // stdout is a pipe to `palisade demo traffic`: exit once the last line is written, not before
  process.stdout.write('', () => process.exit(0));
}

function stop(): void {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  if (inFlight === 0) finish();
  setTimeout(finish, REQUEST_TIMEOUT_MS + 500).unref();
}

const ticker = setInterval(one, 1000 / rate);
one();
if (durationMs > 0) setTimeout(stop, durationMs);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
