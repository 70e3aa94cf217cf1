/**
 * The HTTP/2 front end to end in one process: a real HTTP/2 client (node:http2) on one end of a
 * stream pair, H2Front on the other, real HTTP/2 upstream servers on loopback, and the routed
 * path's own RequestDispatch (peak-EWMA, retries, budget) choosing among them.
 */
import { strict as assert } from 'node:assert';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import { silentLogger } from '../../../../../common/log';
import { H2Front, readPreface, type H2Session } from '../../../../../agent/proxy/h2';
import { HttpFront } from '../../../../../agent/proxy/http';
import type { HttpDecision, HttpRecord, UpstreamTarget } from '../../../../../agent/proxy/http';
import { RequestDispatch, type Endpoint } from '../../../../../agent/traffic/dispatcher';
import { Ejections } from '../../../../../agent/traffic/ejections';
import { PeakEwma } from '../../../../../agent/traffic/peak-ewma';
import { RetryBudget } from '../../../../../agent/traffic/retry-budget';
import type { RouteRule } from '../../../../../common/routes';
import { flowRecord } from '../../../../../common/flow';
import { flowAttributes } from '../../../../../common/flow-attributes';
import { httpLine, traced } from '../../../../../agent/proxy/proxy-flow';
import { MeshTracer } from '../../../../../agent/tracing/tracer';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

interface Upstream {
  port: number;
  streams: number;
  close(): void;
}

async function upstream(handler: Handler): Promise<Upstream> {
  const server = http2.createServer();
  const u: Upstream = { port: 0, streams: 0, close: () => undefined };
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => sockets.add(s));
  server.on('stream', (stream, headers) => {
    u.streams++;
    handler(stream, headers);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as net.AddressInfo).port;
  u.close = () => {
    for (const s of sockets) s.destroy();
    server.close();
  };
  return u;
}

const grpcOk = (name: string, trailers: Record<string, string> = {}): Handler => (stream) => {
  stream.on('data', () => undefined);
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', ...trailers }));
    const msg = Buffer.from(name);
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    msg.copy(frame, 5);
    stream.end(frame);
  });
};

const unavailable: Handler = (stream) => {
  stream.on('data', () => undefined);
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'down' }, { endStream: true });
};

const NO_RETRY: RouteRule = { index: 0, name: undefined, matches: [], backends: [], requestTimeoutMs: 0, backendTimeoutMs: 0, retry: undefined, fault: undefined };
const RETRY: RouteRule = { ...NO_RETRY, retry: { codes: new Set([503]), attempts: 2, backoffMs: 1 } };

function target(port: number): UpstreamTarget {
  return {
    pool: `t:${port}`,
    connect: () =>
      new Promise<Duplex>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      }),
  };
}

interface Call {
  status: number | undefined;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailersOnly: boolean;
  ms: number;
}

function call(client: http2.ClientHttp2Session, path: string, extra: http2.OutgoingHttpHeaders = {}): Promise<Call> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = client.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    req.end(Buffer.from([0, 0, 0, 0, 1, 7]));
    const out: Call = { status: undefined, headers: {}, trailers: {}, body: Buffer.alloc(0), trailersOnly: false, ms: 0 };
    const body: Buffer[] = [];
    req.on('response', (h, flags) => {
      out.status = Number(h[':status']);
      out.headers = h;
      out.trailersOnly = (flags & 1) === 1;
    });
    req.on('trailers', (t) => (out.trailers = t));
    req.on('data', (d: Buffer) => body.push(d));
    req.on('error', () => undefined);
    req.on('close', () => {
      out.body = Buffer.concat(body);
      out.ms = performance.now() - t0;
      resolve(out);
    });
  });
}

describe('the HTTP/2 front (agent/proxy/h2): real HTTP/2 both sides, in one process', function () {
  this.timeout(20_000);
  const ups: Upstream[] = [];
  const fronts: { closeAll(): void }[] = [];
  const clients: http2.ClientHttp2Session[] = [];
  const records: HttpRecord[] = [];

  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    for (const f of fronts.splice(0)) f.closeAll();
    for (const u of ups.splice(0)) u.close();
    records.length = 0;
  });

  /** A client connected to a front whose every request is decided by `decide`. */
  async function connect(decide: (path: string) => HttpDecision, idleTimeoutMs?: number, tracer?: MeshTracer): Promise<http2.ClientHttp2Session> {
    const front = new H2Front({ log: silentLogger(), ...(idleTimeoutMs !== undefined && { idleTimeoutMs }) });
    fronts.push(front);
    const [ours, theirs] = duplexPair();
    const session: H2Session = { authorize: (req) => decide(req.path), onRecord: (r) => records.push(r), ...(tracer !== undefined && { tracer }) };
    void readPreface(theirs, 5000).then((p) => front.handle(theirs, p.head, session));
    const client = http2.connect('http://greeter.test', { createConnection: () => ours });
    clients.push(client);
    return client;
  }

  const dispatch = (rule: RouteRule, ports: number[], balancer = new PeakEwma()): RequestDispatch =>
    new RequestDispatch({ rule, method: 'POST', endpoints: ports.map((port) => ({ ip: '127.0.0.1', port })), balancer, budget: new RetryBudget(), target: (e: Endpoint) => target(e.port) });

  it('relays a gRPC call: response headers, DATA and trailers untouched, one record', async () => {
    const u = await upstream(grpcOk('a', { 'x-served-by': 'a', 'grpc-message': 'fine' }));
    ups.push(u);
    const client = await connect(() => ({ allowed: true, reason: 'routed', dispatch: dispatch(NO_RETRY, [u.port]) }));
    const r = await call(client, '/demo.Greeter/Say');
    assert.equal(r.status, 200);
    assert.equal(r.body.subarray(5).toString(), 'a');
    assert.equal(r.trailers['grpc-status'], '0');
    assert.equal(r.trailers['x-served-by'], 'a');
    assert.equal(r.trailers['grpc-message'], 'fine');
    await waitRecords(1);
    assert.equal(records[0]!.status, 200);
    assert.equal(records[0]!.path, '/demo.Greeter/Say');
    assert.equal(records[0]!.error, undefined);
    assert.equal(records[0]!.grpcStatus, 0, 'the grpc-status of its trailers (its message not kept)');
  });

  // Before: the HTTP/1.1 engine traced routed requests, the HTTP/2 front did not.
  it('traces each stream as the HTTP/1.1 engine traces a request: the client\'s context continued, the upstream given the hop\'s client span, server and client spans with the flow\'s attributes', async () => {
    let seen: http2.IncomingHttpHeaders = {};
    const u = await upstream((stream, headers) => {
      seen = headers;
      grpcOk('a')(stream, headers);
    });
    ups.push(u);
    const exporter = new InMemorySpanExporter();
    const tracer = new MeshTracer({ url: 'http://unused.invalid/v1/traces', sampleRate: 0, node: 'node-1', exporter });
    const client = await connect(() => ({ allowed: true, reason: 'routed', dispatch: dispatch(NO_RETRY, [u.port]) }), undefined, tracer);
    const parent = '00f067aa0ba902b7';
    const r = await call(client, '/demo.Greeter/Say', { traceparent: `00-4bf92f3577b34da6a3ce929d0e0e4736-${parent}-01`, b3: '4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-1' });
    assert.equal(r.trailers['grpc-status'], '0');
    await waitRecords(1);
    const hop = records[0]!.trace!;
    assert.deepEqual([hop.traceId, hop.parentSpanId, hop.sampled], ['4bf92f3577b34da6a3ce929d0e0e4736', parent, true]);
    assert.equal(seen.traceparent, `00-4bf92f3577b34da6a3ce929d0e0e4736-${hop.clientSpanId}-01`, 'the upstream\'s parent is the hop\'s client span, not the client\'s');
    assert.equal(seen.b3, `4bf92f3577b34da6a3ce929d0e0e4736-${hop.clientSpanId}-1`, 'B3 in the client\'s own form, rewritten');
    const flow = flowRecord({ node: 'node-1', direction: 'outbound', source: { ip: '10.0.0.9' }, destination: { ip: '127.0.0.1', port: u.port }, protocol: 'http', http: httpLine(records[0]!), verdict: 'allowed', reason: 'routed', mtls: true, bytesSent: 0, bytesReceived: 0, durationMs: records[0]!.durationMs });
    assert.equal(traced(tracer, flow, records[0]!).traceId, hop.traceId);
    await tracer.flush();
    const spans = exporter.getFinishedSpans();
    await tracer.close();
    assert.deepEqual(spans.map((s) => s.kind).sort(), [SpanKind.SERVER, SpanKind.CLIENT].sort());
    for (const s of spans) assert.deepEqual(s.attributes, flowAttributes(flow));
    assert.equal(spans[0]!.attributes['rpc.grpc.status_code'], 0);
  });

  it('balances each stream of one connection on its own across endpoints', async () => {
    const us = await Promise.all(['a', 'b', 'c'].map((n) => upstream(grpcOk(n))));
    ups.push(...us);
    const balancer = new PeakEwma();
    const client = await connect(() => ({ allowed: true, reason: 'routed', dispatch: dispatch(NO_RETRY, us.map((u) => u.port), balancer) }));
    const results = await Promise.all(Array.from({ length: 90 }, () => call(client, '/demo.Greeter/Say')));
    assert.ok(results.every((r) => r.trailers['grpc-status'] === '0'));
    for (const u of us) assert.ok(u.streams >= 10, `each endpoint served some: ${us.map((x) => x.streams).join(', ')}`);
  });

  it('a trailers-only UNAVAILABLE is retried on the other endpoint when the rule retries 503', async () => {
    const down = await upstream(unavailable);
    const ok = await upstream(grpcOk('ok'));
    ups.push(down, ok);
    const client = await connect(() => ({ allowed: true, reason: 'routed', dispatch: dispatch(RETRY, [down.port, ok.port]) }));
    const results = await Promise.all(Array.from({ length: 20 }, () => call(client, '/demo.Greeter/Say')));
    assert.ok(results.every((r) => r.trailers['grpc-status'] === '0'), JSON.stringify(results.map((r) => r.trailers['grpc-status'] ?? r.headers['grpc-status'])));
    assert.ok(down.streams > 0, 'the down endpoint was tried');
    // without a retry policy the client sees the UNAVAILABLE as sent
    const plain = await connect(() => ({ allowed: true, reason: 'routed', dispatch: dispatch(NO_RETRY, [down.port]) }));
    const r = await call(plain, '/demo.Greeter/Say');
    assert.equal(r.trailersOnly, true);
    assert.equal(r.headers['grpc-status'], '14');
    assert.equal(r.headers['grpc-message'], 'down');
    await waitUntil(() => records.length >= 21, 'the records');
    assert.equal(records.at(-1)!.grpcStatus, 14, 'an upstream\'s trailers-only status is recorded');
  });

  it('grpc-timeout cuts a slow call with trailers-only DEADLINE_EXCEEDED and resets the upstream stream', async () => {
    let cancelled = false;
    const slow = await upstream((stream) => {
      stream.on('data', () => undefined);
      stream.on('close', () => (cancelled = stream.rstCode === http2.constants.NGHTTP2_CANCEL));
    });
    ups.push(slow);
    const client = await connect(() => ({ allowed: true, reason: 'routed', dispatch: dispatch(NO_RETRY, [slow.port]) }));
    const r = await call(client, '/demo.Greeter/Slow', { 'grpc-timeout': '200m' });
    assert.equal(r.trailersOnly, true);
    assert.equal(r.headers['grpc-status'], '4');
    assert.ok(r.ms >= 190 && r.ms < 1500, `${r.ms} ms`);
    await waitRecords(1);
    assert.equal(records[0]!.error, 'grpc-timeout');
    await waitUntil(() => cancelled, 'the upstream stream cancelled');
  });

  it('a stream with no frame either way for the idle timeout is reset, upstream too', async () => {
    let cancelled = false;
    const silent = await upstream((stream) => {
      stream.on('data', () => undefined);
      stream.on('close', () => (cancelled = stream.rstCode === http2.constants.NGHTTP2_CANCEL));
    });
    ups.push(silent);
    const client = await connect(() => ({ allowed: true, reason: 'routed', dispatch: dispatch(NO_RETRY, [silent.port]) }), 300);
    const r = await call(client, '/demo.Greeter/Slow');
    assert.equal(r.status, undefined, 'no response');
    assert.ok(r.ms >= 290 && r.ms < 2000, `${r.ms} ms`);
    await waitRecords(1);
    assert.equal(records[0]!.error, 'stream-idle-timeout');
    await waitUntil(() => cancelled, 'the upstream stream cancelled');
  });

  it('the proxy\'s own answers to gRPC: denied 7 with Istio\'s text, no endpoint 14, no route 12; to plain HTTP/2 a status', async () => {
    const client = await connect((path) =>
      path === '/deny' ? { allowed: false, reason: 'denied-by-policy' } : path === '/none' ? { allowed: true, reason: 'routed', dispatch: dispatch(NO_RETRY, []) } : { allowed: false, status: 404, reason: 'no-route-match' },
    );
    const denied = await call(client, '/deny');
    assert.deepEqual([denied.trailersOnly, denied.headers['grpc-status'], denied.headers['grpc-message']], [true, '7', 'RBAC: access denied']);
    const none = await call(client, '/none');
    assert.equal(none.headers['grpc-status'], '14');
    const unmatched = await call(client, '/other');
    assert.equal(unmatched.headers['grpc-status'], '12');
    const plain = await call(client, '/deny', { 'content-type': 'text/plain' });
    assert.equal(plain.status, 403);
    assert.equal(plain.body.toString(), 'RBAC: access denied');
    await waitRecords(4);
    assert.deepEqual(records.map((r) => r.error ?? (r.decision as { reason?: string } | undefined)?.reason), ['denied-by-policy', 'no-healthy-endpoint', 'no-route-match', 'denied-by-policy']);
    assert.deepEqual(records.map((r) => r.grpcStatus), [7, 14, 12, undefined], 'the proxy\'s own gRPC answers are recorded; plain HTTP/2 has none');
  });

  it('a destination\'s refusal at connect is final: PERMISSION_DENIED, no other endpoint tried, nothing ejected', async () => {
    const ok = await upstream(grpcOk('ok'));
    ups.push(ok);
    const ejections = new Ejections();
    let connects = 0;
    const refusing = (e: Endpoint): UpstreamTarget => ({
      pool: `refusing:${e.port}`,
      connect: () => {
        connects++;
        return Promise.reject(Object.assign(new Error('HBONE 403'), { refusal: { status: 403, verdict: 'denied' as const, reason: 'denied-by-destination' } }));
      },
    });
    const d = new RequestDispatch({ rule: RETRY, method: 'POST', endpoints: [{ ip: '127.0.0.1', port: ok.port }, { ip: '127.0.0.2', port: ok.port }], balancer: new PeakEwma(), budget: new RetryBudget(), ejections, target: refusing });
    const client = await connect(() => ({ allowed: true, reason: 'routed', dispatch: d }));
    const r = await call(client, '/demo.Greeter/Say');
    assert.deepEqual([r.trailersOnly, r.headers['grpc-status'], r.headers['grpc-message']], [true, '7', 'RBAC: access denied']);
    assert.equal(connects, 1, 'no retry on another endpoint');
    assert.equal(ejections.anyEjected(), false, 'the endpoint is not ejected');
    assert.equal(d.attempts, 1);
    assert.deepEqual(d.refusal, { status: 403, verdict: 'denied', reason: 'denied-by-destination' });
    await waitRecords(1);
  });

  it('Upgrade: h2c — the HTTP/1.1 engine answers 101 and the upgrade request is served as stream 1', async () => {
    const u = await upstream((stream, headers) => {
      stream.respond({ ':status': 200, 'x-path': String(headers[':path']), 'x-method': String(headers[':method']) });
      stream.end('hi');
    });
    ups.push(u);
    const h2 = new H2Front({ log: silentLogger() });
    const h1 = new HttpFront({ log: silentLogger() });
    fronts.push(h2, h1);
    const session: H2Session = { authorize: () => ({ allowed: true, reason: 'routed', dispatch: dispatch(NO_RETRY, [u.port]) }), onRecord: (r) => records.push(r) };
    const [ours, theirs] = duplexPair();
    h1.handle(theirs, undefined, {
      authorize: () => ({ allowed: false }),
      connect: () => Promise.reject(new Error('no')),
      onRecord: (r) => records.push(r),
      upgradeH2c: (c, head, req) => h2.handleUpgraded(c, head, req, session),
    });
    const got: Buffer[] = [];
    ours.on('data', (d: Buffer) => got.push(d));
    ours.write('GET /a/./b HTTP/1.1\r\nHost: greeter.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nX-User: ann\r\n\r\n');
    await waitUntil(() => Buffer.concat(got).includes('\r\n\r\n'), 'the 101');
    assert.match(Buffer.concat(got).toString('latin1'), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    got.length = 0;
    // a prior-knowledge client's first bytes: the preface and an empty SETTINGS frame
    ours.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    const frames = await waitFrames(got, (f) => f.some((x) => x.type === 1 && x.stream === 1) && f.some((x) => x.type === 0 && x.stream === 1 && (x.flags & 1) === 1));
    const headers = frames.find((x) => x.type === 1 && x.stream === 1)!;
    assert.equal(headers.payload[0], 0x88, 'stream 1 is answered :status 200 (HPACK static index 8)');
    const data = Buffer.concat(frames.filter((x) => x.type === 0 && x.stream === 1).map((x) => x.payload));
    assert.equal(data.toString(), 'hi');
    assert.equal(u.streams, 1, 'the upgrade request went upstream once, over HTTP/2');
    await waitUntil(() => records.some((r) => r.path === '/a/b' && r.status === 200), 'stream 1\'s record');
  });

  async function waitRecords(n: number): Promise<void> {
    await waitUntil(() => records.length >= n, `${n} records`);
  }
});

async function waitUntil(f: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

async function waitFrames(chunks: Buffer[], done: (f: Frame[]) => boolean): Promise<Frame[]> {
  let frames: Frame[] = [];
  await waitUntil(() => {
    const buf = Buffer.concat(chunks);
    frames = [];
    for (let off = 0; off + 9 <= buf.length; ) {
      const len = buf.readUIntBE(off, 3);
      if (off + 9 + len > buf.length) break;
      frames.push({ type: buf[off + 3]!, flags: buf[off + 4]!, stream: buf.readUInt32BE(off + 5) & 0x7fffffff, payload: buf.subarray(off + 9, off + 9 + len) });
      off += 9 + len;
    }
    return done(frames);
  }, 'HTTP/2 frames');
  return frames;
}
