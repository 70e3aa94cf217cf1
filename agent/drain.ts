/**
 * The drain of a stopping agent (docs/architecture.md, "Restart and upgrade"): stop accepting on
 * every listener, let established connections finish up to a deadline, then close what is left
 * — each such connection's flow records `drain-deadline`.
 */
import type { Logger } from '../common/log';
import { ProxyClosure } from './proxy/proxy-closure';
import type { ConnectionTracker } from './proxy/tracker';

/** A listener of the proxy as the drain sees it. */
export interface Drainable {
  stopAccepting(): void;
  /** connections (or sessions) still open */
  readonly live: number;
  destroyAll(err: Error): void;
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
export const MAX_DRAIN_TIMEOUT_MS = 10 * 60_000;

/** How often the drain looks whether everything has ended. */
const POLL_MS = 50;

export async function drainConnections(o: {
  listeners: readonly Drainable[];
  tracker: ConnectionTracker;
  deadline: number;
  log: Logger;
}): Promise<{ closedAtDeadline: number }> {
  for (const l of o.listeners) l.stopAccepting();
  const open = (): number => o.listeners.reduce((n, l) => n + l.live, 0) + o.tracker.size;
  while (open() > 0 && Date.now() < o.deadline) await sleep(Math.min(POLL_MS, Math.max(1, o.deadline - Date.now())));
  const left = open();
  if (left === 0) return { closedAtDeadline: 0 };
  const closure = new ProxyClosure({ verdict: 'error', reason: 'drain-deadline' });
  // Tracked connections first: their flows name the closure; then whatever else is open.
  o.tracker.closeAll(closure);
  for (const l of o.listeners) l.destroyAll(closure);
  o.log.warn({ open: left }, 'drain deadline: closed the connections still open');
  // Let the close events run, so their flow records are made before the last flush.
  for (let i = 0; i < 20 && open() > 0; i++) await sleep(POLL_MS);
  return { closedAtDeadline: left };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
