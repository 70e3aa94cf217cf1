import { strict as assert } from 'node:assert';
import { PalisadeError } from '../../../common/errors';
import * as zlib from 'node:zlib';
import {
  encodeMessage,
  inflateRegistryFrame,
  MAX_FRAME_BYTES,
  NODE_REPLIES,
  NODE_REQUESTS,
  parseMessage,
  type MeshMessage,
  type MessageType,
} from '../../../common/mesh-protocol';

const CSR = '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const WORKLOAD = { name: 'web-1', namespace: 'default', serviceAccount: 'web', ip: '10.0.1.11', labels: { app: 'web', 'example.com/tier': 'front' } };
const ALL: MessageType[] = ['join', 'joined', 'hello', 'register', 'csr', 'cert', 'error', 'registry', 'registry-delta', 'registry-sync', 'policies', 'flows', 'flows-ack', 'policy-status'];

const FLOW = {
  time: '2026-11-22T10:00:00.000Z',
  node: 'node-a',
  direction: 'inbound',
  source: { ip: '10.0.1.10', workload: 'client', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/client' },
  destination: { ip: '10.0.2.10', port: 8080, workload: 'web-2', namespace: 'default', identity: 'spiffe://cluster.local/ns/default/sa/web', host: '10.0.2.10:8080' },
  protocol: 'http',
  http: { method: 'GET', path: '/admin', status: 403 },
  verdict: 'denied',
  reason: 'denied-by-policy',
  policy: 'default/web-deny-admin',
  rule: 0,
  mtls: true,
  bytesSent: 0,
  bytesReceived: 19,
  durationMs: 1,
} as const;

const VALID: MeshMessage[] = [
  { type: 'join', node: 'node-a', csr: CSR },
  { type: 'joined', cert: CERT, ca: CERT },
  { type: 'hello', node: 'node-a', nodeAddress: '192.168.1.10', agentVersion: '0.1.0' },
  { type: 'register', workloads: [WORKLOAD, { ...WORKLOAD, name: 'web-2', ip: '10.0.1.12', identity: 'spiffe://cluster.local/ns/default/sa/web' }] },
  { type: 'register', workloads: [] },
  { type: 'csr', id: '1', identity: 'spiffe://cluster.local/ns/default/sa/web', csr: CSR },
  { type: 'cert', id: '1', cert: CERT, ca: CERT },
  { type: 'error', code: 'PALISADE_ERR_CSR_REFUSED', message: 'csr refused: no' },
  { type: 'error', id: 'x-1', code: 'PALISADE_ERR_PROTOCOL', message: '' },
  {
    type: 'registry',
    version: 3,
    epoch: '5f0c1a2b3c4d5e6f',
    workloads: [{ ...WORKLOAD, node: 'node-a', nodeAddress: '192.168.1.10', identity: 'spiffe://cluster.local/ns/default/sa/web' }],
    nodes: [{ node: 'node-a', nodeAddress: '192.168.1.10', online: false, lastSeen: '2026-01-01T00:00:00.000Z' }],
  },
  { type: 'policies', version: 2, files: [{ source: 'web.yaml', text: 'kind: AuthorizationPolicy\n' }] },
  { type: 'policies', version: 0, files: [] },
  { type: 'flows', session: 'a1b2', seq: 1, lost: 0, flows: [FLOW] },
  { type: 'flows', session: 'a1b2', seq: 2, lost: 7, flows: [] },
  { type: 'flows-ack', session: 'a1b2', seq: 2 },
  { type: 'hello', node: 'node-a', nodeAddress: '192.168.1.10', agentVersion: '0.1.0', since: { epoch: '5f0c1a2b3c4d5e6f', version: 41 } },
  { type: 'hello', node: 'node-a', nodeAddress: '192.168.1.10', agentVersion: '0.1.0', accepts: ['registry-deflate', 'some-later-thing'] },
  {
    type: 'registry-delta',
    epoch: '5f0c1a2b3c4d5e6f',
    fromVersion: 3,
    toVersion: 4,
    changes: [
      { op: 'set-workload', workload: { ...WORKLOAD, node: 'node-a', nodeAddress: '192.168.1.10', identity: 'spiffe://cluster.local/ns/default/sa/web' } },
      { op: 'remove-workload', ip: '10.0.1.12' },
      { op: 'set-node', node: { node: 'node-a', nodeAddress: '192.168.1.10', online: true, lastSeen: '2026-01-01T00:00:00.000Z' } },
      { op: 'remove-node', node: 'node-b' },
      { op: 'set-service', service: { namespace: 'default', name: 'web', vips: ['10.96.0.10'], ports: [{ name: '', port: 80 }], endpoints: [{ ip: '10.0.1.11', ready: true, targetPorts: [8080] }] } },
      { op: 'remove-service', namespace: 'default', name: 'api' },
    ],
  },
  { type: 'registry-sync', since: { epoch: '5f0c1a2b3c4d5e6f', version: 3 } },
  { type: 'registry-sync' },
  { type: 'policy-status', version: 3, ok: true, problems: [] },
  { type: 'policy-status', version: 3, ok: true, problems: [], wireRules: '40 UDP/ICMP rule entries do not fit the kernel\'s table (at most 8); failing closed' },
  { type: 'register', workloads: [WORKLOAD], services: [{ namespace: 'default', name: 'web', vips: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }], selector: { app: 'web' } }] },
  {
    type: 'registry',
    version: 4,
    epoch: '5f0c1a2b3c4d5e6f',
    workloads: [],
    nodes: [],
    services: [{ namespace: 'default', name: 'web', vips: ['10.96.0.10'], ports: [{ name: '', port: 80 }], endpoints: [{ ip: '10.0.1.11', ready: false, targetPorts: [8080] }] }],
  },
];
const SERVICE = { namespace: 'default', name: 'web', vips: ['10.96.0.10'], ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.1.11', ready: true, targetPorts: [8080] }] };

const DELTA = (changes: unknown[], extra: object = {}): string => JSON.stringify({ type: 'registry-delta', epoch: 'e1', fromVersion: 1, toVersion: 2, changes, ...extra });

/** [what, frame, allowed types, expected reason] */
const HOSTILE: [string, string | Buffer, MessageType[], RegExp][] = [
  ['a hello accepting a name that is not a token', JSON.stringify({ type: 'hello', node: 'node-a', nodeAddress: '192.168.1.10', agentVersion: '1', accepts: ['Registry Deflate'] }), ALL, /accepts\[0\]: must be a name/],
  ['a hello accepting 17 things', JSON.stringify({ type: 'hello', node: 'node-a', nodeAddress: '192.168.1.10', agentVersion: '1', accepts: Array.from({ length: 17 }, (_, i) => `x${i}`) }), ALL, /accepts: at most 16/],
  ['not JSON', '{"type":', ALL, /not JSON/],
  ['a JSON array', '[1,2]', ALL, /not a JSON object/],
  ['a JSON string', '"hello"', ALL, /not a JSON object/],
  ['null', 'null', ALL, /not a JSON object/],
  ['no type', '{"node":"a"}', ALL, /no "type"/],
  ['a numeric type', '{"type":1}', ALL, /no "type"/],
  ['an unknown type', '{"type":"shell","cmd":"rm -rf /"}', ALL, /unknown message type "shell"/],
  ['a known type not allowed here', encodeMessage(VALID[0]), [...NODE_REQUESTS], /"join" is not allowed/],
  ['an unknown field', JSON.stringify({ ...VALID[2], admin: true }), ALL, /unknown field "admin"/],
  ['a wire rules problem that is not a line', JSON.stringify({ type: 'policy-status', version: 1, ok: true, problems: [], wireRules: 7 }), [...NODE_REQUESTS], /wireRules: must be a line of text/],
  ['a __proto__ field', '{"type":"hello","node":"a","nodeAddress":"1.2.3.4","agentVersion":"1","__proto__":{"x":1}}', ALL, /unknown field "__proto__"/],
  ['a missing field', '{"type":"hello","node":"a","nodeAddress":"1.2.3.4"}', ALL, /missing field "agentVersion"/],
  ['a bad node name', JSON.stringify({ ...VALID[2], node: '../etc' }), ALL, /hello\.node/],
  ['an IPv6 node address', JSON.stringify({ ...VALID[2], nodeAddress: '::1' }), ALL, /IPv4/],
  ['an IP with leading zeros', JSON.stringify({ type: 'register', workloads: [{ ...WORKLOAD, ip: '010.0.0.1' }] }), ALL, /workloads\[0\]\.ip/],
  ['an uppercase namespace', JSON.stringify({ type: 'register', workloads: [{ ...WORKLOAD, namespace: 'Default' }] }), ALL, /namespace/],
  ['labels as an array', JSON.stringify({ type: 'register', workloads: [{ ...WORKLOAD, labels: ['a'] }] }), ALL, /labels/],
  ['a non-string label', JSON.stringify({ type: 'register', workloads: [{ ...WORKLOAD, labels: { a: 1 } }] }), ALL, /label value/],
  ['workloads not an array', '{"type":"register","workloads":{}}', ALL, /must be an array/],
  ['a CSR that is not PEM', JSON.stringify({ ...VALID[5], csr: 'hello' }), ALL, /PEM CERTIFICATE REQUEST/],
  ['a huge CSR', JSON.stringify({ ...VALID[5], csr: `${CSR}${'A'.repeat(20_000)}` }), ALL, /PEM CERTIFICATE REQUEST/],
  ['a non-SPIFFE identity', JSON.stringify({ ...VALID[5], identity: 'https://x' }), ALL, /spiffe/],
  ['a request id with spaces', JSON.stringify({ ...VALID[5], id: 'a b' }), ALL, /csr\.id/],
  ['an unknown error code', JSON.stringify({ type: 'error', code: 'EVIL', message: 'x' }), ALL, /known error code/],
  ['a negative version', JSON.stringify({ ...VALID[9], version: -1 }), ALL, /version/],
  ['a policy file without a name', JSON.stringify({ type: 'policies', version: 1, files: [{ source: '', text: 'x' }] }), ALL, /files\[0\]\.source/],
  ['a policy file that is not text', JSON.stringify({ type: 'policies', version: 1, files: [{ source: 'a.yaml', text: 1 }] }), ALL, /files\[0\]\.text/],
  ['a policies message without a version', JSON.stringify({ type: 'policies', files: [] }), ALL, /missing field "version"/],
  ['a flow with an unknown field', JSON.stringify({ type: 'flows', session: 's', seq: 1, lost: 0, flows: [{ ...FLOW, admin: true }] }), ALL, /flows\[0\]: unknown field "admin"/],
  ['a flow with an unknown verdict', JSON.stringify({ type: 'flows', session: 's', seq: 1, lost: 0, flows: [{ ...FLOW, verdict: 'maybe' }] }), ALL, /flows\[0\]: verdict/],
  ['a flow with a bad port', JSON.stringify({ type: 'flows', session: 's', seq: 1, lost: 0, flows: [{ ...FLOW, destination: { ip: '1.2.3.4', port: 70000 } }] }), ALL, /destination\.port/],
  ['a flow without http fields', JSON.stringify({ type: 'flows', session: 's', seq: 1, lost: 0, flows: [{ ...FLOW, http: { method: 'GET' } }] }), ALL, /http must be/],
  ['a negative lost count', JSON.stringify({ type: 'flows', session: 's', seq: 1, lost: -1, flows: [] }), ALL, /lost/],
  ['a frame over 1 MiB', JSON.stringify({ type: 'hello', pad: 'x'.repeat(MAX_FRAME_BYTES) }), ALL, /over the 1048576-byte limit/],
  ['invalid UTF-8 bytes', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), ALL, /not JSON/],
  ['a registry snapshot without an epoch', JSON.stringify({ type: 'registry', version: 1, workloads: [], nodes: [] }), ALL, /missing field "epoch"/],
  ['a delta change with an unknown op', DELTA([{ op: 'drop-table', ip: '10.0.0.1' }]), ALL, /changes\[0\]\.op: must be one of/],
  ['a delta change without an op', DELTA([{ ip: '10.0.0.1' }]), ALL, /changes\[0\]\.op/],
  ['a delta change with a field of another op', DELTA([{ op: 'remove-workload', ip: '10.0.0.1', node: 'a' }]), ALL, /changes\[0\]: unknown field "node"/],
  ['a delta workload with a bad IP', DELTA([{ op: 'remove-workload', ip: '10.0.0.256' }]), ALL, /changes\[0\]\.ip/],
  ['a delta going backwards', DELTA([], { fromVersion: 5, toVersion: 5 }), ALL, /toVersion must be after fromVersion/],
  ['a delta of 4,001 changes', DELTA(Array.from({ length: 4001 }, () => ({ op: 'remove-node', node: 'a' }))), ALL, /changes: at most 4000 entries/],
  ['a hello with a bad registry epoch', JSON.stringify({ type: 'hello', node: 'a', nodeAddress: '1.2.3.4', agentVersion: '1', since: { epoch: 'a b', version: 1 } }), ALL, /hello\.since\.epoch/],
  ['a set-service change with a service missing its endpoints', DELTA([{ op: 'set-service', service: { namespace: 'default', name: 'web', vips: [], ports: [] } }]), ALL, /changes\[0\]\.service: missing field "endpoints"/],
  ['a set-service change with a bad virtual IP', DELTA([{ op: 'set-service', service: { ...SERVICE, vips: ['10.96.0.300'] } }]), ALL, /changes\[0\]\.service\.vips\[0\]/],
  ['a set-service change with a list of services', DELTA([{ op: 'set-service', service: [SERVICE] }]), ALL, /changes\[0\]\.service/],
  ['a set-service change with a field of another op', DELTA([{ op: 'set-service', service: SERVICE, ip: '10.0.0.1' }]), ALL, /changes\[0\]: unknown field "ip"/],
  ['the retired set-services op', DELTA([{ op: 'set-services', services: [] }]), ALL, /changes\[0\]\.op: must be one of/],
  ['a remove-service change with a bad name', DELTA([{ op: 'remove-service', namespace: 'default', name: 'Web_1' }]), ALL, /changes\[0\]\.name/],
  ['a service with an IPv6 virtual IP', JSON.stringify({ type: 'registry', version: 1, epoch: 'e1', workloads: [], nodes: [], services: [{ ...SERVICE, vips: ['fd00::1'] }] }), ALL, /services\[0\]\.vips\[0\]: must be an IPv4 address/],
  ['an endpoint target port out of range', JSON.stringify({ type: 'registry', version: 1, epoch: 'e1', workloads: [], nodes: [], services: [{ ...SERVICE, endpoints: [{ ip: '10.0.1.11', ready: true, targetPorts: [0] }] }] }), ALL, /targetPorts\[0\]: must be a port/],
  ['a declared service without a selector', JSON.stringify({ type: 'register', workloads: [], services: [{ namespace: 'default', name: 'web', vips: ['10.96.0.10'], ports: [] }] }), ALL, /services\[0\]: missing field "selector"/],
  [
    'a registration of 1,001 workloads (one node runs at most 1,000)',
    JSON.stringify({ type: 'register', workloads: Array.from({ length: 1001 }, (_, i) => ({ ...WORKLOAD, name: `w-${i}`, ip: `10.${i >> 8}.${i & 255}.1` })) }),
    ALL,
    /register\.workloads: at most 1000 entries/,
  ],
];

describe('mesh-protocol', () => {
  describe('parseMessage', () => {
    for (const m of VALID) {
      it(`accepts a valid ${m.type}${m.type === 'register' ? ` of ${m.workloads.length}` : ''}`, () => {
        assert.deepEqual(parseMessage(encodeMessage(m), [m.type]), m);
        assert.deepEqual(parseMessage(Buffer.from(encodeMessage(m)), ALL), m);
      });
    }

    for (const [what, frame, allowed, reason] of HOSTILE) {
      it(`refuses ${what}`, () => {
        assert.throws(
          () => parseMessage(frame, allowed),
          (err: unknown) => {
            assert.ok(err instanceof PalisadeError, String(err));
            assert.equal(err.code, 'PALISADE_ERR_PROTOCOL');
            assert.match(err.message, reason);
            assert.ok(!err.message.includes('\n') && err.message.length < 300, `one short line: ${err.message}`);
            return true;
          },
        );
      });
    }

    it('lets a larger limit through for collector frames', () => {
      const big = JSON.stringify({ type: 'registry', version: 1, workloads: [], nodes: [], pad: 'x'.repeat(MAX_FRAME_BYTES) });
      assert.throws(() => parseMessage(big, [...NODE_REPLIES], 4 * MAX_FRAME_BYTES), /unknown field "pad"/);
    });
  });

  describe('inflateRegistryFrame (binary registry frames, hello accepts registry-deflate)', () => {
    const frame = encodeMessage({ type: 'registry-delta', epoch: 'e1', fromVersion: 1, toVersion: 2, changes: [{ op: 'remove-workload', ip: '10.0.0.1' }] });

    it('gives back the text frame that was deflated', () => {
      assert.equal(inflateRegistryFrame(zlib.deflateRawSync(Buffer.from(frame))).toString(), frame);
    });

    it('refuses, in one line, a small message that would inflate past the limit (never inflating it whole)', () => {
      const bomb = zlib.deflateRawSync(Buffer.alloc(8 * 1024 * 1024, 0x20), { level: 9 });
      assert.ok(bomb.length < 16 * 1024, `${bomb.length} bytes that inflate to 8 MiB`);
      assert.throws(
        () => inflateRegistryFrame(bomb, 1024 * 1024),
        (err: unknown) => err instanceof PalisadeError && err.code === 'PALISADE_ERR_PROTOCOL' && /inflates past the 1048576-byte limit/.test(err.message),
      );
    });

    it('refuses bytes that are not deflated data', () => {
      assert.throws(() => inflateRegistryFrame(Buffer.from([0xff, 0xff, 0xff, 0xff])), /binary frame is not deflated data/);
    });
  });
});
