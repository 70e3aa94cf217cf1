import { strict as assert } from 'node:assert';
import { FrameReader, framed } from '../../../../agent/dns/tcp-frames';

describe('DNS over TCP framing', () => {
  const a = Buffer.from('first message');
  const b = Buffer.alloc(700, 7);
  const stream = Buffer.concat([framed(a), framed(b), framed(Buffer.alloc(0))]);

  it('returns whole messages however the stream is cut', () => {
    for (const size of [1, 2, 3, 15, 16, 17, 500, stream.length]) {
      const r = new FrameReader();
      const got: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size) got.push(...r.push(stream.subarray(at, at + size)));
      assert.deepEqual(got.map((m) => m.toString('hex')), [a, b, Buffer.alloc(0)].map((m) => m.toString('hex')), `chunks of ${size}`);
      assert.equal(r.buffered, 0);
    }
  });

  it('holds a partial message until it is whole', () => {
    const r = new FrameReader();
    assert.deepEqual(r.push(framed(b).subarray(0, 100)), []);
    assert.equal(r.buffered, 100);
    assert.equal(r.push(framed(b).subarray(100))[0]!.length, 700);
  });
});
