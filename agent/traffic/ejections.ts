/**
 * Outlier detection's first rule: an endpoint that could not be reached at all (no connection:
 * refused, unreachable, the tunnel could not be opened) is ejected, for 100 ms after its first
 * such failure in a row and twice as long after each next one, at most 60 s; an answer (any
 * status) readmits it and forgets its failures. One per node proxy: every client pod's traffic
 * ejects and readmits together. Pure but for the clock it is given.
 */

export const FIRST_EJECTION_MS = 100;
export const MAX_EJECTION_MS = 60_000;
/** Endpoints remembered at most: past it those not ejected now are forgotten first, then all (counted). */
export const MAX_ENTRIES = 4096;

interface Entry {
  failures: number;
  until: number;
}

export class Ejections {
  private readonly entries = new Map<string, Entry>();
  /** when the last ejection ends: before it some endpoint may be ejected */
  private latest = 0;
  /** endpoints readmitted before their time because MAX_ENTRIES was reached */
  readmittedByOverflow = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** `key` could not be reached: ejected for longer each time in a row. Returns the ejection in ms. */
  unreachable(key: string): number {
    const e = this.entries.get(key) ?? { failures: 0, until: 0 };
    e.failures++;
    const ms = Math.min(MAX_EJECTION_MS, FIRST_EJECTION_MS * 2 ** (e.failures - 1));
    const now = this.now();
    e.until = now + ms;
    this.latest = Math.max(this.latest, e.until);
    if (this.entries.size >= MAX_ENTRIES && !this.entries.has(key)) this.overflow(now);
    this.entries.set(key, e);
    return ms;
  }

  /** Whether any endpoint may be ejected now (false: no endpoint needs to be looked up). */
  anyEjected(): boolean {
    return this.entries.size > 0 && this.now() < this.latest;
  }

  /** Full: forget the endpoints whose ejection has ended (and their failures in a row); if none, every one, counted. */
  private overflow(now: number): void {
    for (const [k, e] of this.entries) if (e.until <= now) this.entries.delete(k);
    if (this.entries.size < MAX_ENTRIES) return;
    this.readmittedByOverflow += this.entries.size;
    this.entries.clear();
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
