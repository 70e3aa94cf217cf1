/**
 * Flow batches of one agent session are stored in order: the agent's acknowledgements are
 * cumulative and the store takes a (session, seq) at most once, so a batch stored after an
 * earlier one was refused would make the earlier one look stored when it is sent again — lost
 * without a count. After a refusal at seq N, only seq ≤ N is taken until N is.
 */
export class SessionGaps {
  private readonly from = new Map<string, number>();

  /** May batch `seq` of `session` be taken now? */
  mayTake(session: string, seq: number): boolean {
    const n = this.from.get(session);
    return n === undefined || seq <= n;
  }

  /** Batch `seq` was taken: the gap it filled is closed. */
  taken(session: string, seq: number): void {
    if (this.from.get(session) === seq) this.from.delete(session);
  }

  /** Batch `seq` was refused or failed: later ones wait for it. */
  refused(session: string, seq: number): void {
    const n = this.from.get(session);
    if (n === undefined || seq < n) this.from.set(session, seq);
  }

  /** Sessions with a gap open. */
  get size(): number {
    return this.from.size;
  }
}
