/**
 * The frames CollectorClient.sendFlows puts on the wire for the reporter's batches pass the
 * collector's own boundary (parseMessage). The client is driven only through its public surface,
 * over a real node session (TLS 1.3 on a Unix socket, the mesh CA) to a stand-in collector that
 * answers hello with a registry snapshot, acknowledges flows, and keeps every frame it is sent.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { FlowReporter } from '../../../../agent/flows/reporter';
import { CollectorClient, FLOWS_MAX_BUFFERED_BYTES, type FlowBatch } from '../../../../agent/mesh/collector-client';
import { saveNodeCredentials } from '../../../../agent/mesh/node-identity';
import { isPalisadeError } from '../../../../common/errors';
import { silentLogger } from '../../../../common/log';
import { AGENT_PATH, COLLECTOR_SERVERNAME, encodeMessage, MAX_FLOWS_PER_BATCH, MAX_FRAME_BYTES, parseMessage } from '../../../../common/mesh-protocol';
import { CertificateAuthority } from '../../../../collector/mesh-ca';
import { generateKeyPair, nodeSpiffeId } from '../../../../common/pki';
import { httpFlow, tcpFlow, until } from '../flows/fixtures';

const NODE = 'node-1';

/** The collector's side of one node session, as far as flows go. */
class StandInCollector {
  /** Every text frame received, in order. */
  readonly frames: string[] = [];
  /** The bytes of the session as they came out of TLS, before the WebSocket layer read them. */
  readonly raw: Buffer[] = [];
  private session: { ws: WebSocket; socket: Socket } | undefined;

  private constructor(
    private readonly server: https.Server,
    private readonly wss: WebSocketServer,
  ) {
    wss.on('connection', (ws, req) => {
      this.session = { ws, socket: req.socket };
      req.socket.on('data', (c: Buffer) => this.raw.push(c));
      ws.on('message', (data: Buffer) => {
        const text = data.toString('utf8');
        this.frames.push(text);
        const m = JSON.parse(text) as { type: string; session?: string; seq?: number };
        if (m.type === 'hello') ws.send(encodeMessage({ type: 'registry', version: 1, epoch: 'e1', workloads: [], nodes: [] }));
        if (m.type === 'flows') ws.send(encodeMessage({ type: 'flows-ack', session: m.session!, seq: m.seq! }));
      });
    });
  }

  static async start(socketPath: string, ca: CertificateAuthority): Promise<StandInCollector> {
    const key = await generateKeyPair();
    const cert = ca.issue(key.publicKeyPem, { dnsNames: [COLLECTOR_SERVERNAME], commonName: COLLECTOR_SERVERNAME, usage: 'server', ttlSeconds: 3600 });
    const server = https.createServer({ key: key.privateKeyPem, cert, ca: [ca.certPem], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    const wss = new WebSocketServer({ server, path: AGENT_PATH, maxPayload: MAX_FRAME_BYTES });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    return new StandInCollector(server, wss);
  }

  /** The flows frames, parsed at the collector's boundary. */
  flows(): ReturnType<typeof parseMessage<'flows'>>[] {
    return this.frames.filter((f) => f.startsWith('{"type":"flows"')).map((f) => parseMessage(f, ['flows']));
  }

  /** Stop reading the session: what the client sends piles up on its side. */
  hold(): void {
    this.session!.socket.pause();
  }

  release(): void {
    this.session!.socket.resume();
  }

  /** Drop the session, as a collector restart would. */
  drop(): void {
    this.session?.ws.terminate();
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The WebSocket frames in `bytes`: whether each was masked, its key and its payload as sent. */
function framesOf(bytes: Buffer): Array<{ masked: boolean; key: number; payload: Buffer }> {
  const out = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const masked = (bytes[at + 1]! & 0x80) !== 0;
    let len = bytes[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(at + 2));
      head = 10;
    }
    const key = masked ? bytes.readUInt32BE(at + head) : 0;
    if (masked) head += 4;
    out.push({ masked, key, payload: bytes.subarray(at + head, at + head + len) });
    at += head + len;
  }
  return out;
}

/** Records in the flows frames received so far. */
function countSent(collector: StandInCollector): number {
  return collector.flows().reduce((n, f) => n + f.flows.length, 0);
}

describe('CollectorClient', function () {
  this.timeout(20_000);
  let dir: string;
  let ca: CertificateAuthority;
  let collector: StandInCollector;
  let client: CollectorClient;

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-flows-frame-'));
    ca = CertificateAuthority.loadOrCreate(dir, 'cluster.local');
    const key = await generateKeyPair();
    const uri = nodeSpiffeId(ca.trustDomain, NODE);
    saveNodeCredentials(dir, NODE, ca.certPem, key, ca.issue(key.publicKeyPem, { uri, commonName: NODE, usage: 'node', ttlSeconds: 3600 }));
    collector = await StandInCollector.start(path.join(dir, 'c.sock'), ca);
  });
  after(async () => {
    await collector?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async function () {
    collector.frames.length = 0;
    client = new CollectorClient({ url: `unix:${path.join(dir, 'c.sock')}`, caPem: ca.certPem, node: NODE, nodeAddress: '172.31.0.1', dataDir: dir, log: silentLogger(), backoff: { initialMs: 60_000, maxMs: 60_000 } });
    // A connected session: the first registry snapshot has arrived.
    await client.start();
  });
  afterEach(() => client.close());

  describe('sendFlows', function () {
    it('sends frames the collector parses, records intact, for what the reporter cuts', async function () {
      const reporter = new FlowReporter({ log: silentLogger(), flushIntervalMs: 10 });
      const flows = [httpFlow(1, { durationMs: 0.731 }), tcpFlow(2), tcpFlow(3, { direction: 'egress', protocol: 'tls', mtls: false, destination: { ip: '93.184.216.34', port: 443, host: 'example.com' } })];
      for (const f of flows) reporter.record(f);
      reporter.start(client);
      try {
        await until(() => collector.flows().length === 1);
      } finally {
        reporter.close();
      }
      const m = collector.flows()[0]!;
      assert.deepEqual({ session: m.session, seq: m.seq, lost: m.lost }, { session: reporter.session, seq: 1, lost: 0 });
      assert.deepEqual(
        m.flows.map((f) => [f.direction, f.protocol, f.bytesSent, f.durationMs]),
        [
          ['inbound', 'http', 1, 1],
          ['outbound', 'tcp', 2, 120],
          ['egress', 'tls', 3, 120],
        ],
      );
    });

    it('cuts records that would not fit one frame into several batches, each within the limit', async function () {
      const reporter = new FlowReporter({ log: silentLogger(), flushIntervalMs: 10 });
      const path = `/${'p'.repeat(3000)}`;
      for (let i = 0; i < 500; i++) reporter.record(httpFlow(i, { http: { method: 'GET', path, status: 200 } }));
      reporter.start(client);
      try {
        await until(() => countSent(collector) === 500);
      } finally {
        reporter.close();
      }
      assert.ok(collector.flows().length >= 2, `${collector.flows().length} frames`);
      const got = collector.flows().flatMap((f) => f.flows.map((r) => r.bytesSent));
      assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i));
    });

    it('answers false when not connected or when the socket holds too much', async function () {
      // Batches of ~820 KB (under the frame limit) until the unread bytes pass the limit.
      const big = Array.from({ length: 100 }, () => JSON.stringify(httpFlow(1, { durationMs: 3, http: { method: 'GET', path: `/${'p'.repeat(8000)}`, status: 200 } })));
      const batch = (seq: number): FlowBatch => ({ session: 's-1', seq, lost: 0, flows: big });
      collector.hold();
      let seq = 0;
      while (seq < 40 && client.sendFlows(batch(seq + 1))) seq += 1;
      assert.ok(client.bufferedAmount >= FLOWS_MAX_BUFFERED_BYTES, `${client.bufferedAmount} bytes buffered after ${seq} batches`);
      assert.equal(client.sendFlows({ session: 's-1', seq: seq + 1, lost: 0, flows: [] }), false);
      collector.release();
      // Only what it answered true for went out.
      await until(() => collector.flows().length === seq, 10_000, `${seq} frames`);
      assert.deepEqual(collector.flows().map((f) => f.seq), Array.from({ length: seq }, (_, i) => i + 1));

      const disconnected = new Promise((resolve) => client.once('disconnected', resolve));
      collector.drop();
      await disconnected;
      assert.equal(client.connected, false);
      assert.equal(client.bufferedAmount, 0);
      assert.equal(client.sendFlows({ session: 's-1', seq: seq + 1, lost: 0, flows: [] }), false);
      await client.close();
      assert.equal(client.sendFlows({ session: 's-1', seq: seq + 1, lost: 0, flows: [] }), false);
      assert.equal(collector.flows().length, seq);
    });

    it('masks its frames with an all-zero key: inside TLS, between our two ends, no XOR over every batch', async function () {
      collector.raw.length = 0;
      assert.equal(client.sendFlows({ session: 's-1', seq: 1, lost: 0, flows: [JSON.stringify(tcpFlow(1))] }), true);
      await until(() => collector.flows().length === 1);
      const frames = framesOf(Buffer.concat(collector.raw));
      const flows = frames.filter((f) => f.payload.toString('latin1').startsWith('{"type":"flows"'));
      assert.equal(flows.length, 1, 'the flows frame is readable as sent: its payload was not XORed');
      for (const f of frames) assert.deepEqual({ masked: f.masked, key: f.key }, { masked: true, key: 0 }, 'a client frame still carries the MASK bit (RFC 6455), with a zero key');
    });

    it('refuses a batch the collector would refuse whole', async function () {
      const one = JSON.stringify(tcpFlow(1));
      const cases = [
        { session: 'bad session', seq: 1, lost: 0, flows: [one] },
        { session: 's-1', seq: -1, lost: 0, flows: [one] },
        { session: 's-1', seq: 1, lost: 0.5, flows: [one] },
        { session: 's-1', seq: 1, lost: 0, flows: Array.from({ length: MAX_FLOWS_PER_BATCH + 1 }, () => one) },
        { session: 's-1', seq: 1, lost: 0, flows: Array.from({ length: 200 }, () => JSON.stringify(httpFlow(1, { http: { method: 'GET', path: `/${'p'.repeat(8000)}`, status: 200 } }))) },
      ];
      for (const b of cases) assert.throws(() => client.sendFlows(b), (e: unknown) => isPalisadeError(e) && e.code === 'PALISADE_ERR_INVALID_ARGUMENT');
      // Nothing went out: the next good batch is the first flows frame the collector gets.
      assert.equal(client.sendFlows({ session: 's-1', seq: 7, lost: 0, flows: [one] }), true);
      await until(() => collector.flows().length > 0);
      assert.deepEqual(collector.flows().map((f) => f.seq), [7]);
    });
  });
});
