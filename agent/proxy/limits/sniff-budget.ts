/**
 * The bytes the proxy holds while it reads a client's first bytes (a ClientHello for its SNI, an
 * HTTP request line) before deciding. One connection reads at most MAX_SNIFF_BYTES (sniff.ts);
 * all of them together hold at most `total` bytes, one source pod at most `perPod` of them. The
 * connection whose bytes would go past either is refused — the newest bytes, so connections
 * already being read are finished first — and counted by the caller.
 *
 * Default 16 MiB in all, 4 MiB per pod: 1,024 largest-possible hellos at once (256 from one pod),
 * or about 8,000 of the ~2 KiB hellos browsers and TLS libraries send. A real hello arrives in one
 * read and is held for well under a millisecond; only a client that stalls holds bytes for long.
 */

export const DEFAULT_SNIFF_BUDGET_BYTES = 16 * 1024 * 1024;
/** A source pod's share of the budget. */
const PER_POD_SHARE = 0.25;

export type SniffRefusal = 'node-sniff-budget' | 'pod-sniff-budget';

/** Bytes one connection holds while it is read; `release` once it is decided. */
export interface SniffHold {
  /** Account `n` more bytes; false (nothing taken) when they do not fit. */
  take(n: number): boolean;
  /** Why the last take failed. */
  readonly refused: SniffRefusal | undefined;
  release(): void;
}

/** The pure decision: do `n` more bytes fit, with `held` in all and `bySource` from this pod? */
export function sniffFits(held: { total: number; bySource: number }, n: number, caps: { total: number; perPod: number }): SniffRefusal | undefined {
  if (held.bySource + n > caps.perPod) return 'pod-sniff-budget';
  if (held.total + n > caps.total) return 'node-sniff-budget';
  return undefined;
}

export class SniffBudget {
  readonly total: number;
  readonly perPod: number;
  private held = 0;
  private highWater = 0;
  private readonly bySource = new Map<string, number>();

  constructor(totalBytes = DEFAULT_SNIFF_BUDGET_BYTES) {
    if (!Number.isSafeInteger(totalBytes) || totalBytes < 1) throw new RangeError('the sniff budget must be a whole number of bytes');
    this.total = totalBytes;
    this.perPod = Math.max(1, Math.floor(totalBytes * PER_POD_SHARE));
  }

  /** Start holding bytes for one connection from `source` (a pod's IP). */
  hold(source: string): SniffHold {
    let mine = 0;
    let refused: SniffRefusal | undefined;
    const budget = this;
    return {
      take(n: number): boolean {
        const bySource = budget.bySource.get(source) ?? 0;
        refused = sniffFits({ total: budget.held, bySource }, n, budget);
        if (refused) return false;
        mine += n;
        budget.held += n;
        if (budget.held > budget.highWater) budget.highWater = budget.held;
        budget.bySource.set(source, bySource + n);
        return true;
      },
      get refused() {
        return refused;
      },
      release(): void {
        if (mine === 0) return;
        budget.held -= mine;
        const left = (budget.bySource.get(source) ?? mine) - mine;
        if (left > 0) budget.bySource.set(source, left);
        else budget.bySource.delete(source);
        mine = 0;
      },
    };
  }

  /** Bytes held now, and the most ever held at once. */
  usage(): { held: number; highWater: number } {
    return { held: this.held, highWater: this.highWater };
  }
}
