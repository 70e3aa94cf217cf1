import { strict as assert } from 'node:assert';
import { parseByteSize } from '../../../common/byte-size';

describe('parseByteSize', () => {
  const good: Array<[string, number]> = [
    ['65536', 65536],
    ['0', 0],
    ['100B', 100],
    ['512KiB', 512 * 1024],
    ['16MiB', 16 * 1024 * 1024],
    ['1GiB', 1024 ** 3],
  ];
  for (const [text, want] of good) it(`${text} → ${want}`, () => assert.equal(parseByteSize(text), want));

  for (const text of ['', '16 MiB', '16mb', '16MB', '-1', '1.5MiB', 'MiB', '9999999999999999GiB']) {
    it(`refuses ${JSON.stringify(text)} with one line`, () => {
      assert.throws(() => parseByteSize(text, '--sniff-budget'), (e: Error & { code?: string }) => e.code === 'PALISADE_ERR_INVALID_ARGUMENT' && e.message.startsWith('invalid --sniff-budget'));
    });
  }
});
