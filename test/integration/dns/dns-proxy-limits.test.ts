/**
 * The DNS proxy under the proxy's limits, over real loopback sockets (the kernel's records played
 * by a table: 127.0.0.1 is the pod `client`, 127.0.0.2 the pod `other`): DNS over TCP holds places
 * in the connection caps and has a per-pod share of its own, TCP queries count in a pod's queries
 * under way, and denied queries go through the refusal summaries instead of one flow each.
 */
import { strict as assert } from 'node:assert';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { Answerer } from '../../../agent/dns/answerer';
import { DnsProxy, type DnsProxyInputs } from '../../../agent/dns/dns-proxy';
import { parseResponse } from '../../../agent/dns/message';
import { FrameReader, framed } from '../../../agent/dns/tcp-frames';
import { ConnectionLimits } from '../../../agent/proxy/limits';
import { RefusalLog } from '../../../agent/proxy/refusals';
import type { Workload } from '../../../agent/workloads';
import type { FlowRecord } from '../../../common/flow';
import { silentLogger } from '../../../common/log';
import { CLIENT_POD, query } from '../../fixtures/dns-messages';

const POD: Workload = { ...CLIENT_POD, ip: '127.0.0.1' };
const OTHER: Workload = { ...CLIENT_POD, name: 'other', ip: '127.0.0.2', identity: 'spiffe://cluster.local/ns/default/sa/other' };
const RESOLVER = { ip: '10.96.0.10', port: 53 };

type AnswerFn = Answerer['answer'];

/** The query's header and question as a response with `rcode` and no records. */
function answerOf(msg: Buffer, rcode: number): Buffer {
  return Buffer.concat([msg.subarray(0, 2), Buffer.from([0x81, 0x80 | rcode]), msg.subarray(4, 6), Buffer.alloc(6), msg.subarray(12)]);
}

/** Answers every query NOERROR with no records, at once. */
const quick: AnswerFn = async (msg) => ({
  response: answerOf(msg, 0),
  outcome: { verdict: 'allowed', reason: 'forwarded', name: 'x.test', type: 'A', rcode: 'NOERROR', answers: [], truncated: false },
});

describe('DnsProxy under the proxy limits (loopback)', function () {
  this.timeout(30_000);
  const proxies: DnsProxy[] = [];
  const logs: RefusalLog[] = [];
  afterEach(async () => {
    for (const l of logs.splice(0)) l.close();
    for (const p of proxies.splice(0)) await p.close();
  });

  async function start(o: { answer?: AnswerFn; limits?: ConnectionLimits } = {}): Promise<{ proxy: DnsProxy; port: number; flows: FlowRecord[]; refusals: RefusalLog }> {
    const flows: FlowRecord[] = [];
    const sink = { record: (f: FlowRecord) => void flows.push(f) };
    const refusals = new RefusalLog({ node: 'node-1', flows: sink, log: silentLogger(), intervalMs: 3_600_000 });
    logs.push(refusals);
    const cookieOf = (ip: string): bigint | undefined => (ip === '127.0.0.1' ? 7n : ip === '127.0.0.2' ? 9n : undefined);
    const orig = (ip: string) => (cookieOf(ip) === undefined ? undefined : { dst: RESOLVER, podId: 1, netnsCookie: cookieOf(ip)! });
    const inputs: DnsProxyInputs = {
      node: 'node-1',
      proxyIp: '127.0.0.1',
      datapath: { lookupDnsPeer: (ip) => orig(ip), lookupOriginal: (ip) => orig(ip) },
      workloads: { byNetnsCookie: (c) => (c === 7n ? POD : c === 9n ? OTHER : undefined), byIp: () => undefined },
      answerer: { answer: o.answer ?? quick },
      flows: sink,
      limits: { connections: o.limits ?? new ConnectionLimits({ outbound: 10_000, inbound: 10, perPod: 10_000 }), refusals },
      log: silentLogger(),
    };
    const proxy = new DnsProxy(inputs);
    proxies.push(proxy);
    const port = (await proxy.listen(0)).tcp.port;
    return { proxy, port, flows, refusals };
  }

  /** A TCP connection from `from`; resolves once open (or reset). */
  function connect(port: number, from: string): Promise<{ socket: net.Socket; closed: Promise<void> }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      socket.on('error', () => undefined);
      socket.once('connect', () => resolve({ socket, closed }));
      socket.once('close', () => reject(new Error('closed before connecting')));
    });
  }

  /** A connection the proxy resets (it may do so before the client saw it open): resolves once closed. */
  function refusedConnection(port: number, from: string): Promise<void> {
    return new Promise((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
      socket.on('error', () => undefined);
      socket.once('close', () => resolve());
    });
  }

  /** One query over `socket`; its answer, or undefined when the connection closes first. */
  function ask(socket: net.Socket, m: Buffer): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const reader = new FrameReader();
      socket.on('data', (d: Buffer) => {
        const [first] = reader.push(d);
        if (first) resolve(first);
      });
      socket.once('close', () => resolve(undefined));
      socket.write(framed(m));
    });
  }

  it('holds a place of the pod\'s in the connection caps: past its share a DNS connection is refused, counted and recorded; a closed one frees its place', async () => {
    const limits = new ConnectionLimits({ outbound: 100, inbound: 10, perPod: 3 });
    const { proxy, port, flows } = await start({ limits });
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await connect(port, '127.0.0.1'));
    assert.ok(parseResponse((await ask(open[0]!.socket, query('a.test', { id: 1 })))!), 'an admitted connection is served');
    assert.equal(limits.held('outbound'), 3);
    await refusedConnection(port, '127.0.0.1');
    assert.equal(proxy.refused['pod-connection-limit'], 1);
    const f = flows.find((x) => x.reason === 'pod-connection-limit');
    assert.ok(f, 'the refusal is a flow record');
    assert.deepEqual([f.protocol, f.verdict, f.source.workload, f.destination.ip], ['dns', 'denied', 'client', RESOLVER.ip]);
    const other = await connect(port, '127.0.0.2');
    assert.ok(await ask(other.socket, query('b.test', { id: 2 })), 'another pod still gets in');
    open[0]!.socket.destroy();
    await open[0]!.closed;
    await until(() => limits.held('outbound') === 3);
    const again = await connect(port, '127.0.0.1');
    assert.ok(await ask(again.socket, query('c.test', { id: 3 })), 'the freed place is taken again');
    for (const c of [...open, other, again]) c.socket.destroy();
    await until(() => limits.held('outbound') === 0);
  });

  it('one pod holds at most a quarter of the DNS connections (128); another pod still connects', async () => {
    const { proxy, port } = await start();
    const open = [];
    for (let i = 0; i < 128; i++) open.push(await connect(port, '127.0.0.1'));
    await refusedConnection(port, '127.0.0.1');
    assert.equal(proxy.refused['pod-tcp-limit'], 1);
    const other = await connect(port, '127.0.0.2');
    assert.ok(await ask(other.socket, query('b.test', { id: 2 })), 'the other pod is served');
    assert.equal(proxy.live, 129);
    for (const c of [...open, other]) c.socket.destroy();
  });

  it('counts queries waiting on TCP connections in the pod\'s queries under way: past 512 the connection closes, and another pod is answered', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const { proxy, port } = await start({ answer: async (m, pod, t) => (pod === POD ? held.then(() => quick(m, pod, t)) : quick(m, pod, t)) });
    try {
      const conns = [];
      // 16 waiting queries a connection (the pipeline bound): 32 connections hold 512.
      for (let i = 0; i < 33; i++) {
        const c = await connect(port, '127.0.0.1');
        c.socket.write(Buffer.concat(Array.from({ length: 16 }, (_, j) => framed(query('held.test', { id: i * 16 + j })))));
        conns.push(c);
      }
      await until(() => proxy.refused.overloaded > 0, 5000, 'the pod to go past its bound');
      assert.equal(proxy.refused['tcp-pipeline-full'], 0, 'no connection went past its own pipeline');
      const other = dgram.createSocket('udp4');
      await new Promise<void>((r) => other.bind(0, '127.0.0.2', () => r()));
      try {
        const answer = new Promise<Buffer>((r) => other.once('message', r));
        other.send(query('web', { id: 7 }), port, '127.0.0.1');
        assert.equal(parseResponse(await answer).header.id, 7, 'the other pod is answered at once');
      } finally {
        other.close();
      }
      for (const c of conns) c.socket.destroy();
    } finally {
      release();
    }
  });

  it('denied queries go through the refusal summaries: the first of a kind is a record, the rest one summary with their count', async () => {
    const { port, flows, refusals } = await start({
      answer: async (msg) => ({
        response: answerOf(msg, 3),
        outcome: { verdict: 'denied', reason: 'host-not-allowed', policy: 'default/client-out', name: 'evil.test', type: 'A', rcode: 'NXDOMAIN', answers: [], truncated: false },
      }),
    });
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    let answered = 0;
    s.on('message', () => answered++);
    try {
      for (let i = 0; i < 50; i++) s.send(query('evil.test', { id: i }), port, '127.0.0.1');
      await until(() => answered === 50, 5000, 'every denied query answered (NXDOMAIN)');
    } finally {
      s.close();
    }
    assert.equal(flows.length, 1, 'one record for the first, not fifty');
    assert.deepEqual([flows[0]!.protocol, flows[0]!.verdict, flows[0]!.reason, flows[0]!.destination.host, flows[0]!.count], ['dns', 'denied', 'host-not-allowed', 'evil.test', undefined]);
    refusals.flush();
    assert.equal(flows.length, 2);
    assert.deepEqual([flows[1]!.reason, flows[1]!.destination.host, flows[1]!.source.port, flows[1]!.count], ['host-not-allowed', 'evil.test', undefined, 49]);
    assert.equal(flows.reduce((n, f) => n + (f.count ?? 1), 0), 50, 'the counts add up to the queries');
  });

  it('allowed queries are still one record each', async () => {
    const { port, flows } = await start();
    const c = await connect(port, '127.0.0.1');
    for (let i = 0; i < 3; i++) assert.ok(await ask(c.socket, query('ok.test', { id: i })));
    c.socket.destroy();
    assert.deepEqual(flows.map((f) => [f.verdict, f.reason]), [['allowed', 'forwarded'], ['allowed', 'forwarded'], ['allowed', 'forwarded']]);
  });
});

async function until(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
