import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic, writeFileAtomicAsync } from '../../../common/atomic-file';

describe('writeFileAtomic / writeFileAtomicAsync', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-atomic-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const writers: Array<[string, (file: string, data: string, mode: number) => Promise<void>]> = [
    ['writeFileAtomic', async (f, d, m) => writeFileAtomic(f, d, m)],
    ['writeFileAtomicAsync', (f, d, m) => writeFileAtomicAsync(f, d, m)],
  ];
  for (const [name, write] of writers) {
    describe(name, () => {
      it('replaces the file whole, with the mode asked for, and leaves no temporary file', async () => {
        const file = path.join(dir, 'head');
        fs.writeFileSync(file, 'old\n');
        await write(file, '7 abc\n', 0o600);
        assert.equal(fs.readFileSync(file, 'utf8'), '7 abc\n');
        await write(path.join(dir, 'new'), 'x', 0o640);
        assert.equal(fs.statSync(path.join(dir, 'new')).mode & 0o777, 0o640 & ~process.umask());
        assert.deepEqual(fs.readdirSync(dir).sort(), ['head', 'new']);
      });

      it('a directory that is not there: PALISADE_ERR_DATA_DIR, one line naming the file', async () => {
        const file = path.join(dir, 'gone', 'head');
        await assert.rejects(write(file, 'x', 0o600), (err: Error & { code?: string }) => err.code === 'PALISADE_ERR_DATA_DIR' && err.message.startsWith(`cannot write ${file}: `) && !err.message.includes('\n'));
      });

      it('a rename that fails (the name is a directory): the old contents stay and the temporary file is removed', async () => {
        const file = path.join(dir, 'head');
        fs.mkdirSync(file);
        fs.writeFileSync(path.join(file, 'inside'), 'kept');
        await assert.rejects(write(file, 'x', 0o600), (err: Error & { code?: string }) => err.code === 'PALISADE_ERR_DATA_DIR');
        assert.deepEqual(fs.readdirSync(dir), ['head']);
        assert.equal(fs.readFileSync(path.join(file, 'inside'), 'utf8'), 'kept');
      });
    });
  }

  it('writeFileAtomicAsync, cancelled once the data is on disk: the file is left as it was, no temporary file', async () => {
    const file = path.join(dir, 'head');
    fs.writeFileSync(file, 'newer, written by stop()\n');
    let asked = 0;
    await writeFileAtomicAsync(file, 'older\n', 0o600, { cancelled: () => ++asked > 0 });
    assert.equal(asked, 1);
    assert.equal(fs.readFileSync(file, 'utf8'), 'newer, written by stop()\n');
    assert.deepEqual(fs.readdirSync(dir), ['head']);
  });
});
