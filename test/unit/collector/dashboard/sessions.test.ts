import { strict as assert } from 'node:assert';
import { cookieValue, DashboardSessions } from '../../../../collector/dashboard/sessions';

describe('DashboardSessions', () => {
  let now = 1_000_000;
  const make = (): DashboardSessions => new DashboardSessions({ ticketTtlMs: 60_000, idleMs: 10_000, maxMs: 25_000, now: () => now });
  beforeEach(() => {
    now = 1_000_000;
  });

  describe('redeem', () => {
    it('exchanges a ticket once, for a session its owner holds', () => {
      const s = make();
      const t = s.ticket('abcd1234');
      const got = s.redeem(t);
      assert.ok(got);
      assert.equal(got.session.owner, 'abcd1234');
      assert.notEqual(got.id, t);
      assert.equal(s.redeem(t), undefined, 'a ticket is single use');
    });
    it('refuses an expired, unknown or malformed ticket', () => {
      const s = make();
      const t = s.ticket('o');
      now += 60_000;
      assert.equal(s.redeem(t), undefined);
      assert.equal(s.redeem('A'.repeat(43)), undefined);
      assert.equal(s.redeem('not a ticket'), undefined);
    });
  });

  describe('check', () => {
    it('keeps a session alive while used, ends it after the idle time and at the absolute lifetime', () => {
      const s = make();
      const { id } = s.redeem(s.ticket('o'))!;
      assert.equal(s.check(id).ok, true);
      now += 9_000;
      assert.equal(s.check(id).ok, true, 'used within the idle time');
      now += 9_000;
      assert.equal(s.check(id).ok, true);
      now += 9_000; // 27 s after it started: past the 25 s lifetime although used every 9 s
      assert.deepEqual(s.check(id), { ok: false, reason: 'session expired' });
      assert.deepEqual(s.check(id), { ok: false, reason: 'unknown or ended session' });
    });
    it('ends an idle session', () => {
      const s = make();
      const { id } = s.redeem(s.ticket('o'))!;
      now += 10_000;
      assert.equal(s.check(id).ok, false);
    });
    it('refuses no cookie, a malformed one, an unknown one and a logged-out one', () => {
      const s = make();
      const { id } = s.redeem(s.ticket('o'))!;
      assert.deepEqual(s.check(undefined), { ok: false, reason: 'no session cookie' });
      assert.deepEqual(s.check('x; y'), { ok: false, reason: 'malformed session cookie' });
      assert.deepEqual(s.check('B'.repeat(43)), { ok: false, reason: 'unknown or ended session' });
      assert.equal(s.end(id), true);
      assert.equal(s.check(id).ok, false);
    });
  });

  describe('cookieValue', () => {
    const cases: Array<[string | undefined, string | undefined]> = [
      [undefined, undefined],
      ['a=1; __Host-palisade-session=xyz; b=2', 'xyz'],
      ['__Host-palisade-session=first; __Host-palisade-session=second', 'first'],
      ['palisade-session=xyz', undefined],
      ['garbage', undefined],
    ];
    for (const [header, want] of cases) it(`${JSON.stringify(header)} → ${JSON.stringify(want)}`, () => assert.equal(cookieValue(header, '__Host-palisade-session'), want));
  });
});
