/**
 * What to write to the kernel's UDP/ICMP rules (pure). The rules are compared per pod with what is
 * in force; when the whole wanted set cannot be written (too many entries, a map error) the
 * writer falls back to the fail-closed set: the pods whose rules did not change keep them, the
 * pods whose rules changed get no entry at all, which the per-pod filters read as deny (no rule:
 * dropped, and a learned flow is checked again at the switch). A change that cannot be written
 * leaves its pods with less than either the old or the new rules allow, never more, until a
 * retry writes it. docs/architecture.md "UDP and ICMP in the kernel".
 */
import type { KernelRule, RuleRef } from './kernel-rules';

/** One pod's rules in a form two compilations can be compared by (same inputs, same text). */
export function podSignature(rules: readonly KernelRule[]): string {
  return rules.map((r) => `${r.direction}|${r.protocol}|${r.port}|${r.cidr}|${r.verdict}|${refKey(r.ref)}`).join('\n');
}

/** What makes two rule refs the same (their number in the kernel). */
export function refKey(ref: RuleRef): string {
  return `${ref.reason}|${ref.policy ?? ''}|${ref.rule}`;
}

/** The rules by pod, in compilation order. */
export function rulesByPod(rules: readonly KernelRule[]): Map<number, KernelRule[]> {
  const out = new Map<number, KernelRule[]>();
  for (const r of rules) {
    const list = out.get(r.podId);
    if (list) list.push(r);
    else out.set(r.podId, [r]);
  }
  return out;
}

/** Per pod, the signature of its rules (a pod without rules is absent). */
export function signatures(byPod: ReadonlyMap<number, readonly KernelRule[]>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [pod, rules] of byPod) out.set(pod, podSignature(rules));
  return out;
}

/** Pods whose rules in force differ from the wanted ones (added, removed or changed). */
export function changedPods(inForce: ReadonlyMap<number, string>, wanted: ReadonlyMap<number, string>): number[] {
  const out = new Set<number>();
  for (const [pod, sig] of wanted) if (inForce.get(pod) !== sig) out.add(pod);
  for (const pod of inForce.keys()) if (!wanted.has(pod)) out.add(pod);
  return [...out].sort((a, b) => a - b);
}

/** The fail-closed set: the wanted rules of every pod not in `changed`; none for those in it. */
export function failClosedRules(wanted: ReadonlyMap<number, readonly KernelRule[]>, changed: readonly number[]): KernelRule[] {
  const closed = new Set(changed);
  const out: KernelRule[] = [];
  for (const [pod, rules] of wanted) if (!closed.has(pod)) out.push(...rules);
  return out;
}

/** Wait before the next try after `failures` failed tries in a row: 1 s doubling, at most 60 s. */
export function retryDelayMs(failures: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, Math.min(failures - 1, 6)));
}
