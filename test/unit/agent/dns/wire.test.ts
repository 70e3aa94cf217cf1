import { strict as assert } from 'node:assert';
import { DnsFormatError, encodeName, readName, rcodeName, skipName, typeName } from '../../../../agent/dns/wire';

/** A message: a 12-byte header, then `body`. */
function msg(...body: number[]): Buffer {
  return Buffer.from([...new Array<number>(12).fill(0), ...body]);
}

const label = (s: string): number[] => [s.length, ...Buffer.from(s, 'latin1')];

describe('dns wire', () => {
  describe('readName', () => {
    const good: Array<[string, Buffer, number, string, number]> = [
      ['a plain name', msg(...label('www'), ...label('Example'), ...label('COM'), 0), 12, 'www.example.com', 29],
      ['the root', msg(0), 12, '', 13],
      ['a pointer back to an earlier name', msg(...label('example'), 0, ...label('www'), 0xc0, 12), 21, 'www.example', 27],
      ['a pointer to a pointer', msg(...label('a'), 0, ...label('b'), 0xc0, 12, ...label('c'), 0xc0, 15), 19, 'c.b.a', 23],
      ['a dot and a space inside a label, escaped', msg(...label('a.b c'), 0), 12, 'a\\046b\\032c', 19],
      ['bytes past ASCII, escaped', msg(3, 0xff, 0x41, 0x00, 0), 12, '\\255a\\000', 17],
      ['underscore and hyphen as they are', msg(...label('_srv-x'), 0), 12, '_srv-x', 20],
    ];
    for (const [what, m, at, name, end] of good) {
      it(`reads ${what}`, () => {
        assert.deepEqual(readName(m, at), { name, end });
        assert.equal(skipName(m, at), end);
      });
    }

    const longName = msg(...Array.from({ length: 4 }, () => label('x'.repeat(63))).flat(), 0);
    const bad: Array<[string, Buffer, number, RegExp]> = [
      ['a name running past the end', msg(...label('abc')), 12, /past the end/],
      ['a label running past the end', msg(10, 0x61), 12, /label runs past/],
      ['a pointer to itself (a loop)', msg(0xc0, 12), 12, /point back/],
      ['a forward pointer', msg(0xc0, 14, 0, ...label('a'), 0), 12, /point back/],
      ['a pointer into the header', msg(0xc0, 2), 12, /point back/],
      ['a pointer cut short', msg(0xc0), 12, /cut short/],
      ['a loop through a label (pointer back to the label before it)', msg(...label('a'), 0xc0, 12), 14, /too many compression pointers|longer than 255/],
      ['a reserved label type (0x40)', msg(0x41, 0x61, 0), 12, /reserved label type/],
      ['a reserved label type (0x80)', msg(0x81, 0x61, 0), 12, /reserved label type/],
      ['a name longer than 255 bytes', longName, 12, /longer than 255/],
    ];
    for (const [what, m, at, why] of bad) {
      it(`refuses ${what}`, () => {
        assert.throws(() => readName(m, at), (err: unknown) => err instanceof DnsFormatError && why.test(err.message));
        assert.throws(() => skipName(m, at), DnsFormatError);
      });
    }

    it('follows a long chain of pointers only while each goes further back, and stops at 127', () => {
      // The root at 12, then 199 pointers, each to the one before it: the 128th is refused.
      const m = Buffer.alloc(12 + 1 + 199 * 2);
      m[12] = 0;
      for (let i = 0; i < 199; i++) {
        const at = 13 + i * 2;
        const target = i === 0 ? 12 : 13 + (i - 1) * 2;
        m[at] = 0xc0 | (target >> 8);
        m[at + 1] = target & 0xff;
      }
      assert.equal(readName(m, 13 + 100 * 2).name, '', '101 pointers are fine');
      assert.throws(() => readName(m, 13 + 198 * 2), /too many compression pointers/);
    });
  });

  describe('encodeName', () => {
    it('round-trips presentation names through readName', () => {
      for (const name of ['www.example.com', 'a\\046b.test', '\\255\\000x.y', '', 'x'.repeat(63)]) {
        const m = Buffer.concat([Buffer.alloc(12), encodeName(name)]);
        assert.equal(readName(m, 12).name, name);
      }
    });

    it('refuses empty and oversized labels, names past 255 bytes, and non-ASCII', () => {
      assert.throws(() => encodeName('a..b'), DnsFormatError);
      assert.throws(() => encodeName('x'.repeat(64)), DnsFormatError);
      assert.throws(() => encodeName(Array(5).fill('x'.repeat(63)).join('.')), DnsFormatError);
      assert.throws(() => encodeName('é.test'), DnsFormatError);
    });
  });

  describe('names of numbers', () => {
    it('names the rcodes and types it knows, RFC 3597 style for others', () => {
      assert.deepEqual([rcodeName(0), rcodeName(3), rcodeName(5), rcodeName(17)], ['NOERROR', 'NXDOMAIN', 'REFUSED', 'RCODE17']);
      assert.deepEqual([typeName(1), typeName(28), typeName(5), typeName(65)], ['A', 'AAAA', 'CNAME', 'TYPE65']);
    });
  });
});
