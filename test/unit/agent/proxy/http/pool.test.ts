import { strict as assert } from 'node:assert';
import { UpstreamPool, type PooledConnection } from '../../../../../agent/proxy/http/pool';

class Fake implements PooledConnection {
  alive = true;
  expires = 0;
  constructor(
    readonly name: string,
    readonly keepAliveMs: number | undefined = undefined,
    readonly idleMs: number | undefined = undefined,
  ) {}
  destroy(): void {
    this.alive = false;
  }
}

describe('UpstreamPool', function () {
  it('offers the most recently used idle connection first', function () {
    const pool = new UpstreamPool<Fake>(4, 60_000);
    const [a, b] = [new Fake('a'), new Fake('b')];
    pool.put(a);
    pool.put(b);
    assert.equal(pool.take(), b);
    assert.equal(pool.take(), a);
    assert.equal(pool.take(), undefined);
  });

  it('keeps at most maxIdle, closing the oldest', function () {
    const pool = new UpstreamPool<Fake>(2, 60_000);
    const conns = ['a', 'b', 'c'].map((n) => new Fake(n));
    for (const c of conns) pool.put(c);
    assert.equal(conns[0]!.alive, false);
    assert.equal(pool.idleCount, 2);
  });

  it('never offers a closed connection, nor one past its time (the upstream\'s Keep-Alive hint when shorter)', function () {
    const pool = new UpstreamPool<Fake>(4, 60_000);
    const closed = new Fake('closed');
    const hinted = new Fake('hinted', 0);
    pool.put(closed);
    closed.alive = false;
    pool.put(hinted);
    assert.equal(pool.take(), undefined);
    assert.equal(hinted.alive, false, 'an expired one is closed when passed over');
  });

  it('a connection\'s own idle time (a DestinationRule\'s idleTimeout) replaces the pool\'s, longer or shorter', function () {
    const pool = new UpstreamPool<Fake>(4, 1000);
    const [short, long, plain] = [new Fake('short', undefined, 10), new Fake('long', undefined, 3_600_000), new Fake('plain')];
    const t0 = performance.now();
    for (const c of [short, long, plain]) pool.put(c);
    pool.sweep(t0 + 500);
    assert.deepEqual([short.alive, long.alive, plain.alive], [false, true, true]);
    pool.sweep(t0 + 60_000);
    assert.deepEqual([long.alive, plain.alive], [true, false]);
    assert.equal(pool.take(), long);
  });

  it('sweeps out connections idle past their time, and forgets one that went away', function () {
    const pool = new UpstreamPool<Fake>(4, 1000);
    const [a, b] = [new Fake('a'), new Fake('b')];
    pool.put(a);
    pool.put(b);
    pool.forget(b);
    assert.equal(pool.idleCount, 1);
    pool.sweep(performance.now() + 2000);
    assert.equal(pool.idleCount, 0);
    assert.equal(a.alive, false);
  });

  it('tells its owner when a connection goes idle (the front sweeps pools that hold some)', function () {
    let told = 0;
    const pool = new UpstreamPool<Fake>(4, 1000, () => (told += 1));
    pool.put(new Fake('a'));
    assert.equal(told, 1);
  });

  it('with admitIdle: an idle connection holds a place until it is used again or closed; refused one, it is closed (counted)', function () {
    let held = 0;
    const admit = (): (() => void) | undefined => {
      if (held >= 2) return undefined;
      held++;
      return () => held--;
    };
    const pool = new UpstreamPool<Fake>(4, 1000, undefined, admit);
    const [a, b, c] = [new Fake('a'), new Fake('b'), new Fake('c')];
    pool.put(a);
    pool.put(b);
    pool.put(c);
    assert.equal(held, 2);
    assert.equal(c.alive, false, 'no place: closed, not kept');
    assert.equal(pool.refused, 1);
    assert.equal(pool.take(), b);
    assert.equal(held, 1, 'in use again: its place is given back (its client connection covers it)');
    pool.forget(a);
    assert.equal(held, 0, 'closed while idle');
    pool.put(b);
    pool.sweep(performance.now() + 2000);
    assert.equal(held, 0, 'swept out');
    pool.put(new Fake('d'));
    pool.destroy();
    assert.equal(held, 0, 'destroyed');
    const small = new UpstreamPool<Fake>(1, 1000, undefined, admit);
    small.put(new Fake('e'));
    small.put(new Fake('f'));
    assert.equal(held, 1, 'the oldest, closed past maxIdle, gave its place back');
  });
});
