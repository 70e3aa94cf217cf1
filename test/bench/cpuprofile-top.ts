/**
 * Where an agent's CPU went: the top of a V8 .cpuprofile (from `node --cpu-prof`, e.g.
 * `node dist/test/bench/data-plane.js --cpu-prof DIR`), by self time per function, by
 * module, and inclusive time of the project's own functions.
 *   node dist/test/bench/cpuprofile-top.js FILE.cpuprofile [N] [--from-s S]
 * --from-s skips the first S seconds of the profile (start-up: module loading, key generation);
 * --to-s ignores what follows second S (one run of a bench that makes several).
 */
import * as fs from 'node:fs';
import type { Profile, ProfileNode } from './loop/stalls';

function moduleOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native / V8 builtins)';
  if (url.startsWith('node:')) return url;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `npm:${nm[1]}`;
  const d = /\/dist\/(.+)$/.exec(url);
  if (d) return d[1]!.replace(/\.js$/, '');
  return url;
}

function main(): void {
  const argv = process.argv.slice(2);
  const fromIdx = argv.indexOf('--from-s');
  const fromUs = fromIdx >= 0 ? Number(argv.splice(fromIdx, 2)[1]) * 1e6 : 0;
  const toIdx = argv.indexOf('--to-s');
  const toUs = toIdx >= 0 ? Number(argv.splice(toIdx, 2)[1]) * 1e6 : Infinity;
  const [file, nArg] = argv;
  if (!file || !Number.isFinite(fromUs) || Number.isNaN(toUs)) throw new Error('usage: cpuprofile-top FILE.cpuprofile [N] [--from-s S] [--to-s S]');
  const top = Number(nArg ?? 25);
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let total = 0;
  let at = 0;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    const dt = p.timeDeltas[i + 1] ?? 0; // a sample's time is the gap to the next one
    if (at < fromUs || at > toUs) continue;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const key = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${moduleOf(n.callFrame.url, n.callFrame.functionName)}:${n.callFrame.lineNumber + 1}`;
  const fnSelf = new Map<string, number>();
  const modSelf = new Map<string, number>();
  const fnIncl = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    fnSelf.set(key(n), (fnSelf.get(key(n)) ?? 0) + us);
    const m = moduleOf(n.callFrame.url, n.callFrame.functionName);
    modSelf.set(m, (modSelf.get(m) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur)!;
      if (!c.callFrame.url.includes('/dist/')) continue;
      const k = key(c);
      if (seen.has(k)) continue;
      seen.add(k);
      fnIncl.set(k, (fnIncl.get(k) ?? 0) + us);
    }
  }
  const idle = modSelf.get('(idle)') ?? 0;
  const busy = total - idle;
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const list = (title: string, m: Map<string, number>, n: number): void => {
    process.stdout.write(`\n${title}\n`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) process.stdout.write(`  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`);
  };
  process.stdout.write(`${file}${fromUs ? ` from ${fromUs / 1e6} s` : ''}${toUs < Infinity ? ` to ${toUs / 1e6} s` : ''}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(1)} s not idle (percentages are of that)\n`);
  // Busy stretches: consecutive samples with the event loop not idle (what a request waits behind).
  interface Stretch {
    startMs: number;
    us: number;
    self: Map<string, number>;
  }
  const stretches: Stretch[] = [];
  let cur: Stretch | undefined;
  at = 0;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (at < fromUs || at > toUs) continue;
    const n = byId.get(p.samples[i]!)!;
    if (n.callFrame.functionName === '(idle)') {
      if (cur) stretches.push(cur);
      cur = undefined;
      continue;
    }
    cur ??= { startMs: at / 1000, us: 0, self: new Map() };
    cur.us += dt;
    cur.self.set(key(n), (cur.self.get(key(n)) ?? 0) + dt);
  }
  if (cur) stretches.push(cur);
  list('self time by module', modSelf, 20);
  list('self time by function', fnSelf, top);
  list('inclusive time, project functions (dist/)', fnIncl, top);
  const over = (ms: number): Stretch[] => stretches.filter((x) => x.us >= ms * 1000);
  process.stdout.write(`\nbusy stretches (event loop not idle): ${stretches.length}; ≥2 ms: ${over(2).length}, ≥5 ms: ${over(5).length}, ≥10 ms: ${over(10).length}, ≥20 ms: ${over(20).length}\n`);
  for (const x of [...stretches].sort((a, b) => b.us - a.us).slice(0, 6)) {
    const tops = [...x.self].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, us]) => `${k} ${(us / 1000).toFixed(1)} ms`);
    process.stdout.write(`  ${(x.us / 1000).toFixed(1).padStart(6)} ms at ${(x.startMs / 1000).toFixed(2)} s: ${tops.join('; ')}\n`);
  }
}

main();
