import { strict as assert } from 'node:assert';
import type { StoredFlow } from '../../../common/flows-api';
import {
  FLOW_COLUMNS,
  FlowTable,
  flowCells,
  formatFlowJsonArray,
  formatFlowJsonLine,
  humanBytes,
  safeJson,
  useColour,
} from '../../../cli/flow-format';

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

function sampleFlow(over: Partial<StoredFlow> = {}): StoredFlow {
  return {
    id: 1,
    time: '2024-05-01T12:00:00.123Z',
    node: 'node-1',
    direction: 'outbound',
    source: { ip: '10.0.1.2', port: 41234, workload: 'client', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/client' },
    destination: { ip: '10.0.2.2', port: 8080, workload: 'web-2', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/web' },
    protocol: 'http',
    http: { method: 'GET', path: '/public', status: 200 },
    verdict: 'allowed',
    reason: 'allowed-by-policy',
    policy: 'default/web-allow',
    mtls: true,
    bytesSent: 120,
    bytesReceived: 2048,
    durationMs: 3,
    ...over,
  };
}

const FLOWS: StoredFlow[] = [
  sampleFlow(),
  sampleFlow({
    id: 2,
    direction: 'egress',
    destination: { ip: '172.31.0.100', port: 443, host: 'blocked.example.test' },
    protocol: 'tls',
    http: undefined,
    verdict: 'denied',
    reason: 'host-not-allowed',
    policy: undefined,
    mtls: false,
    bytesSent: 0,
    bytesReceived: 0,
  }),
  sampleFlow({ id: 3, node: 'node-2', direction: 'inbound', verdict: 'audit', reason: 'no-policy', policy: undefined, audit: { policy: 'default/audit-all', rule: 0 } }),
  sampleFlow({ id: 4, source: { ip: '10.0.1.9' }, destination: { ip: '10.0.2.2', port: 9000 }, protocol: 'tcp', http: undefined, verdict: 'error', reason: 'upstream-failed', policy: undefined }),
];

/** A page as `palisade observe` prints it: a FlowTable sized by the page, its header, a row per flow. */
function pageText(flows: readonly StoredFlow[], colour: boolean): string {
  const table = new FlowTable(flows, colour);
  return table.header() + flows.map((f) => table.row(f)).join('');
}

/** Start offset of each column in the header line. */
function columnStarts(header: string): number[] {
  return FLOW_COLUMNS.map((h) => header.indexOf(h));
}

/** Every row has each cell starting exactly under its header, preceded by two spaces. */
function assertAligned(text: string): void {
  const lines = text.replace(ANSI, '').trimEnd().split('\n');
  const starts = columnStarts(lines[0]!);
  assert.deepEqual([...starts].sort((a, b) => a - b), starts, 'header columns in order');
  for (const line of lines.slice(1)) {
    for (const [i, at] of starts.entries()) {
      if (i === 0) continue;
      assert.equal(line.slice(at - 2, at), '  ', `two spaces before column ${FLOW_COLUMNS[i]} in ${JSON.stringify(line)}`);
      assert.notEqual(line[at], ' ', `column ${FLOW_COLUMNS[i]} starts at ${at} in ${JSON.stringify(line)}`);
    }
  }
}

describe('flow-format', () => {
  describe('FlowTable', () => {
    it('prints a header and one aligned row per flow, in the order given', () => {
      const text = pageText(FLOWS, false);
      const lines = text.trimEnd().split('\n');
      assert.equal(lines.length, 1 + FLOWS.length);
      assert.match(lines[0]!, /^TIME +NODE +DIRECTION +SOURCE +DESTINATION +PROTO +REQUEST +VERDICT +REASON\/POLICY +MTLS +BYTES$/);
      assertAligned(text);
      assert.deepEqual(
        lines.slice(1).map((l) => l.split(/ {2,}/)[7]),
        ['allowed', 'denied', 'audit', 'error'],
      );
    });

    it('shows who, where, what and why in words an operator reads', () => {
      const rows = pageText(FLOWS, false).trimEnd().split('\n').slice(1).map((l) => l.split(/ {2,}/));
      assert.deepEqual(rows[0], [
        '2024-05-01T12:00:00.123Z',
        'node-1',
        'outbound',
        'default/client',
        'default/web-2:8080',
        'http',
        'GET /public 200',
        'allowed',
        'allowed-by-policy (default/web-allow)',
        'yes',
        '120B/2.0K',
      ]);
      assert.equal(rows[1]![4], 'blocked.example.test:443', 'egress: the host asked for');
      assert.equal(rows[1]![6], '-', 'no HTTP');
      assert.equal(rows[1]![9], 'no');
      assert.equal(rows[2]![8], 'no-policy audit:default/audit-all');
      assert.deepEqual(rows[3]!.slice(3, 5), ['10.0.1.9', '10.0.2.2:9000'], 'no workload: the addresses');
    });

    it('shows a DNS query as the name asked, its type, rcode and answers', () => {
      const dns = sampleFlow({
        id: 5,
        destination: { ip: '10.96.0.10', port: 53, host: 'api.example.com' },
        protocol: 'dns',
        http: undefined,
        dns: { type: 'A', rcode: 'NOERROR', answers: ['api.edge.example.net.', '192.0.2.7'] },
        reason: 'forwarded',
        policy: undefined,
        mtls: false,
      });
      const denied = sampleFlow({
        id: 6,
        destination: { ip: '10.96.0.10', port: 53, host: 'evil.example' },
        protocol: 'dns',
        http: undefined,
        dns: { type: 'AAAA', rcode: 'NXDOMAIN', answers: [] },
        verdict: 'denied',
        reason: 'host-not-allowed',
        policy: 'default/client-egress',
        mtls: false,
      });
      const rows = pageText([dns, denied], false).trimEnd().split('\n').slice(1).map((l) => l.split(/ {2,}/));
      assert.deepEqual(rows[0]!.slice(4, 9), ['api.example.com:53', 'dns', 'A NOERROR api.edge.example.net. 192.0.2.7', 'allowed', 'forwarded']);
      assert.deepEqual(rows[1]!.slice(4, 9), ['evil.example:53', 'dns', 'AAAA NXDOMAIN', 'denied', 'host-not-allowed (default/client-egress)']);
      });

    it('says how many refused connections a refusal summary stands for', () => {
      const summary = sampleFlow({ verdict: 'denied', reason: 'denied-by-policy', policy: 'default/deny', http: undefined, protocol: 'tcp', count: 11_999 });
      const row = pageText([summary], false).trimEnd().split('\n')[1]!.split(/ {2,}/);
      assert.equal(row[8], 'denied-by-policy (default/deny) ×11999');
    });

    it('has no colour codes when colour is off (stdout not a terminal)', () => {
      assert.ok(!pageText(FLOWS, false).includes('\x1b'));
    });

    it('colours only the verdict word when colour is on, and stays aligned', () => {
      const text = pageText(FLOWS, true);
      const codes = [...text.matchAll(/\x1b\[([0-9;]*)m(\w+)\x1b\[0m/g)].map((m) => [m[1], m[2]]);
      assert.deepEqual(codes, [
        ['32', 'allowed'],
        ['31', 'denied'],
        ['33', 'audit'],
        ['1;31', 'error'],
      ]);
      assertAligned(text);
      assert.equal(text.replace(ANSI, ''), pageText(FLOWS, false));
    });

    it('escapes control characters a client put in a path or host, so they cannot drive the terminal', () => {
      const evil = sampleFlow({
        http: { method: 'GET', path: '/x\x1b[2J\x07\u009b31m', status: 404 },
        destination: { ip: '10.0.2.2', port: 80, host: 'a\rb' },
      });
      const text = pageText([evil], false);
      assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(text), JSON.stringify(text));
      assert.ok(text.includes('/x\\x1b[2J\\x07\\x9b31m'));
    });

    it('cuts a very long path with … and keeps the columns aligned', () => {
      const long = sampleFlow({ http: { method: 'GET', path: `/${'a'.repeat(500)}`, status: 200 } });
      const text = pageText([long, sampleFlow({ id: 2 })], false);
      const cell = text.split('\n')[1]!.split(/ {2,}/)[6]!;
      assert.ok(cell.length <= 64 && cell.endsWith('…'), cell);
      assertAligned(text);
    });

    it('prints only the header for no flows', () => {
      assert.equal(pageText([], false).split('\n').filter(Boolean).length, 1);
    });

    it('prints rows that arrive later (-f) in the columns of the page above them', () => {
      const table = new FlowTable(FLOWS.slice(0, 2), false, { following: true });
      const text = table.header() + table.row(FLOWS[0]!) + table.row(FLOWS[2]!) + table.row(FLOWS[3]!);
      assertAligned(text);
    });

    it('draws sensible columns before any flow was seen (-f --last 0)', () => {
      const table = new FlowTable([], false, { following: true });
      assertAligned(table.header() + table.row(FLOWS[0]!) + table.row(FLOWS[1]!));
    });
  });

  describe('useColour', () => {
    const cases: [string, boolean, Record<string, string | undefined>, boolean][] = [
      ['not a terminal', false, {}, false],
      ['a terminal', true, {}, true],
      ['a terminal with NO_COLOR=1', true, { NO_COLOR: '1' }, false],
      ['a terminal with an empty NO_COLOR (no-color.org: ignored)', true, { NO_COLOR: '' }, true],
      ['a dumb terminal', true, { TERM: 'dumb' }, false],
    ];
    for (const [what, isTTY, env, expected] of cases) {
      it(`${expected ? 'colours' : 'does not colour'} on ${what}`, () => {
        assert.equal(useColour({ isTTY, env }), expected);
      });
    }
  });

  describe('humanBytes', () => {
    const cases: [number, string][] = [
      [0, '0B'],
      [1023, '1023B'],
      [1024, '1.0K'],
      [1536, '1.5K'],
      [10 * 1024, '10K'],
      [5 * 1024 * 1024, '5.0M'],
      [3 * 1024 ** 3, '3.0G'],
    ];
    for (const [n, text] of cases) it(`${n} → ${text}`, () => assert.equal(humanBytes(n), text));
  });

  describe('JSON output', () => {
    it('-o json is one array that parses back to the flows, one per line', () => {
      const text = formatFlowJsonArray(FLOWS);
      assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(FLOWS)));
      assert.equal(text.split('\n').length, FLOWS.length + 3);
      assert.equal(formatFlowJsonArray([]), '[]\n');
    });

    it('-o jsonl is one flow per line', () => {
      const line = formatFlowJsonLine(FLOWS[0]!);
      assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'));
      assert.deepEqual(JSON.parse(line), JSON.parse(JSON.stringify(FLOWS[0])));
    });

    it('escapes DEL, C1 controls and U+2028 that JSON.stringify leaves raw, meaning the same', () => {
      const v = { path: '/a\u007f\u009b\u2028\x1b' };
      const text = safeJson(v);
      assert.ok(!/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text), text);
      assert.deepEqual(JSON.parse(text), v);
    });
  });

  describe('flowCells', () => {
    it('brackets an IPv6 destination before its port', () => {
      assert.equal(flowCells(sampleFlow({ destination: { ip: 'fd00::2', port: 80 } }))[4], '[fd00::2]:80');
    });

    it('shows a gRPC call\'s grpc-status after its HTTP status', () => {
      assert.equal(flowCells(sampleFlow({ http: { method: 'POST', path: '/shop.Cart/Add', status: 200, grpcStatus: 14 } }))[6], 'POST /shop.Cart/Add 200 grpc-status 14');
    });

    it('says how many packets a kernel summary stands for', () => {
      const cells = flowCells(sampleFlow({ protocol: 'udp', verdict: 'denied', reason: 'udp-not-allowed', policy: undefined, count: 12 }));
      assert.deepEqual([cells[5], cells[8]], ['udp', 'udp-not-allowed ×12']);
    });
  });
});
