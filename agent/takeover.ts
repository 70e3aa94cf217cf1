/**
 * Taking a node over from the agent that runs it (docs/architecture.md, "Restart and upgrade"):
 * claim the node (its lock, or the successor's place when the holder serves handovers), make
 * pending connections migrate between listeners, and — once this agent serves — ask the
 * predecessor to stop accepting, wait for its lock, and serve handovers in turn.
 */
import * as fs from 'node:fs';
import { describeCause, isPalisadeError, PalisadeError } from '../common/errors';
import type { Logger } from '../common/log';
import { askHolder, HandoverServer, type HandoverServerOptions, type HolderState } from './handover';
import { acquireNodeLock, type NodeLock } from './lock';

export interface Predecessor {
  pid: number;
  state: HolderState;
}

export type NodeClaim = { lock: NodeLock; predecessor?: undefined } | { lock?: undefined; predecessor: Predecessor };

/**
 * The node's lock; or, while another agent holds it and answers on its handover socket, the
 * place of its successor. Anything else that holds the lock (an uninstall, an agent not yet
 * serving) refuses the start as before: PALISADE_ERR_AGENT_RUNNING.
 */
export async function claimNode(runDir: string, node: string, log: Logger): Promise<NodeClaim> {
  try {
    return { lock: acquireNodeLock(runDir, node) };
  } catch (err) {
    if (!isPalisadeError(err) || err.code !== 'PALISADE_ERR_AGENT_RUNNING') throw err;
    let answer;
    try {
      answer = await askHolder(runDir, node, { type: 'hello' });
    } catch {
      throw err;
    }
    if (answer.type !== 'hello') throw err;
    log.info({ predecessor: answer.pid, state: answer.state }, 'another agent runs this node: starting as its successor');
    return { predecessor: { pid: answer.pid, state: answer.state } };
  }
}

const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req';

/**
 * net.ipv4.tcp_migrate_req (Linux 5.14+, per network namespace): connections waiting to be
 * accepted on a listener that closes move to another listener of its SO_REUSEPORT group instead
 * of being reset — what lets a draining agent close its listeners without refusing anything.
 */
export function enableRequestMigration(log: Logger, file = MIGRATE_REQ): boolean {
  try {
    if (fs.readFileSync(file, 'utf8').trim() !== '1') fs.writeFileSync(file, '1\n');
    return true;
  } catch (err) {
    log.warn(
      { reason: describeCause(err), sysctl: 'net.ipv4.tcp_migrate_req' },
      'cannot enable request migration: connections not yet accepted when this agent hands over may be reset',
    );
    return false;
  }
}

/** Wait until the lock is ours (the predecessor exits, or dies), polling; undefined if `cancelled` first. */
export async function waitForNodeLock(runDir: string, node: string, cancelled: () => boolean, intervalMs = 100): Promise<NodeLock | undefined> {
  for (;;) {
    if (cancelled()) return undefined;
    try {
      return acquireNodeLock(runDir, node);
    } catch (err) {
      if (!isPalisadeError(err) || err.code !== 'PALISADE_ERR_AGENT_RUNNING') throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * This agent serves now: the predecessor stops accepting (unless it already drains), then this
 * agent waits for the node lock and serves handovers itself. Rejects when the predecessor refuses
 * (another successor came first): this agent must then stop.
 */
export async function takeOver(
  predecessor: Predecessor,
  o: Omit<HandoverServerOptions, 'log'> & { log: Logger; cancelled: () => boolean; onReleased?: () => void },
): Promise<{ lock: NodeLock; handover: HandoverServer } | undefined> {
  if (predecessor.state === 'serving') {
    const answer = await askHolder(o.runDir, o.node, { type: 'take-over', pid: process.pid }).catch((err: unknown) => {
      // It may have exited meanwhile (its lock is then free): that is a handover too.
      o.log.warn({ reason: describeCause(err) }, 'the predecessor did not answer the take-over');
      return undefined;
    });
    if (answer?.type === 'refused') {
      throw new PalisadeError('PALISADE_ERR_AGENT_RUNNING', `the running agent (pid ${predecessor.pid}) refused the handover: ${answer.reason}`);
    }
    if (answer?.type === 'released') {
      o.log.info({ predecessor: answer.pid, drainDeadline: answer.drainDeadline }, 'took the node over: the predecessor drains');
      o.onReleased?.();
    }
  }
  const lock = await waitForNodeLock(o.runDir, o.node, o.cancelled);
  if (!lock) return undefined;
  o.log.info({ predecessor: predecessor.pid }, 'the predecessor has stopped: this agent holds the node');
  const handover = await HandoverServer.listen(o);
  return { lock, handover };
}
