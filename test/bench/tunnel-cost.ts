/**
 * Figures for the tunnel (not a test): what a byte costs to carry between two Node processes
 * on loopback, as plain TCP (the kernel alone), as TLS 1.3 on one connection per tunnelled
 * connection (what a kTLS + splice tunnel would hand to the kernel), and as an HTTP/2 CONNECT
 * stream over TLS 1.3 (HBONE, today's tunnel). CPU seconds per GiB of each side and the
 * throughput, one sender and one receiver process per mode.
 *   node dist/test/bench/tunnel-cost.js [MiB, default 1024]
 * kTLS itself needs a kernel built with CONFIG_TLS (`tls` in /proc/sys/net/ipv4/tcp_available_ulp);
 * the figure printed for it says whether this machine has one.
 */
import { execFileSync, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';

type Mode = 'tcp' | 'tls' | 'h2';
const MODES: Mode[] = ['tcp', 'tls', 'h2'];
const CHUNK = 64 * 1024;

interface Report {
  bytes: number;
  cpuUs: number;
  wallUs: number;
}

function since(t0: bigint, c0: NodeJS.CpuUsage, bytes: number): Report {
  const c = process.cpuUsage(c0);
  return { bytes, cpuUs: c.user + c.system, wallUs: Number(process.hrtime.bigint() - t0) / 1000 };
}

/** The receiving process: listens, counts bytes until `total`, reports its CPU since the first byte. */
function receiver(mode: Mode, total: number, dir: string): void {
  const creds = { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) };
  let got = 0;
  let t0 = 0n;
  let c0: NodeJS.CpuUsage = process.cpuUsage();
  const count = (c: Buffer): void => {
    if (got === 0) {
      t0 = process.hrtime.bigint();
      c0 = process.cpuUsage();
    }
    got += c.length;
    if (got >= total) {
      process.send!({ receiver: since(t0, c0, got) });
      setTimeout(() => process.exit(0), 50);
    }
  };
  const listen = (server: net.Server): void => {
    server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
  };
  if (mode === 'tcp') listen(net.createServer((s) => s.on('data', count)));
  else if (mode === 'tls') listen(tls.createServer({ ...creds, minVersion: 'TLSv1.3' }, (s) => s.on('data', count)));
  else {
    const server = http2.createSecureServer({ ...creds, minVersion: 'TLSv1.3' });
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.on('data', count);
    });
    listen(server as unknown as net.Server);
  }
}

/** The sending process: writes `total` bytes as fast as the connection takes them. */
function sender(mode: Mode, total: number, port: number, dir: string): void {
  const ca = fs.readFileSync(path.join(dir, 'cert.pem'));
  const block = Buffer.alloc(CHUNK, 0x61);
  const pump = (w: NodeJS.WritableStream & { once(e: 'drain', f: () => void): unknown }, done: () => void): void => {
    let sent = 0;
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const more = (): void => {
      while (sent < total) {
        sent += CHUNK;
        if (!w.write(block)) return void w.once('drain', more);
      }
      process.send!({ sender: since(t0, c0, sent) });
      done();
    };
    more();
  };
  const opts = { host: '127.0.0.1', port, ca, servername: 'tunnel-cost', minVersion: 'TLSv1.3' as const };
  if (mode === 'tcp') {
    const s = net.connect(port, '127.0.0.1', () => pump(s, () => undefined));
  } else if (mode === 'tls') {
    const s = tls.connect(opts, () => pump(s, () => undefined));
  } else {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ...opts });
    const stream = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80' });
    stream.once('response', () => pump(stream, () => undefined));
  }
}

async function measure(mode: Mode, total: number, dir: string): Promise<{ receiver: Report; sender: Report }> {
  const self = __filename;
  const rx = fork(self, ['receiver', mode, String(total), dir]);
  const port = await new Promise<number>((r) => rx.on('message', (m: { port?: number }) => m.port !== undefined && r(m.port)));
  const got = new Promise<Report>((r) => rx.on('message', (m: { receiver?: Report }) => m.receiver && r(m.receiver)));
  const tx = fork(self, ['sender', mode, String(total), dir, String(port)]);
  const sent = new Promise<Report>((r) => tx.on('message', (m: { sender?: Report }) => m.sender && r(m.sender)));
  const [receiverReport, senderReport] = await Promise.all([got, sent]);
  tx.kill();
  rx.kill();
  return { receiver: receiverReport, sender: senderReport };
}

function ktlsAvailable(): boolean {
  try {
    return fs.readFileSync('/proc/sys/net/ipv4/tcp_available_ulp', 'utf8').split(/\s+/).includes('tls');
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const mib = Number(process.argv[2] ?? 1024);
  const total = mib * 1024 * 1024;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-tunnel-cost-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-subj', '/CN=tunnel-cost', '-addext', 'subjectAltName=DNS:tunnel-cost', '-days', '1'], { stdio: 'ignore' });
    console.log(`${mib} MiB per mode, one connection, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(`kernel TLS (kTLS) on this kernel: ${ktlsAvailable() ? 'available' : 'NOT available (no "tls" in tcp_available_ulp)'}`);
    console.log('mode                  Gbit/s   sender CPU s/GiB   receiver CPU s/GiB');
    for (const mode of MODES) {
      const r = await measure(mode, total, dir);
      const gib = r.receiver.bytes / 2 ** 30;
      const label = { tcp: 'TCP (kernel only)', tls: 'TLS 1.3, one conn', h2: 'HTTP/2 CONNECT/TLS' }[mode];
      console.log(`${label.padEnd(20)} ${((r.receiver.bytes * 8) / r.receiver.wallUs / 1000).toFixed(2).padStart(7)}   ${(r.sender.cpuUs / 1e6 / gib).toFixed(3).padStart(16)}   ${(r.receiver.cpuUs / 1e6 / gib).toFixed(3).padStart(18)}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const [role, mode, total, dir, port] = process.argv.slice(2);
if (role === 'receiver') receiver(mode as Mode, Number(total), dir!);
else if (role === 'sender') sender(mode as Mode, Number(total), Number(port), dir!);
else if (require.main === module) void main();
