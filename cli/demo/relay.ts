/**
 * A byte relay between two stream endpoints, for the demo only: `node relay.js FROM TO` listens on
 * FROM and pipes each connection to a new connection to TO. Each is `tcp:HOST:PORT` or
 * `unix:PATH`. A unix socket is reached by path from any network namespace, so a relay in a
 * namespace and one on the host carry a port across (the demo's Prometheus: cli/demo/prometheus.ts).
 * Logs one JSON line when listening, and one per connection it could not carry.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

export type RelayEndpoint = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** `tcp:HOST:PORT` or `unix:PATH`; undefined for anything else. */
export function parseRelayEndpoint(s: string): RelayEndpoint | undefined {
  if (s.startsWith('unix:')) {
    const p = s.slice(5);
    return p.startsWith('/') ? { kind: 'unix', path: p } : undefined;
  }
  const m = /^tcp:([0-9.]+):(\d{1,5})$/.exec(s);
  if (!m || net.isIPv4(m[1]!) === false) return undefined;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { kind: 'tcp', host: m[1]!, port } : undefined;
}

const log = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...o })}\n`);

function main(argv: string[]): void {
  const from = parseRelayEndpoint(argv[0] ?? '');
  const to = parseRelayEndpoint(argv[1] ?? '');
  if (!from || !to) {
    process.stderr.write('usage: relay tcp:HOST:PORT|unix:PATH tcp:HOST:PORT|unix:PATH\n');
    process.exit(2);
  }
  let failed = 0;
  const server = net.createServer((client) => {
    const upstream = to.kind === 'tcp' ? net.connect(to.port, to.host) : net.connect(to.path);
    const end = (err?: Error): void => {
      if (err && !client.destroyed) log({ event: 'relay-failed', error: err.message, failed: ++failed });
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', () => upstream.destroy());
    upstream.on('error', end).on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  server.on('error', (err) => {
    log({ event: 'relay-error', error: err.message });
    process.exit(1);
  });
  if (from.kind === 'unix') fs.rmSync(from.path, { force: true });
  const listening = (): void => log({ event: 'listening', from: argv[0], to: argv[1] });
  if (from.kind === 'tcp') server.listen(from.port, from.host, listening);
  else server.listen(from.path, listening);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
}

if (require.main === module) main(process.argv.slice(2));
