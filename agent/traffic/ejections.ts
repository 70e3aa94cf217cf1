/**
 * Outlier detection's first rule: an endpoint that could not be reached at all (no connection:
 * refused, unreachable, the tunnel could not be opened) is ejected, for 100 ms after its first
 * such failure in a row and twice as long after each next one, at most 60 s; an answer (any
 * status) readmits it and forgets its failures. One per node proxy: every client pod's traffic
 * ejects and readmits together. Pure but for the clock it is given.
 */

export const FIRST_EJECTION_MS = 100;
export const MAX_EJECTION_MS = 60_000;
const FORGET = 4096;

interface Entry {
  failures: number;
  until: number;
}

export class Ejections {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** `key` could not be reached: ejected for longer each time in a row. Returns the ejection in ms. */
  unreachable(key: string): number {
    const e = this.entries.get(key) ?? { failures: 0, until: 0 };
    e.failures++;
    const ms = Math.min(MAX_EJECTION_MS, FIRST_EJECTION_MS * 2 ** (e.failures - 1));
    e.until = this.now() + ms;
    if (this.entries.size >= FORGET && !this.entries.has(key)) this.entries.clear();
    this.entries.set(key, e);
    return ms;
  }

  /** `key` answered: readmitted. */
  answered(key: string): void {
    this.entries.delete(key);
  }

  ejected(key: string): boolean {
    const e = this.entries.get(key);
    return e !== undefined && this.now() < e.until;
  }
}
