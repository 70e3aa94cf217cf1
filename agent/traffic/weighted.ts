/** A backend by weight: `random()` in [0, 1) lands in one backend's share of the total. Pure. */
export function pickWeighted<T extends { readonly weight: number }>(items: readonly T[], random: () => number): T {
  let total = 0;
  for (const x of items) total += x.weight;
  let r = random() * total;
  for (const x of items) {
    if (x.weight === 0) continue;
    if (r < x.weight) return x;
    r -= x.weight;
  }
  // rounding at the very end of the range: the last backend with a weight
  return [...items].reverse().find((x) => x.weight > 0) ?? items[0]!;
}
