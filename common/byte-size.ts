/**
 * Sizes as operators type them on the command line: a whole number of bytes, optionally with a
 * binary unit — `65536`, `512KiB`, `16MiB`, `1GiB`. Everything else is refused with a one-line
 * error.
 */
import { invalidArgument, quoteValue } from './errors';

const UNIT: Record<string, number> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
const SIZE_RE = /^(\d{1,15})(B|KiB|MiB|GiB)?$/;

/** Bytes in `text`; throws PALISADE_ERR_INVALID_ARGUMENT naming `what` (e.g. `--sniff-budget`). */
export function parseByteSize(text: string, what = 'size'): number {
  const m = SIZE_RE.exec(text);
  const bytes = m ? Number(m[1]) * UNIT[m[2] ?? '']! : NaN;
  if (!m || !Number.isSafeInteger(bytes)) {
    throw invalidArgument(`invalid ${what} ${quoteValue(text)}: expected bytes like 65536, 512KiB, 16MiB or 1GiB`);
  }
  return bytes;
}
