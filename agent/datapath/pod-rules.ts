/**
 * Writing the UDP/ICMP rules the per-pod filters read (palisade_rules) so that no packet ever
 * sees half a change: the new set is written whole under the other generation, then one word
 * (palisade_rules_gen[0]) switches the filters over, then the old generation is deleted. A set
 * that does not fit is refused and the one in force stays.
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

/** Delete every entry of one generation. */
function clearGeneration(fd: number, gen: number): number {
  const doomed: Buffer[] = [];
  let k: Buffer | null = null;
  for (let i = 0; i < 1 << 20; i++) {
    k = native.mapNextKey(fd, k, pc.RULE_KEY_SIZE);
    if (!k) break;
    if (pc.decodeRuleKeyGen(k) === gen) doomed.push(k);
  }
  for (const key of doomed) native.mapDelete(fd, key);
  return doomed.length;
}

/** Replace the rules in force with `rules`; returns the generation now in force. */
export function writeRuleSet(h: WireHandles, rules: ReadonlyArray<Omit<pc.RuleEntry, 'gen'>>): number {
  if (rules.length > MAX_RULES_PER_GENERATION) {
    throw new PalisadeError(
      'PALISADE_ERR_BPF_MAP',
      `${rules.length} UDP/ICMP rule entries do not fit the kernel's table (at most ${MAX_RULES_PER_GENERATION}); the rules in force stay`,
    );
  }
  const fd = h.mapFd('palisade_rules');
  const current = rulesGeneration(h);
  const next = current ^ 1;
  clearGeneration(fd, next); // left by a writer that stopped half-way
  try {
    for (const r of rules) native.mapUpdate(fd, pc.encodeRuleKey({ ...r, gen: next }), pc.encodeRule(r));
  } catch (err) {
    clearGeneration(fd, next);
    throw new PalisadeError('PALISADE_ERR_BPF_MAP', `cannot write the UDP/ICMP rules: ${describeCause(err)}; the rules in force stay`, { cause: err });
  }
  native.mapUpdate(h.mapFd('palisade_rules_gen'), ZERO, pc.encodeU32(next));
  clearGeneration(fd, current);
  return next;
}
