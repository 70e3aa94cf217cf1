/**
 * A stand-in for the node's resolver, for the DNS proxy's tests: UDP and TCP on one address,
 * answering from a table and misbehaving on request, by the name's first label:
 *
 *   silent.*   never answers            tc.*      UDP: TC and no records; TCP: the answer
 *   garbage.*  answers a compression loop with the query's ID
 *   wrongid.*  answers with another ID first (the bogus address), then properly
 *   wrongq.*   answers another question with the query's ID (the bogus address)
 *   nx.*       NXDOMAIN with an SOA (negative TTL 5 s)
 *   huge.*     150 A records, over UDP too (a datagram past any EDNS size)
 *   ttlN.*     the table's (or 192.0.2.1) address with TTL N
 *   others     the table's addresses (`names`), TTL 300; NXDOMAIN without an SOA if not there
 * The bogus address is the table's `bogus` entry, else 203.0.113.66: what a forged answer would
 * like a pod to be allowed to reach.
 *
 * In-process (startDnsUpstream) or as a process in a namespace:
 *   node dist/test/harness/dns-upstream.js IP PORT '{"name":["ip",…]}'
 * Every query is a JSON line {event:"query", name, type, transport}; the process prints
 * {event:"listening"} once both sockets are bound.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { parseQuery, type Query } from '../../agent/dns/message';
import { FrameReader, framed } from '../../agent/dns/tcp-frames';
import { response, soa, T, type RecordSpec } from '../fixtures/dns-messages';

export interface DnsUpstream {
  port: number;
  /** Every query seen: its question, transport, ID and the asker's port. */
  queries: Array<{ name: string; type: number; transport: 'udp' | 'tcp'; id: number; port: number }>;
  close(): Promise<void>;
}

function answersFor(q: Query, names: Record<string, string[]>, transport: 'udp' | 'tcp'): Buffer[] {
  const { name, type } = q.question;
  const id = q.header.id;
  const first = name.split('.')[0]!;
  const bogus = names.bogus ?? ['203.0.113.66'];
  const a = (ips: string[], ttl: number): RecordSpec[] =>
    ips.filter((ip) => (type === T.AAAA ? ip.includes(':') : type === T.A && !ip.includes(':'))).map((ip) => ({ name, type, ttl, data: ip }));
  switch (true) {
    case first === 'silent':
      return [];
    case first === 'tc':
      return transport === 'udp' ? [response(name, { id, type, flags: 0x8380 })] : [response(name, { id, type, answers: a(['192.0.2.50'], 300) })];
    case first === 'garbage': {
      const loop = response(name, { id, type });
      loop.writeUInt16BE(1, 6);
      const ip = Buffer.from(bogus[0]!.split('.').map(Number));
      return [Buffer.concat([loop, Buffer.from([0xc0, loop.length, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4]), ip])];
    }
    case first === 'wrongid':
      return [response(name, { id: (id + 1) & 0xffff, type, answers: a(bogus, 300) }), response(name, { id, type, answers: a(['192.0.2.60'], 300) })];
    case first === 'wrongq':
      return [response('bank.example', { id, type, answers: a(bogus, 300).map((r) => ({ ...r, name: 'bank.example' })) })];
    case first === 'nx':
      return [response(name, { id, type, rcode: 3, authority: [{ name: 'example.test', type: T.SOA, ttl: 60, data: soa(5) }] })];
    case first === 'huge':
      return [response(name, { id, type, answers: a(Array.from({ length: 150 }, (_, i) => `198.51.100.${(i % 250) + 1}`), 300) })];
    case /^ttl\d+$/.test(first):
      return [response(name, { id, type, answers: a(names[name] ?? ['192.0.2.1'], Number(first.slice(3))) })];
    default: {
      const ips = names[name];
      return [ips ? response(name, { id, type, answers: a(ips, 300) }) : response(name, { id, type, rcode: 3 })];
    }
  }
}

export async function startDnsUpstream(host: string, port: number, names: Record<string, string[]> = {}, onQuery?: (q: DnsUpstream['queries'][number]) => void): Promise<DnsUpstream> {
  const queries: DnsUpstream['queries'] = [];
  const seen = (q: Query, transport: 'udp' | 'tcp', port: number): void => {
    const entry = { name: q.question.name, type: q.question.type, transport, id: q.header.id, port };
    queries.push(entry);
    onQuery?.(entry);
  };
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    let q: Query;
    try {
      q = parseQuery(msg);
    } catch {
      return;
    }
    seen(q, 'udp', rinfo.port);
    for (const out of answersFor(q, names, 'udp')) udp.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => udp.bind(port, host, () => resolve()));
  const bound = udp.address().port;
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const reader = new FrameReader();
    s.on('data', (chunk: Buffer) => {
      for (const msg of reader.push(chunk)) {
        let q: Query;
        try {
          q = parseQuery(msg);
        } catch {
          s.destroy();
          return;
        }
        seen(q, 'tcp', s.remotePort ?? 0);
        for (const out of answersFor(q, names, 'tcp')) s.write(framed(out));
      }
    });
  });
  await new Promise<void>((resolve) => tcp.listen(bound, host, () => resolve()));
  return {
    port: bound,
    queries,
    async close() {
      udp.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

if (require.main === module) {
  const [host, port, table] = process.argv.slice(2);
  startDnsUpstream(host ?? '127.0.0.1', Number(port ?? 0), table ? (JSON.parse(table) as Record<string, string[]>) : {}, (q) =>
    process.stdout.write(`${JSON.stringify({ event: 'query', ...q })}\n`),
  ).then(
    (u) => process.stdout.write(`${JSON.stringify({ event: 'listening', port: u.port })}\n`),
    (err: Error) => {
      process.stderr.write(`dns upstream: ${err.message}\n`);
      process.exit(1);
    },
  );
}
