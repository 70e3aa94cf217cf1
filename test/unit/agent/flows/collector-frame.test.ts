/**
 * The frames CollectorClient.sendFlows puts on the wire for the reporter's batches pass the
 * collector's own boundary (parseMessage). The socket is a stand-in; the real WebSocket path is
 * covered end to end.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlowReporter } from '../../../../agent/flows/reporter';
import { CollectorClient, FLOWS_MAX_BUFFERED_BYTES } from '../../../../agent/mesh/collector-client';
import { isPalisadeError } from '../../../../common/errors';
import { silentLogger } from '../../../../common/log';
import { MAX_FLOWS_PER_BATCH, parseMessage } from '../../../../common/mesh-protocol';
import { CertificateAuthority } from '../../../../collector/mesh-ca';
import { httpFlow, tcpFlow, until } from './fixtures';

/** Records in the frames sent so far. */
function countSent(ws: FakeSocket): number {
  return ws.sent.reduce((n, f) => n + (JSON.parse(f) as { flows: unknown[] }).flows.length, 0);
}

class FakeSocket {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  sent: string[] = [];
  send(frame: string): void {
    this.sent.push(frame);
  }
}

describe('CollectorClient.sendFlows', function () {
  this.timeout(20_000);
  let dir: string;
  let client: CollectorClient;
  let ws: FakeSocket;

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-flows-frame-'));
    const ca = CertificateAuthority.loadOrCreate(dir, 'cluster.local');
    client = new CollectorClient({ url: `unix:${path.join(dir, 'c.sock')}`, caPem: ca.certPem, node: 'node-1', nodeAddress: '172.31.0.1', dataDir: dir, log: silentLogger() });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  beforeEach(function () {
    ws = new FakeSocket();
    // A connected session, as after the first registry snapshot.
    Object.assign(client as unknown as Record<string, unknown>, { ws, ready: true });
  });

  it('sends frames the collector parses, records intact, for what the reporter cuts', async function () {
    const reporter = new FlowReporter({ log: silentLogger(), flushIntervalMs: 10 });
    const flows = [httpFlow(1, { durationMs: 0.731 }), tcpFlow(2), tcpFlow(3, { direction: 'egress', protocol: 'tls', mtls: false, destination: { ip: '93.184.216.34', port: 443, host: 'example.com' } })];
    for (const f of flows) reporter.record(f);
    reporter.start(client);
    try {
      await until(() => ws.sent.length === 1);
    } finally {
      reporter.close();
    }
    const m = parseMessage(ws.sent[0]!, ['flows']);
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
      await until(() => countSent(ws) === 500);
    } finally {
      reporter.close();
    }
    assert.ok(ws.sent.length >= 2, `${ws.sent.length} frames`);
    const got = ws.sent.flatMap((f) => parseMessage(f, ['flows']).flows.map((r) => r.bytesSent));
    assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i));
  });

  it('answers false when not connected or when the socket holds too much', function () {
    ws.bufferedAmount = FLOWS_MAX_BUFFERED_BYTES;
    assert.equal(client.bufferedAmount, FLOWS_MAX_BUFFERED_BYTES);
    assert.equal(client.sendFlows({ session: 's-1', seq: 1, lost: 0, flows: [] }), false);
    Object.assign(client as unknown as Record<string, unknown>, { ready: false });
    ws.bufferedAmount = 0;
    assert.equal(client.sendFlows({ session: 's-1', seq: 1, lost: 0, flows: [] }), false);
    assert.equal(ws.sent.length, 0);
  });

  it('refuses a batch the collector would refuse whole', function () {
    const one = JSON.stringify(tcpFlow(1));
    const cases = [
      { session: 'bad session', seq: 1, lost: 0, flows: [one] },
      { session: 's-1', seq: -1, lost: 0, flows: [one] },
      { session: 's-1', seq: 1, lost: 0.5, flows: [one] },
      { session: 's-1', seq: 1, lost: 0, flows: Array.from({ length: MAX_FLOWS_PER_BATCH + 1 }, () => one) },
      { session: 's-1', seq: 1, lost: 0, flows: Array.from({ length: 200 }, () => JSON.stringify(httpFlow(1, { http: { method: 'GET', path: `/${'p'.repeat(8000)}`, status: 200 } }))) },
    ];
    for (const b of cases) assert.throws(() => client.sendFlows(b), (e: unknown) => isPalisadeError(e) && e.code === 'PALISADE_ERR_INVALID_ARGUMENT');
    assert.equal(ws.sent.length, 0);
  });
});
