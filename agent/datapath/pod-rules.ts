/**
 * Writing the UDP/ICMP rules the per-pod filters read (palisade_rules) so that no packet ever
 * sees half a change: the new set is written whole under the other generation, then one word
 * (palisade_rules_gen[0]) switches the filters over, then the old generation is deleted. A set
 * that does not fit, or cannot be written, is refused: the one in force stays, and the caller
 * decides what to write instead (agent/wire/wire-enforcement.ts fails closed).
 */
import { PalisadeError, describeCause } from '../../common/errors';
import { native } from '../../native';
import * as pc from './pod-codec';
import type { WireHandles } from './pod-wire';

/** One generation may use half the map: the other half holds the one in force while it is written. */
export const MAX_RULES_PER_GENERATION = 32768;

const ZERO = pc.encodeU32(0);

export function rulesGeneration(h: WireHandles): number {
  const v = native.mapLookup(h.mapFd('palisade_rules_gen'), ZERO, 4);
  return v ? v.readUInt32LE(0) & 1 : 0;
}

/** Entries written between two yields to the event loop. */
const SLICE = 1024;

const loopTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Delete every entry of one generation. */
async function clearGeneration(fd: number, gen: number): Promise<number> {
  const doomed: Buffer[] = [];
  let k: Buffer | null = null;
  for (let i = 0; i < 1 << 20; i++) {
    k = native.mapNextKey(fd, k, pc.RULE_KEY_SIZE);
    if (!k) break;
    if (pc.decodeRuleKeyGen(k) === gen) doomed.push(k);
    if (i % SLICE === SLICE - 1) await loopTurn(); // only this writer changes the table: the walk goes on where it was
  }
  for (let i = 0; i < doomed.length; i++) {
    native.mapDelete(fd, doomed[i]!);
    if (i % SLICE === SLICE - 1) await loopTurn();
  }
  return doomed.length;
}

/**
 * Replace the rules in force with `rules`; returns the generation now in force. The entries go
 * in SLICE at a time with the event loop free in between (the new generation is invisible until
 * the switch). `max` (at most MAX_RULES_PER_GENERATION) is the agent's own bound. One writer at
 * a time: the caller serializes.
 */
export async function writeRuleSet(h: WireHandles, rules: ReadonlyArray<Omit<pc.RuleEntry, 'gen'>>, max = MAX_RULES_PER_GENERATION): Promise<number> {
  const limit = Math.min(max, MAX_RULES_PER_GENERATION);
  if (rules.length > limit) {
    throw new PalisadeError('PALISADE_ERR_BPF_MAP', `${rules.length} UDP/ICMP rule entries do not fit the kernel's table (at most ${limit})`);
  }
  const fd = h.mapFd('palisade_rules');
  const current = rulesGeneration(h);
  const next = current ^ 1;
  try {
    await clearGeneration(fd, next); // left by a writer that stopped half-way
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      native.mapUpdate(fd, pc.encodeRuleKey({ ...r, gen: next }), pc.encodeRule(r));
      if (i % SLICE === SLICE - 1) await loopTurn();
    }
  } catch (err) {
    await clearGeneration(fd, next).catch(() => undefined);
    throw new PalisadeError('PALISADE_ERR_BPF_MAP', `cannot write the UDP/ICMP rules: ${describeCause(err)}`, { cause: err });
  }
  native.mapUpdate(h.mapFd('palisade_rules_gen'), ZERO, pc.encodeU32(next));
  await clearGeneration(fd, current);
  return next;
}
