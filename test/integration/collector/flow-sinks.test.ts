/**
 * The OTLP flow sink end to end: a real collector stores what a node session sends and hands every
 * stored flow to an OTLP/HTTP receiver in the test (a double of an OpenTelemetry Collector that
 * decodes with the official OTLP proto definitions): every flow once, the schema mapping as
 * README.md documents it, and a receiver down for 30 s (buffered, then delivered, or counted lost),
 * with one request out or several.
 */
import { strict as assert } from 'node:assert';
import type { RunningCollector } from '../../../collector/collector';
import { parseSinkSpec } from '../../../collector/sinks/sink-spec';
import type { StatusResponse } from '../../../common/control-api';
import type { StatsResponse } from '../../../common/flows-api';
import type { FlowRecord } from '../../../common/flow';
import { OtlpReceiver, type ReceivedLog } from '../../harness/otlp-receiver';
import { scaled } from '../../harness/time';
import { apiGet, FlowSession, knownFlows } from './flows-fixtures';
import { CaTemplate, collector, joinedNodeDir, LogCapture, Stack, TempDirs, waitFor } from './helpers';

/** How long the receiver is down (the 30 s, real time: the sink's own retry clock runs meanwhile). */
const OUTAGE_MS = 30_000;
/** The outage after requests were cut off in flight: retries of several batches at once, not the outage's length, are what it tests. */
const CUT_OFF_OUTAGE_MS = 5_000;

function tagged(tag: number, node: string): FlowRecord {
  return {
    time: new Date(Date.now() - 1000).toISOString(),
    node,
    direction: 'inbound',
    source: { ip: '10.1.0.1', workload: 'web', namespace: 'shop', identity: 'spiffe://cluster.local/ns/shop/sa/web' },
    destination: { ip: '10.1.0.2', port: 8080, workload: 'api', namespace: 'shop' },
    protocol: 'tcp',
    verdict: 'allowed',
    reason: 'no-policy',
    mtls: true,
    bytesSent: tag,
    bytesReceived: 1,
    durationMs: 1,
  };
}

const tagsOf = (logs: readonly ReceivedLog[]): number[] => logs.map((l) => Number(l.attributes['palisade.bytes_sent'])).sort((a, b) => a - b);

async function sendRun(s: FlowSession, node: string, session: string, from: number, batches: number, perBatch: number): Promise<void> {
  for (let b = 0; b < batches; b++) {
    const flows = Array.from({ length: perBatch }, (_, i) => tagged(from + b * perBatch + i, node));
    const r = await s.send({ session, seq: b + 1, lost: 0, flows });
    assert.equal(r.type, 'flows-ack', JSON.stringify(r));
  }
}

describe('collector flow sinks: OTLP logs over HTTP/protobuf', function () {
  this.timeout(scaled(120_000));
  const dirs = new TempDirs();
  const stack = new Stack();
  let template: CaTemplate;
  before(() => {
    template = new CaTemplate(dirs);
  });
  afterEach(() => stack.unwind());
  after(() => dirs.cleanup());

  async function setUp(otlp: Parameters<typeof collector>[1]['flowSinkOptions'] = {}): Promise<{ col: RunningCollector; rx: OtlpReceiver; s: FlowSession; logs: LogCapture }> {
    const rx = await OtlpReceiver.start();
    stack.push(() => rx.down());
    const logs = new LogCapture();
    const data = template.dataDir(dirs);
    const col = await collector(stack, { dataDir: data, log: logs.logger, flowSinks: [parseSinkSpec(`otlp=${rx.url}`)], flowSinkOptions: { flushIntervalMs: 100, ...otlp } });
    const dir = await joinedNodeDir(dirs, col, data, 'node-a');
    const s = await FlowSession.open(stack, col, dir, 'node-a');
    return { col, rx, s, logs };
  }

  async function sinkCounts(col: RunningCollector): Promise<NonNullable<StatsResponse['sinks']>[string]> {
    const stats = JSON.parse((await apiGet(col, '/v1/stats', { token: col.adminToken })).text) as StatsResponse;
    const name = Object.keys(stats.sinks ?? {});
    assert.equal(name.length, 1, JSON.stringify(stats));
    return stats.sinks![name[0]!]!;
  }

  /** 200 tagged flows a second from `fromTag` on, each acknowledged, for `ms`; `check` after each batch (the last tag sent). Returns the last tag sent. */
  async function sendWhileDown(s: FlowSession, fromTag: number, ms: number, check?: (upTo: number) => Promise<void>): Promise<number> {
    const downAt = Date.now();
    let seq = 0;
    let tag = fromTag;
    while (Date.now() - downAt < ms) {
      const flows = Array.from({ length: 200 }, () => tagged(tag++, 'node-a'));
      assert.equal((await s.send({ session: 'during', seq: ++seq, lost: 0, flows })).type, 'flows-ack');
      await check?.(tag - 1);
      await new Promise((r) => setTimeout(r, 1000));
    }
    return tag - 1;
  }

  /** Every flow 1…sent reached the receiver exactly once, and the sink's counts say so. */
  async function deliveredOnce(col: RunningCollector, rx: OtlpReceiver, sent: number): Promise<void> {
    await waitFor(() => rx.logs.length >= sent, scaled(20_000), 'every flow after the receiver came back');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(tagsOf(rx.logs), Array.from({ length: sent }, (_, i) => i + 1));
    assert.deepEqual(await sinkCounts(col), { accepted: sent, delivered: sent, lost: 0, buffered: 0 });
  }

  it('delivers every flow of a run once, a batch the agent sends again included', async () => {
    const { col, rx, s } = await setUp();
    await sendRun(s, 'node-a', 'run-1', 1, 20, 250);
    // the agent resends its last batch (as after a lost acknowledgement): stored once, so sent on once
    assert.equal((await s.send({ session: 'run-1', seq: 20, lost: 0, flows: Array.from({ length: 250 }, (_, i) => tagged(4751 + i, 'node-a')) })).type, 'flows-ack');
    await waitFor(() => rx.logs.length >= 5000 && (rx.logs.length as number | false), scaled(20_000), 'all 5000 flows at the receiver');
    await new Promise((r) => setTimeout(r, 300)); // nothing more arrives
    assert.deepEqual(tagsOf(rx.logs), Array.from({ length: 5000 }, (_, i) => i + 1));
    assert.deepEqual(await sinkCounts(col), { accepted: 5000, delivered: 5000, lost: 0, buffered: 0 });
    const status = JSON.parse((await apiGet(col, '/v1/status', { token: col.adminToken })).text) as StatusResponse;
    assert.deepEqual(Object.values(status.flows.sinks ?? {}), [{ accepted: 5000, delivered: 5000, lost: 0, buffered: 0 }]);
    const metrics = (await apiGet(col, '/metrics', { token: col.adminToken })).text;
    assert.match(metrics, new RegExp(`palisade_collector_sink_flows_delivered_total\\{sink="otlp:127.0.0.1:${new URL(rx.url).port}"\\} 5000`));
    assert.ok(rx.requests.every((r) => r.status === 200 && r.path === '/v1/logs'));
  });

  it('maps every field of a flow to the log record as README.md documents it', async () => {
    const { rx, s } = await setUp();
    const known = knownFlows().a;
    assert.equal((await s.send({ session: 'map', seq: 1, lost: 0, flows: known })).type, 'flows-ack');
    await waitFor(() => rx.logs.length >= known.length, scaled(10_000), 'the known flows');
    const byTag = new Map(rx.logs.map((l) => [Number(l.attributes['palisade.bytes_sent']), l]));
    const http = byTag.get(1)!;
    assert.equal(BigInt(http.timeUnixNano), BigInt(Date.parse(known[0]!.time)) * 1_000_000n);
    assert.deepEqual(http.resource, { 'service.name': 'palisade-collector', 'palisade.trust_domain': 'cluster.local' });
    assert.deepEqual(http.scope, { name: 'palisade.flows', version: '1' });
    assert.equal(http.eventName, 'palisade.flow');
    assert.equal(http.body, 'allowed outbound http shop/web -> shop/api');
    assert.deepEqual([http.severityNumber, http.severityText], [9, 'INFO']);
    assert.deepEqual(http.attributes, {
      'palisade.node': 'node-a',
      'palisade.direction': 'outbound',
      'palisade.protocol': 'http',
      'network.transport': 'tcp',
      'source.address': '10.1.0.1',
      'destination.address': '10.1.0.2',
      'palisade.verdict': 'allowed',
      'palisade.reason': 'allowed-by-policy',
      'palisade.mtls': true,
      'palisade.bytes_sent': 1,
      'palisade.bytes_received': 100,
      'palisade.duration_ms': 5,
      'palisade.source.workload': 'web',
      'palisade.source.namespace': 'shop',
      'palisade.source.principal': 'spiffe://cluster.local/ns/shop/sa/web',
      'destination.port': 8080,
      'palisade.destination.workload': 'api',
      'palisade.destination.namespace': 'shop',
      'palisade.destination.principal': 'spiffe://cluster.local/ns/shop/sa/api',
      'http.request.method': 'GET',
      'url.path': '/api/v1/orders/1',
      'http.response.status_code': 200,
      'palisade.policy': 'shop/allow-web',
    });
    const egress = byTag.get(4)!;
    assert.deepEqual([egress.severityNumber, egress.severityText, egress.body], [13, 'WARN', 'denied egress tls shop/web -> example.com']);
    assert.equal(egress.attributes['server.address'], 'example.com');
    assert.equal(egress.attributes['palisade.mtls'], false);
    assert.deepEqual([byTag.get(6)!.severityNumber, byTag.get(6)!.attributes['http.response.status_code']], [17, 500]);
  });

  it(`holds flows while the receiver is down for ${OUTAGE_MS / 1000} s, then delivers them all, once`, async () => {
    const { col, rx, s, logs } = await setUp({ retryMinMs: 200, retryMaxMs: 2000 });
    await sendRun(s, 'node-a', 'before', 1, 2, 500);
    await waitFor(() => rx.logs.length >= 1000, scaled(10_000), 'the first 1000 flows');
    await rx.down();
    const sent = await sendWhileDown(s, 1001, OUTAGE_MS);
    const during = await sinkCounts(col);
    assert.equal(during.accepted, sent);
    assert.equal(during.delivered, 1000);
    assert.equal(during.lost, 0);
    assert.equal(during.buffered, sent - 1000);
    assert.ok(logs.find('flow sink receiver unavailable; retrying'), 'the outage is logged');
    await rx.up();
    await deliveredOnce(col, rx, sent);
  });

  it(`has several requests out when the receiver hangs, then is down for ${CUT_OFF_OUTAGE_MS / 1000} s: every flow once, counts exact throughout`, async () => {
    const { col, rx, s } = await setUp({ batchSize: 100, maxInFlight: 4, retryMinMs: 200, retryMaxMs: 2000 });
    await sendRun(s, 'node-a', 'before', 1, 4, 250); // ten batches delivered: the window is open to four
    await waitFor(() => rx.logs.length >= 1000, scaled(10_000), 'the first 1000 flows');
    rx.hold = true;
    await sendRun(s, 'node-a', 'burst', 1001, 2, 500);
    await waitFor(() => rx.held >= 4, scaled(10_000), 'four requests out at once');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(rx.held, 4, 'no more than maxInFlight requests out');
    await rx.down(); // the four are cut off unanswered
    const sent = await sendWhileDown(s, 2001, CUT_OFF_OUTAGE_MS, async (upTo) => {
      assert.deepEqual(await sinkCounts(col), { accepted: upTo, delivered: 1000, lost: 0, buffered: upTo - 1000 });
    });
    rx.hold = false;
    await rx.up();
    await deliveredOnce(col, rx, sent);
  });

  it('counts exactly what a full buffer drops while the receiver answers 503, and delivers the rest once', async () => {
    const { col, rx, s } = await setUp({ maxBuffered: 1000, batchSize: 250, retryMinMs: 200, retryMaxMs: 500 });
    rx.failWith = 503;
    await sendRun(s, 'node-a', 'burst', 1, 1, 250);
    await waitFor(() => rx.requests.length > 0, scaled(5_000), 'the first batch in flight');
    for (let b = 1; b < 12; b++) {
      const flows = Array.from({ length: 250 }, (_, i) => tagged(b * 250 + i + 1, 'node-a'));
      assert.equal((await s.send({ session: 'burst', seq: b + 1, lost: 0, flows })).type, 'flows-ack');
    } // 3000 flows into a 1000-flow buffer
    const during = await sinkCounts(col);
    assert.deepEqual(during, { accepted: 3000, delivered: 0, lost: 2000, buffered: 1000 });
    const metrics = (await apiGet(col, '/metrics', { token: col.adminToken })).text;
    assert.match(metrics, /palisade_collector_sink_flows_lost_total\{sink="otlp:[^"]+",reason="buffer-full"\} 2000/);
    assert.match(metrics, /palisade_collector_sink_flows_buffered\{sink="otlp:[^"]+"\} 1000/);
    assert.ok(rx.requests.every((r) => r.status === 503));
    rx.failWith = undefined;
    await waitFor(() => rx.logs.length >= 1000, scaled(20_000), 'the 1000 flows the buffer held');
    await new Promise((r) => setTimeout(r, 300));
    const got = tagsOf(rx.logs);
    assert.equal(got.length, 1000);
    assert.equal(new Set(got).size, 1000, 'no flow twice');
    // the batch in flight all along (the first) and the newest 750: the oldest waiting made room
    assert.deepEqual(got, [...Array.from({ length: 250 }, (_, i) => i + 1), ...Array.from({ length: 750 }, (_, i) => 2251 + i)]);
    assert.deepEqual(await sinkCounts(col), { accepted: 3000, delivered: 1000, lost: 2000, buffered: 0 });
  });
});
