/**
 * Flow batches of one agent session are stored in order: the agent's acknowledgements are
 * cumulative and the store takes a (session, seq) at most once, so a batch stored after an
 * earlier one was refused would make the earlier one look stored when it is sent again — lost
 * without a count. After a batch N is refused, or fails once taken, only seq ≤ N is taken until N
 * is. A refused copy of a batch already taken (the agent sends again what is still being stored)
 * opens no gap: the copy taken settles it — acknowledged, or failed, which opens the gap then.
 */
/** Sessions remembered (the oldest forgotten first): each is a few bytes. */
const MAX_SESSIONS = 100_000;

export class SessionGaps {
  private readonly from = new Map<string, number>();
  private readonly highest = new Map<string, number>();

  /** May batch `seq` of `session` be taken now? */
  mayTake(session: string, seq: number): boolean {
    const n = this.from.get(session);
    return n === undefined || seq <= n;
  }

  /** Batch `seq` was taken: the gap it filled is closed. */
  taken(session: string, seq: number): void {
    if (this.from.get(session) === seq) this.from.delete(session);
    const h = this.highest.get(session);
    if (h === undefined || seq > h) {
      this.highest.delete(session);
      this.highest.set(session, seq);
      if (this.highest.size > MAX_SESSIONS) this.highest.delete(this.highest.keys().next().value!);
    }
  }

  /** Batch `seq` was refused before it was taken: later ones wait for it, unless a copy of it was taken. */
  refused(session: string, seq: number): void {
    const h = this.highest.get(session);
    if (h !== undefined && seq <= h) return;
    this.failed(session, seq);
  }

  /** Batch `seq` failed after it was taken: later ones wait for it. */
  failed(session: string, seq: number): void {
    const n = this.from.get(session);
    if (n === undefined || seq < n) this.from.set(session, seq);
  }

  /** Sessions with a gap open. */
  get size(): number {
    return this.from.size;
  }
}
