import { strict as assert } from 'node:assert';
import { admission, ConnectionLimits } from '../../../../../agent/proxy/limits/connection-limits';

describe('ConnectionLimits', () => {
  describe('admission', () => {
    const caps = { perPod: 3, total: 10 };
    const table: Array<[string, { bySource: number; total: number }, string | undefined]> = [
      ['room for both', { bySource: 0, total: 0 }, undefined],
      ['the last place of the pod', { bySource: 2, total: 9 }, undefined],
      ['the pod holds its share', { bySource: 3, total: 3 }, 'pod-connection-limit'],
      ['the side is full', { bySource: 0, total: 10 }, 'node-connection-limit'],
      ['both: the pod is named first', { bySource: 3, total: 10 }, 'pod-connection-limit'],
    ];
    for (const [what, held, want] of table) it(`${what} → ${want ?? 'admitted'}`, () => assert.equal(admission(held, caps), want));
  });

  it('holds a place per connection until it is released, once, per side and source pod', () => {
    const limits = new ConnectionLimits({ outbound: 3, inbound: 1, perPod: 2 });
    const a1 = limits.admit('outbound', '10.0.1.10');
    const a2 = limits.admit('outbound', '10.0.1.10');
    assert.ok(a1.ok && a2.ok);
    assert.deepEqual(limits.admit('outbound', '10.0.1.10'), { ok: false, reason: 'pod-connection-limit' });
    const b1 = limits.admit('outbound', '10.0.1.11');
    assert.ok(b1.ok);
    assert.deepEqual(limits.admit('outbound', '10.0.1.12'), { ok: false, reason: 'node-connection-limit' });
    assert.ok(limits.admit('inbound', '10.0.2.10').ok, 'the inbound side has its own places');
    assert.equal(limits.held('outbound'), 3);
    a1.release();
    a1.release();
    assert.equal(limits.held('outbound'), 2, 'a second release changes nothing');
    assert.ok(limits.admit('outbound', '10.0.1.10').ok);
  });

  it('an idle routed upstream gets a place only while its pod holds under half its share and the side under half its cap', () => {
    const limits = new ConnectionLimits({ outbound: 8, inbound: 1, perPod: 4 });
    const conn = limits.admit('outbound', '10.0.1.10');
    const idle = limits.admitIdle('outbound', '10.0.1.10');
    assert.ok(conn.ok && idle.ok);
    assert.deepEqual(limits.admitIdle('outbound', '10.0.1.10'), { ok: false, reason: 'pod-connection-limit' }, 'the pod holds 2 of 4: no more idle ones');
    assert.ok(limits.admit('outbound', '10.0.1.10').ok && limits.admit('outbound', '10.0.1.10').ok, 'its own connections still get the other half');
    const others = [limits.admitIdle('outbound', '10.0.1.11'), limits.admitIdle('outbound', '10.0.1.12')];
    assert.deepEqual(others.map((a) => a.ok), [false, false], 'the side holds 4 of 8: no idle one for anyone');
    idle.release();
    assert.equal(limits.held('outbound'), 3);
  });
});
