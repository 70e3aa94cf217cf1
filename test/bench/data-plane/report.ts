/** From raw runs to figures: medians and spread over rounds, ratios to haproxy, targets, the table. */
import type { LoadgenResult, Workload } from './loadgen';
import { PATHS, type PathName, type ProxyName } from './stack';

export interface Sample {
  round: number;
  workload: string;
  path: PathName;
  result: LoadgenResult;
  /** CPU of the path's own proxies (both nodes) during the recorded period */
  proxyCpuUsec: number;
  /** CPU of the bench process (the in-process collector ingesting flow records) during the run */
  collectorCpuUsec: number;
  /** resident set of each proxy right after the run */
  rssAfterMb: Partial<Record<ProxyName, number>>;
  /** packets of the run the pod filters dropped ("reason direction" → packets; filter-drops.ts), when any */
  filterDrops?: DropTotals;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export type Better = 'lower' | 'higher';

export interface Metric {
  id: string;
  title: string;
  /** the table's first column */
  label: string;
  unit: string;
  better: Better;
  /** direct is a baseline (absolute) or not measured */
  directIs: 'absolute' | 'same' | 'none';
  decimals: number;
  values: Partial<Record<PathName, Stat>>;
  /** median(Palisade) / median(haproxy) */
  ratio: { 'palisade-l4'?: number; 'palisade-l7'?: number; 'palisade-routed'?: number };
}

export interface Target {
  what: string;
  value: number;
  limit: number;
  met: boolean;
  /** the comparison, as printed */
  detail: string;
}

export interface Summary {
  metrics: Metric[];
  rssMb: Partial<Record<ProxyName, number>>;
  /** peak RssAnon (the process's own memory, without the mapped node binary) */
  anonMb: Partial<Record<ProxyName, number>>;
  /** per path; `silentRuns`: runs in which nothing was answered at all (no byte of a body), which no other count shows */
  errors: Partial<Record<PathName, { errors: number; timeouts: number; connectErrors: number; non2xx: number; requests: number; silentRuns?: number; stalled?: number }>>;
  targets: Target[];
  /** runs whose packets the pod filters dropped: their figures are not the proxies' */
  filterDrops?: Array<{ round: number; workload: string; path: PathName; drops: DropTotals }>;
}

export function stat(xs: number[]): Stat | undefined {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

function perPath(samples: Sample[], workload: string, f: (s: Sample, direct: Sample | undefined) => number | undefined): Partial<Record<PathName, Stat>> {
  const out: Partial<Record<PathName, Stat>> = {};
  for (const p of PATHS) {
    const xs: number[] = [];
    for (const s of samples.filter((x) => x.workload === workload && x.path === p)) {
      const direct = samples.find((x) => x.workload === workload && x.path === 'direct' && x.round === s.round);
      const v = f(s, direct);
      if (v !== undefined) xs.push(v);
    }
    const st = stat(xs);
    if (st) out[p] = st;
  }
  return out;
}

function metric(m: Omit<Metric, 'ratio'>): Metric {
  const hap = m.values.haproxy?.median;
  const ratio: Metric['ratio'] = {};
  for (const p of ['palisade-l4', 'palisade-l7', 'palisade-routed'] as const) {
    const v = m.values[p]?.median;
    if (v !== undefined && hap !== undefined && hap > 0) ratio[p] = v / hap;
  }
  return { ...m, ratio };
}

/** A run in which nothing was answered: connections accepted and never served count as no error, so it is called out. */
export const silent = (r: LoadgenResult): boolean => r.body_bytes === 0 && r.status['2xx'] === 0;

/** Packets the pod filters dropped, "reason direction" → packets (filter-drops.ts reads them). */
export type DropTotals = Record<string, number>;

/** What moved between two readings (only the keys that did). */
export function dropsBetween(before: DropTotals, after: DropTotals): DropTotals {
  const out: DropTotals = {};
  for (const [k, n] of Object.entries(after)) if (n > (before[k] ?? 0)) out[k] = n - (before[k] ?? 0);
  return out;
}

/** "229 proxy-port from-pod, 3 tcp-no-connection from-pod" (empty when nothing moved). */
export function describeDrops(d: DropTotals): string {
  return Object.entries(d)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
}

export function summarize(samples: Sample[], workloads: Workload[], rssMb: Partial<Record<ProxyName, number>>, anonMb: Partial<Record<ProxyName, number>> = {}): Summary {
  const metrics: Metric[] = [];
  const has = (id: string): boolean => workloads.some((w) => w.id === id);
  for (const w of workloads.filter((x) => x.mode === 'rate')) {
    for (const q of ['p50', 'p90', 'p99'] as const) {
      metrics.push(
        metric({
          id: `${w.id}.added_${q}_us`,
          title: `${q} latency, added over direct (${w.title})`,
          label: `${q === 'p50' ? 'latency' : '       '} ${q} (${w.short})`,
          unit: 'µs',
          better: 'lower',
          directIs: 'absolute',
          decimals: 0,
          values: perPath(samples, w.id, (s, d) => (s.path === 'direct' ? s.result.latency_us[q] : d ? s.result.latency_us[q] - d.result.latency_us[q] : undefined)),
        }),
      );
    }
  }
  for (const w of workloads.filter((x) => x.mode === 'sat')) {
    metrics.push(
      metric({ id: `${w.id}.rps`, title: `max req/s (${w.title})`, label: `max req/s (${w.short})`, unit: 'req/s', better: 'higher', directIs: 'same', decimals: 0, values: perPath(samples, w.id, (s) => s.result.rps) }),
    );
  }
  for (const w of workloads.filter((x) => x.mode === 'conn')) {
    metrics.push(
      metric({ id: `${w.id}.cps`, title: `new connections/s (${w.title})`, label: `new conn/s (${w.short})`, unit: 'conn/s', better: 'higher', directIs: 'same', decimals: 0, values: perPath(samples, w.id, (s) => s.result.rps) }),
    );
  }
  for (const w of workloads.filter((x) => x.mode === 'bulk')) {
    metrics.push(
      metric({ id: `${w.id}.gbit_s`, title: `bulk throughput (${w.title})`, label: `bulk (${w.short})`, unit: 'Gbit/s', better: 'higher', directIs: 'same', decimals: 2, values: perPath(samples, w.id, (s) => s.result.gbit_s) }),
    );
  }
  const cpuPer1000 = (s: Sample): number | undefined => (s.path === 'direct' || s.result.requests === 0 ? undefined : s.proxyCpuUsec / 1e6 / (s.result.requests / 1000));
  for (const w of workloads.filter((x) => x.mode === 'rate' || x.mode === 'sat')) {
    metrics.push(
      metric({
        id: `${w.id}.proxy_cpu_s_per_1000`,
        title: `proxy CPU s per 1000 req, both nodes (${w.title})`,
        label: `proxy CPU s/1000 req (${w.short})`,
        unit: 'CPU s',
        better: 'lower',
        directIs: 'none',
        decimals: 3,
        values: perPath(samples, w.id, cpuPer1000),
      }),
    );
  }
  for (const w of workloads.filter((x) => x.mode === 'rate').slice(0, 1)) {
    metrics.push(
      metric({
        id: `${w.id}.collector_cpu_s_per_1000`,
        title: `collector CPU s per 1000 req, flow ingest, not a proxy (${w.title})`,
        label: `collector CPU s/1000 req (${w.short})`,
        unit: 'CPU s',
        better: 'lower',
        directIs: 'none',
        decimals: 3,
        values: perPath(samples, w.id, (s) => (s.path.startsWith('palisade') && s.result.requests ? s.collectorCpuUsec / 1e6 / (s.result.requests / 1000) : undefined)),
      }),
    );
  }
  const errors: Summary['errors'] = {};
  for (const p of PATHS) {
    const mine = samples.filter((s) => s.path === p);
    if (!mine.length) continue;
    const sum = (f: (r: LoadgenResult) => number): number => mine.reduce((a, s) => a + f(s.result), 0);
    errors[p] = {
      requests: sum((r) => r.requests),
      errors: sum((r) => r.errors),
      timeouts: sum((r) => r.timeouts),
      connectErrors: sum((r) => r.connect_errors),
      non2xx: sum((r) => r.requests - r.status['2xx']),
      silentRuns: mine.filter((s) => silent(s.result)).length,
      stalled: sum((r) => r.stalled ?? 0),
    };
  }

  const filterDrops = samples.filter((s) => s.filterDrops && Object.keys(s.filterDrops).length > 0).map((s) => ({ round: s.round, workload: s.workload, path: s.path, drops: s.filterDrops! }));

  const targets: Target[] = [];
  const get = (id: string): Metric | undefined => metrics.find((m) => m.id === id);
  const cpu = get('rate4.proxy_cpu_s_per_1000')?.values['palisade-l7']?.median;
  if (cpu !== undefined) {
    targets.push({ what: 'Palisade L7 proxies, CPU cores per 1000 req/s (both nodes; 1000 req/s, 4 conns)', value: cpu, limit: 0.25, met: cpu <= 0.25, detail: `${cpu.toFixed(3)} (target ≤ 0.25)` });
  }
  for (const id of ['rate4', 'rate64'].filter(has)) {
    const m = get(`${id}.added_p99_us`);
    const l7 = m?.values['palisade-l7']?.median;
    const hap = m?.values.haproxy?.median;
    if (l7 !== undefined && hap !== undefined) {
      const limit = 2 * Math.max(0, hap);
      const title = workloads.find((w) => w.id === id)!.title;
      targets.push({ what: `added p99 (${title}), Palisade L7 ≤ 2 × haproxy`, value: l7, limit, met: l7 <= limit, detail: `+${l7.toFixed(0)} µs vs 2 × ${hap >= 0 ? '+' : ''}${hap.toFixed(0)} µs = ${limit.toFixed(0)} µs (${hap > 0 ? `${(l7 / hap).toFixed(2)}×` : 'haproxy added nothing measurable'})` });
    }
  }
  for (const id of ['sat16.rps', 'sat64.rps', 'bulk.gbit_s']) {
    const m = get(id);
    const limit = id.startsWith('bulk') ? 0.7 : 0.8;
    for (const p of ['palisade-l4', 'palisade-l7'] as const) {
      const r = m?.ratio[p];
      if (r !== undefined) targets.push({ what: `${m!.title}, ${p} / haproxy`, value: r, limit, met: r >= limit, detail: `${r.toFixed(2)}× (target ≥ ${limit}×)` });
    }
  }
  for (const a of ['agent-1', 'agent-2'] as const) {
    const v = rssMb[a];
    if (v !== undefined) targets.push({ what: `${a} peak RSS under load`, value: v, limit: 80, met: v <= 80, detail: `${v.toFixed(1)} MB (target ≤ 80 MB)` });
    const an = anonMb[a];
    if (an !== undefined) targets.push({ what: `${a} peak anonymous memory under load`, value: an, limit: 40, met: an <= 40, detail: `${an.toFixed(1)} MB (target ≤ 40 MB)` });
  }
  return { metrics, rssMb, anonMb, errors, targets, filterDrops };
}

function fmt(v: number | undefined, decimals: number, sign = false): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  const s = v.toFixed(decimals);
  return sign && v >= 0 ? `+${s}` : s;
}

function cell(m: Metric, p: PathName): string {
  const st = m.values[p];
  if (!st) return '—';
  const sign = m.directIs === 'absolute' && p !== 'direct';
  const med = fmt(st.median, m.decimals, sign);
  if (st.n < 2) return med;
  return `${med} [${fmt(st.min, m.decimals, sign)}…${fmt(st.max, m.decimals, sign)}]`;
}

function ratioCell(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '—' : `${v.toFixed(2)}×`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** The printed table (also what the README's Performance section quotes). */
export function renderTable(summary: Summary, header: string[]): string {
  const rows: string[][] = [['metric', 'direct', 'palisade-l4', 'palisade-l7', 'palisade-routed', 'haproxy', 'L4/hap', 'L7/hap', 'routed/hap']];
  for (const m of summary.metrics) {
    rows.push([`${m.label} [${m.unit}]`, ...PATHS.map((p) => cell(m, p)), ratioCell(m.ratio['palisade-l4']), ratioCell(m.ratio['palisade-l7']), ratioCell(m.ratio['palisade-routed'])]);
  }
  const rss = summary.rssMb;
  const pal = [rss['agent-1'], rss['agent-2']].filter((x): x is number => x !== undefined);
  const hap = [rss['haproxy-1'], rss['haproxy-2']].filter((x): x is number => x !== undefined);
  const palMax = pal.length ? Math.max(...pal) : undefined;
  const hapMax = hap.length ? Math.max(...hap) : undefined;
  const rssRatio = palMax !== undefined && hapMax ? ratioCell(palMax / hapMax) : '—';
  const pair = (xs: number[]): string => (xs.length ? xs.map((x) => x.toFixed(1)).join(' / ') : '—');
  rows.push(['peak RSS, node 1 / node 2 [MB]', '—', pair(pal), pair(pal), pair(pal), pair(hap), rssRatio, rssRatio, rssRatio]);
  const an = summary.anonMb ?? {};
  const palAnon = [an['agent-1'], an['agent-2']].filter((x): x is number => x !== undefined);
  const hapAnon = [an['haproxy-1'], an['haproxy-2']].filter((x): x is number => x !== undefined);
  const anonRatio = palAnon.length && hapAnon.length ? ratioCell(Math.max(...palAnon) / Math.max(...hapAnon)) : '—';
  rows.push(['peak anonymous memory, node 1 / node 2 [MB]', '—', pair(palAnon), pair(palAnon), pair(palAnon), pair(hapAnon), anonRatio, anonRatio, anonRatio]);
  const errs = PATHS.map((p) => {
    const e = summary.errors[p];
    if (!e) return '—';
    const failed = String(e.errors + e.timeouts + e.connectErrors + e.non2xx);
    return `${failed}${e.stalled ? ` + ${e.stalled} stalled` : ''}${e.silentRuns ? ` + ${e.silentRuns} run(s) silent` : ''}`;
  });
  rows.push(['failed requests, all runs (silent: nothing answered; stalled: unanswered > 1 s at the end)', ...errs, '', '', '']);
  const lines = [
    ...header,
    'latency: direct absolute, the others added over direct in the same round [µs]; CPU: both nodes\' proxies; failed = errors + timeouts + non-2xx',
    '',
    table(rows),
    '',
    'targets (benchmark figures, not test assertions):',
  ];
  for (const t of summary.targets) lines.push(`  ${t.met ? 'met   ' : 'MISSED'}  ${t.what}: ${t.detail}`);
  if (summary.filterDrops?.length) {
    lines.push('', 'WARNING: the pod filters dropped packets of these runs (their figures are not the proxies\'):');
    for (const d of summary.filterDrops) lines.push(`  round ${d.round} ${d.workload} ${d.path}: ${describeDrops(d.drops)}`);
  }
  return lines.join('\n');
}
