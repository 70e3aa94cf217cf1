/**
 * A DNS client to run inside a pod (as a process in its namespace), asking the way stub resolvers
 * do, and printing what the pod saw as one JSON line:
 *   node dist/test/harness/dns-client.js MODE SERVER NAME [TYPE]
 *   MODE: udp (unconnected: where the answer came from), connected (connect + send: getpeername
 *   too), tcp (length-prefixed), raw (NAME is hex bytes sent as they are over UDP).
 * Output: {from, peer, id, rcode, tc, answers} or {timeout: true}.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { parseResponse } from '../../agent/dns/message';
import { FrameReader, framed } from '../../agent/dns/tcp-frames';
import { query, T } from '../fixtures/dns-messages';

/** A question gets its answer (or SERVFAIL) within the proxy's upstream timeout; raw bytes may get nothing. */
const TIMEOUT_MS = 8000;
const RAW_TIMEOUT_MS = 1500;

function describe(msg: Buffer, from?: string, peer?: string): Record<string, unknown> {
  const out: Record<string, unknown> = { from, peer, bytes: msg.length, id: msg.length >= 2 ? msg.readUInt16BE(0) : undefined };
  try {
    const r = parseResponse(msg);
    return { ...out, rcode: r.header.rcode, tc: (r.header.flags & 0x0200) !== 0, answers: r.answers.map((a) => a.data) };
  } catch (err) {
    return { ...out, rcode: msg.length >= 4 ? msg[3]! & 0xf : undefined, unparsed: (err as Error).message };
  }
}

async function main(): Promise<Record<string, unknown>> {
  const [mode, server, name, type] = process.argv.slice(2);
  const qtype = type === 'AAAA' ? T.AAAA : type === 'TXT' ? T.TXT : T.A;
  const msg = mode === 'raw' ? Buffer.from(name ?? '', 'hex') : query(name ?? '', { type: qtype, id: 4242 });
  if (mode === 'tcp') {
    return new Promise((resolve) => {
      const s = net.connect(53, server!);
      const reader = new FrameReader();
      s.on('connect', () => s.write(framed(msg)));
      s.on('data', (d: Buffer) => {
        const [first] = reader.push(d);
        if (first) {
          const peer = `${s.remoteAddress}:${s.remotePort}`;
          s.destroy();
          resolve(describe(first, undefined, peer));
        }
      });
      s.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code }));
    });
  }
  const sock = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ timeout: true }), mode === 'raw' ? RAW_TIMEOUT_MS : TIMEOUT_MS);
    sock.on('message', (m, rinfo) => {
      clearTimeout(timer);
      let peer: string | undefined;
      if (mode === 'connected') {
        const p = sock.remoteAddress();
        peer = `${p.address}:${p.port}`;
      }
      resolve(describe(m, `${rinfo.address}:${rinfo.port}`, peer));
    });
    sock.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code }));
    if (mode === 'connected') sock.connect(53, server!, () => sock.send(msg));
    else sock.send(msg, 53, server!);
  });
}

if (require.main === module) {
  main().then((r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  });
}
