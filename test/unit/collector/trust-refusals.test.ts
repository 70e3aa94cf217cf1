import { strict as assert } from 'node:assert';
import { TrustRefusals } from '../../../collector/audit/trust-refusals';
import { Appended } from './audit-sink';

describe('TrustRefusals', () => {
  const T0 = Date.parse('2024-05-01T12:00:00Z');
  let t = T0;
  const open: TrustRefusals[] = [];
  const make = (sink: Appended, burst = 3): TrustRefusals => {
    const r = new TrustRefusals(sink, { burst, intervalMs: 10_000, now: () => t });
    open.push(r);
    return r;
  };
  beforeEach(() => (t = T0));
  afterEach(() => open.splice(0).forEach((r) => r.close()));

  it('writes one record per refusal, naming the node or the remote address', () => {
    const sink = new Appended();
    const r = make(sink);
    r.refused({ event: 'join', node: 'node-1', remote: '10.0.0.9', reason: 'node node-1 has already joined' });
    r.refused({ event: 'api', remote: '::1', reason: 'wrong token', detail: { route: '/v1/flows' } });
    assert.deepEqual(sink.records, [
      { kind: 'trust-refusal', actor: 'node:node-1', data: { event: 'join', reason: 'node node-1 has already joined', node: 'node-1', remote: '10.0.0.9' } },
      { kind: 'trust-refusal', actor: 'remote:::1', data: { event: 'api', reason: 'wrong token', remote: '::1', detail: { route: '/v1/flows' } } },
    ]);
  });

  it('past the burst, counts refusals per event and reason and writes one summary when the window ends: the counts add up', () => {
    const sink = new Appended();
    const r = make(sink, 2);
    for (let i = 0; i < 10; i++) r.refused({ event: 'join', remote: 'unix', reason: 'wrong token secret' });
    for (let i = 0; i < 5; i++) r.refused({ event: 'api', remote: 'unix', reason: 'wrong token' });
    assert.equal(sink.records.length, 2);
    t += 10_000;
    r.flush();
    assert.equal(sink.records.length, 3);
    const summary = sink.records[2]!;
    assert.equal(summary.actor, 'collector');
    assert.deepEqual(summary.data, {
      event: 'summary',
      window: { start: '2024-05-01T12:00:00.000Z', end: '2024-05-01T12:00:10.000Z' },
      recorded: 2,
      counted: 13,
      groups: [
        { event: 'join', reason: 'wrong token secret', count: 8 },
        { event: 'api', reason: 'wrong token', count: 5 },
      ],
      dropped: 0,
    });
    // a new window writes records one by one again
    r.refused({ event: 'join', remote: 'unix', reason: 'wrong token secret' });
    assert.equal(sink.records.length, 4);
  });

  it('a quiet window writes nothing; a failing audit log does not throw', () => {
    const sink = new Appended();
    const r = make(sink);
    r.flush();
    assert.equal(sink.records.length, 0);
    sink.fail = true;
    r.refused({ event: 'csr', node: 'node-1', reason: 'x' });
  });
});
