/**
 * The DNS proxy's listeners over real loopback sockets, the kernel's records played by a table:
 * who is answered and who is not, hostile datagrams, DNS over TCP (pipelined, in order, idle
 * timeout), every query a flow record. The kernel side is the privileged suite's.
 */
import { strict as assert } from 'node:assert';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { Answerer } from '../../../agent/dns/answerer';
import { DnsCache } from '../../../agent/dns/cache';
import { DnsProxy } from '../../../agent/dns/dns-proxy';
import { parseResponse } from '../../../agent/dns/message';
import { MeshNames } from '../../../agent/dns/mesh-names';
import { PodNames } from '../../../agent/dns/pod-names';
import { FrameReader, framed } from '../../../agent/dns/tcp-frames';
import { Upstream } from '../../../agent/dns/upstream';
import type { FlowRecord } from '../../../common/flow';
import { silentLogger } from '../../../common/log';
import { PolicyIndex } from '../../../common/policy';
import { startDnsUpstream, type DnsUpstream } from '../../harness/dns-upstream';
import { CLIENT_POD, query, T } from '../../fixtures/dns-messages';

const POD = { ...CLIENT_POD, ip: '127.0.0.1' };
const OTHER_POD = { ...POD, name: 'other' };
const RESOLVER = { ip: '10.96.0.10', port: 53 };

describe('DnsProxy (loopback)', function () {
  this.timeout(20_000);
  let server: DnsUpstream;
  let upstream: Upstream;
  let proxy: DnsProxy;
  let port: number;
  const flows: FlowRecord[] = [];
  /** UDP source ports the "kernel" attributes to a pod: port -> netns cookie (7: POD, 8: OTHER_POD). */
  const known = new Map<number, bigint>();

  before(async () => {
    server = await startDnsUpstream('127.0.0.1', 0, { 'api.example.test': ['192.0.2.20'] });
    upstream = new Upstream({ servers: [{ ip: '127.0.0.1', port: server.port }], timeoutMs: 300, log: silentLogger() });
    const names = new PodNames();
    const answerer = new Answerer({
      mesh: new MeshNames('cluster.local', { version: () => '1', entries: () => [{ name: 'web', namespace: 'default', ip: '10.0.1.11' }] }),
      hosts: undefined,
      cache: new DnsCache(),
      upstream,
      names,
      policies: { index: new PolicyIndex({ authorization: [], egress: [] }) },
    });
    const orig = { dst: RESOLVER, podId: 1, netnsCookie: 7n };
    const origOf = (p: number): typeof orig | undefined => (known.has(p) ? { ...orig, netnsCookie: known.get(p)! } : undefined);
    proxy = new DnsProxy({
      node: 'node-1',
      proxyIp: '127.0.0.1',
      datapath: {
        lookupDnsPeer: (ip, p) => (ip === '127.0.0.1' ? origOf(p) : undefined),
        lookupOriginal: (ip) => (ip === '127.0.0.1' ? orig : undefined),
      },
      workloads: { byNetnsCookie: (c) => (c === 7n ? POD : c === 8n ? OTHER_POD : undefined), byIp: () => undefined },
      answerer,
      flows: { record: (f) => flows.push(f) },
      log: silentLogger(),
    });
    port = (await proxy.listen(0)).udp.port;
  });

  after(async () => {
    await proxy.close();
    upstream.close();
    await server.close();
  });

  /** A UDP socket the kernel knows (or not); each datagram's answer, or undefined after `waitMs`. */
  async function udpClient(attributed: boolean, cookie = 7n): Promise<{ ask(m: Buffer, waitMs?: number): Promise<Buffer | undefined>; close(): void }> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
    if (attributed) known.set(s.address().port, cookie);
    return {
      ask: (m, waitMs = 1500) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => resolve(undefined), waitMs);
          s.once('message', (msg) => {
            clearTimeout(timer);
            resolve(msg);
          });
          s.send(m, port, '127.0.0.1');
        }),
      close: () => s.close(),
    };
  }

  it('answers a pod the kernel names, and records the query as a flow', async () => {
    const c = await udpClient(true);
    try {
      const r = parseResponse((await c.ask(query('api.example.test', { id: 5 })))!);
      assert.deepEqual([r.header.id, r.answers.map((a) => a.data)], [5, ['192.0.2.20']]);
      const f = flows.at(-1)!;
      assert.deepEqual(
        [f.protocol, f.direction, f.source.workload, f.destination.ip, f.destination.port, f.destination.host, f.dns, f.verdict, f.reason],
        ['dns', 'outbound', 'client', '10.96.0.10', 53, 'api.example.test', { type: 'A', rcode: 'NOERROR', answers: ['192.0.2.20'] }, 'allowed', 'forwarded'],
      );
    } finally {
      c.close();
    }
  });

  it('drops a datagram the kernel has no record of, counted, and answers nothing', async () => {
    const c = await udpClient(false);
    try {
      const before = proxy.refused['no-kernel-record'];
      assert.equal(await c.ask(query('api.example.test'), 500), undefined);
      assert.equal(proxy.refused['no-kernel-record'], before + 1);
    } finally {
      c.close();
    }
  });

  it('stays up through hostile datagrams: FORMERR where there is a header, silence where not, then serves', async () => {
    const c = await udpClient(true);
    try {
      const hostile = [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.concat([query('x.test').subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]), Buffer.alloc(4000, 0x3f)];
      const got = [];
      for (const m of hostile) got.push(await c.ask(m, 400));
      assert.deepEqual(got.map((g) => (g ? g.readUInt16BE(2) & 0x800f : undefined)), [undefined, undefined, 0x8001, 0x8001]);
      const ok = parseResponse((await c.ask(query('web.default.svc.cluster.local')))!);
      assert.deepEqual(ok.answers.map((a) => a.data), ['10.0.1.11']);
      assert.ok(flows.some((f) => f.reason === 'malformed-query' && f.verdict === 'denied'));
    } finally {
      c.close();
    }
  });

  it('answers SERVFAIL for a silent upstream while answering others meanwhile', async () => {
    const c1 = await udpClient(true);
    const c2 = await udpClient(true);
    try {
      const slow = c1.ask(query('silent.example.test'), 3000);
      const quick = parseResponse((await c2.ask(query('web', { id: 9 })))!);
      assert.equal(quick.header.id, 9);
      const r = parseResponse((await slow)!);
      assert.equal(r.header.rcode, 2);
    } finally {
      c1.close();
      c2.close();
    }
  });

  it('one pod\'s flood does not starve another: past 512 queries under way a pod\'s datagrams are dropped, counted', async () => {
    // A proxy whose answers to POD never come (until released): its queries stay under way.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const answerer = new Answerer({
      mesh: new MeshNames('cluster.local', { version: () => '1', entries: () => [{ name: 'web', namespace: 'default', ip: '10.0.1.11' }] }),
      hosts: undefined,
      cache: new DnsCache(),
      upstream,
      names: new PodNames(),
      policies: { index: new PolicyIndex({ authorization: [], egress: [] }) },
    });
    const orig = { dst: RESOLVER, podId: 1, netnsCookie: 7n };
    const flooded = new DnsProxy({
      node: 'node-1',
      proxyIp: '127.0.0.1',
      datapath: { lookupDnsPeer: (_ip, p) => (known.has(p) ? { ...orig, netnsCookie: known.get(p)! } : undefined), lookupOriginal: () => undefined },
      workloads: { byNetnsCookie: (c) => (c === 7n ? POD : c === 8n ? OTHER_POD : undefined), byIp: () => undefined },
      answerer: { answer: async (m, pod, t) => (pod === POD ? held.then(() => ({ response: undefined, outcome: { verdict: 'error', reason: 'held', type: 'A', rcode: '-', answers: [], truncated: false } })) : answerer.answer(m, pod, t)) },
      flows: { record: () => undefined },
      log: silentLogger(),
    });
    const at = (await flooded.listen(0)).udp.port;
    const flood = dgram.createSocket('udp4');
    const other = dgram.createSocket('udp4');
    await Promise.all([flood, other].map((s) => new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()))));
    known.set(flood.address().port, 7n);
    known.set(other.address().port, 8n);
    try {
      // In bursts the socket's receive buffer holds, until the proxy says it dropped some.
      for (let i = 0; i < 2000 && flooded.refused.overloaded === 0; i++) {
        flood.send(query('flood.example.test', { id: i }), at, '127.0.0.1');
        if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(flooded.refused.overloaded > 0, 'the flood went past its bound');
      const answer = new Promise<Buffer>((resolve) => other.once('message', resolve));
      other.send(query('web', { id: 7 }), at, '127.0.0.1');
      assert.deepEqual(parseResponse(await answer).answers.map((a) => a.data), ['10.0.1.11'], 'the other pod is answered at once');
    } finally {
      release();
      flood.close();
      other.close();
      await flooded.close();
    }
  });

  /** Framed queries over one TCP connection to `to`; the answers in order. */
  async function overTcp(to: number, messages: Buffer[], expect: number): Promise<{ answers: Buffer[]; closed: boolean }> {
    return new Promise((resolve) => {
      const s = net.connect(to, '127.0.0.1');
      const reader = new FrameReader();
      const answers: Buffer[] = [];
      s.on('connect', () => s.write(Buffer.concat(messages.map(framed))));
      s.on('data', (d: Buffer) => {
        answers.push(...reader.push(d));
        if (answers.length >= expect) {
          s.destroy();
          resolve({ answers, closed: false });
        }
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve({ answers, closed: true }));
    });
  }

  it('DNS over TCP: pipelined queries answered in order, the whole answer', async () => {
    const { answers } = await overTcp(port, [query('huge.example.test', { id: 1 }), query('web', { id: 2 }), query('api.example.test', { id: 3 })], 3);
    const parsed = answers.map((a) => parseResponse(a));
    assert.deepEqual(parsed.map((p) => p.header.id), [1, 2, 3]);
    assert.equal(parsed[0]!.answers.length, 150, 'no truncation over TCP');
  });

  it('DNS over TCP: more than 16 queries waiting closes the connection, counted', async () => {
    const before = proxy.refused['tcp-pipeline-full'];
    const { closed } = await overTcp(port, Array.from({ length: 40 }, (_, i) => query('silent.example.test', { id: i })), 40);
    assert.equal(closed, true);
    assert.equal(proxy.refused['tcp-pipeline-full'], before + 1);
  });

  it('a UDP answer bigger than the client takes goes out truncated (TC, no records)', async () => {
    const c = await udpClient(true);
    try {
      const udp = parseResponse((await c.ask(query('huge.example.test', { type: T.A })))!);
      assert.deepEqual([udp.header.ancount, Boolean(udp.header.flags & 0x0200)], [0, true]);
    } finally {
      c.close();
    }
  });
});
