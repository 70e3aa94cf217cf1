/**
 * Kernel pod ids (palisade_pods, palisade_ifaces, counters): a pod keeps the id it was enrolled
 * with, across agent restarts, so counters the kernel kept while no agent ran stay its own. New
 * pods get the smallest ids no kept pod uses. Pure.
 */
export function assignPodIds(enrolled: ReadonlyMap<bigint, number>, wanted: readonly bigint[]): Map<bigint, number> {
  const out = new Map<bigint, number>();
  const used = new Set<number>();
  for (const cookie of wanted) {
    const id = enrolled.get(cookie);
    if (id !== undefined && id > 0 && !used.has(id)) {
      out.set(cookie, id);
      used.add(id);
    }
  }
  let next = 1;
  for (const cookie of wanted) {
    if (out.has(cookie)) continue;
    while (used.has(next)) next++;
    out.set(cookie, next);
    used.add(next);
  }
  return out;
}
