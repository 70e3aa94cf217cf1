import { strict as assert } from 'node:assert';
import { Ejections } from '../../../../agent/traffic/ejections';
import { endpointKey, L4Balancer, pickConnection, type L4State } from '../../../../agent/traffic/l4-balancer';
import { DEFAULT_OUTLIER_DETECTION, type LoadBalancer, type OutlierDetection, type TrafficPolicy } from '../../../../common/routes';

const ENDPOINTS = [1, 2, 3, 4].map((i) => ({ ip: `10.0.0.${i}`, port: 80 }));
const KEYS = ENDPOINTS.map(endpointKey);
const HEADER: LoadBalancer = { kind: 'HASH', by: 'header', name: 'x-user' };
const policy = (loadBalancer?: LoadBalancer, outlierDetection?: OutlierDetection): TrafficPolicy => ({ loadBalancer, outlierDetection, connectionPool: undefined });
const state = (over: Partial<L4State> = {}): L4State => {
  let t = 0;
  return { turn: () => t++, open: () => 0, random: Math.random, ...over };
};

describe('L4Balancer (agent/traffic/l4-balancer.ts): a DestinationRule per connection', () => {
  describe('pickConnection', () => {
    const cases: [string, LoadBalancer | undefined, Partial<L4State>, number[], number | undefined][] = [
      ['no rule: round robin', undefined, { turn: () => 5 }, [0, 1, 2], 2],
      ['ROUND_ROBIN', { kind: 'ROUND_ROBIN' }, { turn: () => 4 }, [1, 3], 1],
      ['RANDOM', { kind: 'RANDOM' }, { random: () => 0.99 }, [0, 1, 2, 3], 3],
      ['a header hash cannot be seen at L4: round robin', HEADER, { turn: () => 1 }, [0, 1, 2, 3], 1],
      ['a cookie hash: round robin', { kind: 'HASH', by: 'cookie', name: 'sid' }, { turn: () => 2 }, [0, 1, 2, 3], 2],
      ['LEAST_REQUEST: of two drawn, the one with fewer open connections', { kind: 'LEAST_REQUEST' }, { random: (() => { const r = [0, 0.5]; return () => r.shift() ?? 0; })(), open: (k) => (k === KEYS[0] ? 5 : 1) }, [0, 1, 2, 3], 2],
      ['LEAST_REQUEST: one candidate', { kind: 'LEAST_REQUEST' }, {}, [2], 2],
      ['nothing to pick', { kind: 'RANDOM' }, {}, [], undefined],
    ];
    for (const [what, lb, over, among, want] of cases) it(what, () => assert.equal(pickConnection(lb, 'shop/db:5432', KEYS, among, '10.1.0.1', state(over)), want));

    it('LEAST_REQUEST sends new connections to the endpoints with fewer open', () => {
      const b = new L4Balancer(new Ejections());
      const first = b.opened(KEYS[0]!);
      for (let i = 0; i < 4; i++) b.opened(KEYS[1]!);
      const counts = new Map<string, number>();
      for (let i = 0; i < 600; i++) {
        const e = b.choose('shop/db:5432', ENDPOINTS, policy({ kind: 'LEAST_REQUEST' }), '10.1.0.1')!;
        counts.set(e.ip, (counts.get(e.ip) ?? 0) + 1);
      }
      assert.ok((counts.get('10.0.0.2') ?? 0) < 150 && (counts.get('10.0.0.3') ?? 0) > 150, JSON.stringify([...counts]));
      first();
      first();
    });
  });

  it('without a rule, and for ROUND_ROBIN or a hash of a request part: round robin', () => {
    for (const lb of [undefined, { kind: 'ROUND_ROBIN' as const }, HEADER]) {
      const b = new L4Balancer(new Ejections());
      assert.deepEqual([0, 1, 2, 3, 4].map(() => b.choose('shop/db:5432', ENDPOINTS, policy(lb), '10.1.0.1')!.ip), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.1']);
    }
  });

  it('a source-IP hash keeps a client pod on one endpoint', () => {
    const b = new L4Balancer(new Ejections());
    const lb: LoadBalancer = { kind: 'HASH', by: 'source-ip', name: '' };
    const homes = new Set<string>();
    for (let c = 0; c < 40; c++) {
      const first: string = b.choose('shop/db:5432', ENDPOINTS, policy(lb), `10.1.0.${c}`)!.ip;
      for (let i = 0; i < 5; i++) assert.equal(b.choose('shop/db:5432', ENDPOINTS, policy(lb), `10.1.0.${c}`)!.ip, first);
      homes.add(first);
    }
    assert.ok(homes.size >= 3, [...homes].join(','));
  });

  it('tcp.maxConnections: at most that many connections to the Service from the node; a release makes room (once)', () => {
    const b = new L4Balancer(new Ejections());
    const r1 = b.admit('shop/db:5432', 2)!;
    assert.ok(b.admit('shop/db:5432', 2) !== undefined);
    assert.equal(b.admit('shop/db:5432', 2), undefined);
    assert.ok(b.admit('shop/other:5432', 2) !== undefined, 'per Service');
    r1();
    r1();
    assert.ok(b.admit('shop/db:5432', 2) !== undefined);
    assert.equal(b.admit('shop/db:5432', 2), undefined);
  });

  describe('outlier detection by connect failures', () => {
    const OD: OutlierDetection = { ...DEFAULT_OUTLIER_DETECTION, consecutive5xx: 2, baseEjectionMs: 30_000, maxEjectionPercent: 100 };
    it('an endpoint that could not be connected to is passed over (backoff), and at the configured count ejected for baseEjectionTime; a connection readmits', () => {
      let now = 0;
      const ej = new Ejections(() => now);
      const b = new L4Balancer(ej);
      const peers = (): string[] => KEYS;
      b.connectFailed(KEYS[1]!, OD, peers);
      assert.ok(ej.ejected(KEYS[1]!), 'the first failure: ejected with backoff');
      now += 150;
      assert.ok(!ej.ejected(KEYS[1]!), 'the backoff (100 ms) is over');
      b.connectFailed(KEYS[1]!, OD, peers);
      now += 10_000;
      assert.ok(ej.ejected(KEYS[1]!), 'the second failure in a row (consecutive5xxErrors 2): ejected for 30 s');
      const picks = new Set(Array.from({ length: 12 }, () => b.choose('shop/db:5432', ENDPOINTS, policy(undefined, OD), '10.1.0.1')!.ip));
      assert.deepEqual([...picks].sort(), ['10.0.0.1', '10.0.0.3', '10.0.0.4']);
      now += 20_001;
      assert.ok(!ej.ejected(KEYS[1]!));
      b.connected(KEYS[1]!);
      b.connectFailed(KEYS[1]!, OD, peers);
      now += 150;
      assert.ok(!ej.ejected(KEYS[1]!), 'a connection in between: the count starts again');
    });
    it('without outlierDetection, connect failures eject with backoff only', () => {
      let now = 0;
      const ej = new Ejections(() => now);
      const b = new L4Balancer(ej);
      for (let i = 0; i < 3; i++) b.connectFailed(KEYS[0]!, undefined, () => KEYS);
      now += 401;
      assert.ok(!ej.ejected(KEYS[0]!), '100 + 200 + 400 ms of backoff, no 30 s ejection');
    });
    it('every endpoint ejected, or fewer healthy than minHealthPercent: all are used', () => {
      const ej = new Ejections(() => 0);
      const b = new L4Balancer(ej);
      for (const k of KEYS) b.connectFailed(k, undefined, () => KEYS);
      assert.ok(b.choose('shop/db:5432', ENDPOINTS, undefined, '10.1.0.1') !== undefined);
      const ej2 = new Ejections(() => 0);
      const b2 = new L4Balancer(ej2);
      b2.connectFailed(KEYS[0]!, undefined, () => KEYS);
      const picks = new Set(Array.from({ length: 8 }, () => b2.choose('shop/db:5432', ENDPOINTS, policy(undefined, { ...OD, minHealthPercent: 100 }), '10.1.0.1')!.ip));
      assert.ok(picks.has('10.0.0.1'), 'below minHealthPercent the ejected endpoint is used too');
    });
    it('a tried endpoint is not picked again', () => {
      const b = new L4Balancer(new Ejections());
      const tried = new Set(KEYS.slice(0, 3));
      assert.equal(b.choose('shop/db:5432', ENDPOINTS, undefined, '10.1.0.1', tried)!.ip, '10.0.0.4');
      assert.equal(b.choose('shop/db:5432', ENDPOINTS, undefined, '10.1.0.1', new Set(KEYS)), undefined);
    });
  });
});
