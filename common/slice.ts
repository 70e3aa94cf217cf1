/**
 * Work on the event loop done a slice at a time: a loop over thousands of items (policies, rows,
 * JSON items) calls `pass()` after each and yields to the event loop once the slice has lasted
 * about `ms`, so nothing else waits longer than that behind it.
 *
 * The slices of one turn of the event loop share its budget: the sliced steps of one change run
 * one after another (the frame encoded, then the answer, then its first bytes written) and others
 * resume in the same turn, each of which, timed alone, would take its own `ms` and add up to many.
 * The first sliced work of a turn starts its clock, and all of them yield once it has run `ms`.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';

/** When this turn's sliced work began (performance.now()), while `inTurn`. */
let turnStart = 0;
let inTurn = false;

/** This turn's start; the first call of a turn starts it (and a new turn, next check phase, clears it). */
function turnBegan(): number {
  if (!inTurn) {
    inTurn = true;
    turnStart = performance.now();
    setImmediate(() => (inTurn = false));
  }
  return turnStart;
}

/** Resolves at once when this turn's sliced work has lasted less than `ms`, else after one turn (between two steps of sliced work that are not loops). */
export const passTurn = (ms: number): Promise<void> => new Slice(ms).pass();

export class Slice {
  constructor(private readonly ms: number) {
    turnBegan();
  }

  /** Resolves at once while this turn's slice lasts, else after one turn of the event loop. */
  async pass(): Promise<void> {
    if (performance.now() - turnBegan() < this.ms) return;
    await yieldToLoop();
    turnBegan(); // what runs from here on counts in the new turn's slice
  }
}
