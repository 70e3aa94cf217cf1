import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AuditLog } from '../../../collector/audit/audit-log';
import { DeniedFlowSummarizer } from '../../../collector/audit/denied-summary';
import type { FlowEndpoint, FlowRecord } from '../../../common/flow';
import { silentLogger } from '../../../common/log';
import { Appended } from './audit-sink';

const T0 = Date.parse('2024-05-01T12:00:00Z');
const WEB = { ip: '10.0.1.3', port: 8080, workload: 'web', namespace: 'default' };
const CLIENT = { ip: '10.0.1.2', port: 40000, workload: 'client', namespace: 'shop' };

function flow(over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    time: new Date(T0).toISOString(),
    node: 'node-1',
    direction: 'outbound',
    source: CLIENT,
    destination: WEB,
    protocol: 'tcp',
    verdict: 'denied',
    reason: 'denied-by-policy',
    policy: 'default/deny-all',
    mtls: true,
    bytesSent: 0,
    bytesReceived: 0,
    durationMs: 0,
    ...over,
  };
}


describe('DeniedFlowSummarizer', () => {
  let t = T0;
  const now = (): number => t;
  const open: DeniedFlowSummarizer[] = [];
  const make = (sink: Appended, opts: { maxGroups?: number; intervalMs?: number } = {}): DeniedFlowSummarizer => {
    const s = new DeniedFlowSummarizer(sink, { now, ...opts });
    open.push(s);
    return s;
  };
  beforeEach(() => {
    t = T0;
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  it('groups denied flows by source, destination, reason and policy, and ignores the others', () => {
    const sink = new Appended();
    const s = make(sink);
    const egress: FlowEndpoint = { ip: '203.0.113.9', port: 443, host: 'blocked.example.com' };
    s.add(flow());
    s.add(flow());
    s.add(flow({ source: { ip: '10.9.9.9', port: 1 } }));
    s.add(flow({ destination: egress, reason: 'host-not-allowed', policy: undefined, direction: 'egress' }));
    s.add(flow({ destination: { ip: '203.0.113.10', port: 25 }, reason: 'no-policy', policy: undefined }));
    s.add(flow({ destination: { ip: 'fd00::1', port: 25 }, reason: 'no-policy', policy: undefined }));
    s.add(flow({ policy: 'default/other' }));
    for (const verdict of ['allowed', 'audit', 'error'] as const) s.add(flow({ verdict }));
    t = T0 + 10_000;
    s.flush();
    assert.equal(sink.records.length, 1);
    const [r] = sink.records;
    assert.equal(r!.kind, 'denied-flows');
    assert.equal(r!.actor, 'collector');
    assert.deepEqual(r!.data, {
      window: { start: '2024-05-01T12:00:00.000Z', end: '2024-05-01T12:00:10.000Z' },
      groups: [
        { source: 'shop/client', destination: 'default/web', reason: 'denied-by-policy', policy: 'default/deny-all', count: 2 },
        { source: '10.9.9.9', destination: 'default/web', reason: 'denied-by-policy', policy: 'default/deny-all', count: 1 },
        { source: 'shop/client', destination: '203.0.113.10:25', reason: 'no-policy', count: 1 },
        { source: 'shop/client', destination: '[fd00::1]:25', reason: 'no-policy', count: 1 },
        { source: 'shop/client', destination: 'blocked.example.com', reason: 'host-not-allowed', count: 1 },
        { source: 'shop/client', destination: 'default/web', reason: 'denied-by-policy', policy: 'default/other', count: 1 },
      ],
      total: 7,
      dropped: 0,
    });
  });

  it('keeps at most maxGroups groups and counts the flows of the others in dropped', () => {
    const sink = new Appended();
    const s = make(sink, { maxGroups: 2 });
    for (let i = 0; i < 5; i++) s.add(flow({ source: { ip: `10.0.0.${i}` } }));
    s.add(flow({ source: { ip: '10.0.0.0' } }));
    s.add(flow({ source: { ip: '10.0.0.4' } }));
    s.flush();
    const data = sink.records[0]!.data as { groups: Array<{ source: string; count: number }>; total: number; dropped: number };
    assert.deepEqual(data.groups.map((g) => [g.source, g.count]), [['10.0.0.0', 2], ['10.0.0.1', 1]]);
    assert.deepEqual([data.total, data.dropped], [7, 4]);
    assert.equal(data.groups.reduce((n, g) => n + g.count, 0) + data.dropped, data.total, 'every flow is counted somewhere');
  });

  it('counts a packet summary of the per-pod filters as the packets it stands for', () => {
    const sink = new Appended();
    const s = make(sink, { maxGroups: 1 });
    const udp = { protocol: 'udp' as const, reason: 'udp-not-allowed', policy: undefined, mtls: false, destination: { ip: '172.31.0.100', port: 5140 } };
    s.add(flow({ ...udp, count: 40 }));
    s.add(flow({ ...udp, count: 2 }));
    s.add(flow({ ...udp, reason: 'spoofed-arp', protocol: 'arp', count: 5 }));
    s.flush();
    const data = sink.records[0]!.data as { groups: Array<{ reason: string; count: number }>; total: number; dropped: number };
    assert.deepEqual(data.groups.map((g) => [g.reason, g.count]), [['udp-not-allowed', 42]]);
    assert.deepEqual([data.total, data.dropped], [47, 5]);
  });

  it('counts an agent refusal summary as the connections it stands for (count), also when its group is dropped', () => {
    const sink = new Appended();
    const s = make(sink, { maxGroups: 1 });
    s.add(flow());
    s.add(flow({ count: 41 }));
    s.add(flow({ source: { ip: '10.0.0.9' }, count: 7 }));
    s.flush();
    const data = sink.records[0]!.data as { groups: Array<{ count: number }>; total: number; dropped: number };
    assert.deepEqual([data.groups.map((g) => g.count), data.total, data.dropped], [[42], 49, 7]);
  });

  it('writes nothing when nothing was denied, and starts each window where the last one ended', () => {
    const sink = new Appended();
    const s = make(sink);
    s.add(flow({ verdict: 'allowed' }));
    t = T0 + 10_000;
    s.flush();
    assert.equal(sink.records.length, 0);
    s.add(flow());
    t = T0 + 20_000;
    s.flush();
    t = T0 + 30_000;
    s.flush();
    assert.equal(sink.records.length, 1);
    assert.deepEqual(sink.records[0]!.data.window, { start: '2024-05-01T12:00:10.000Z', end: '2024-05-01T12:00:20.000Z' });
    s.close();
    assert.equal(sink.records.length, 1, 'close with nothing counted writes nothing');
  });

  it('keeps the counts when the append fails, for the next flush', () => {
    const sink = new Appended();
    const s = make(sink);
    s.add(flow());
    sink.fail = true;
    assert.throws(() => s.flush(), /disk full/);
    sink.fail = false;
    s.add(flow());
    s.flush();
    assert.equal((sink.records[0]!.data as { total: number }).total, 2);
  });

  it('flushes on its timer and on close, then ignores flows', async () => {
    const sink = new Appended();
    const s = new DeniedFlowSummarizer(sink, { intervalMs: 20 });
    s.add(flow());
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(sink.records.length, 1);
    s.add(flow());
    s.close();
    assert.equal(sink.records.length, 2);
    s.add(flow());
    s.close();
    assert.equal(sink.records.length, 2);
  });

  it('appends to a real audit log whose chain verifies', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-denied-'));
    const audit = AuditLog.open({ dataDir: dir, log: silentLogger() });
    try {
      const real = new DeniedFlowSummarizer(audit, { now });
      real.add(flow());
      real.close();
      const [r] = audit.list({ kind: 'denied-flows' });
      assert.equal((r!.data as { total: number }).total, 1);
      assert.equal(audit.verify().ok, true);
    } finally {
      audit.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
