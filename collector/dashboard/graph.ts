/**
 * The service map as data: rollup totals (collector/flows/rollup-query.ts, raw rows) → nodes grouped by
 * namespace and edges with their rates, error share, p95 and lock, capped so a big mesh stays
 * readable (docs/architecture.md "The dashboard"). Pure: the same rows give the same graph.
 */
import { RAW_COUNTS, rawOf, type EdgeTotalsRow, type RawEdgeTotals } from '../flows/rollup-query';
import { LATENCY_BUCKETS, quantile, type EndpointKind } from '../flows/rollup';
import type { GraphEdge, GraphNode, GraphResponse, Lock } from '../../common/dashboard-api';

/** Node id of a map endpoint: `w:<ns>/<name>`, `ip:<address>`, `host:<name>`. */
export function nodeId(kind: EndpointKind, ns: string, name: string): string {
  return kind === 'workload' ? `w:${ns}/${name}` : `${kind}:${name}`;
}

/** The endpoint a node id names (the inverse of nodeId), or undefined. */
export function parseNodeId(id: string): { kind: EndpointKind; namespace: string; name: string } | undefined {
  const colon = id.indexOf(':');
  if (colon < 0) return undefined;
  const kind = id.slice(0, colon);
  const rest = id.slice(colon + 1);
  if (rest.length === 0) return undefined;
  if (kind === 'w') {
    const slash = rest.indexOf('/');
    if (slash <= 0 || slash === rest.length - 1) return undefined;
    return { kind: 'workload', namespace: rest.slice(0, slash), name: rest.slice(slash + 1) };
  }
  if (kind === 'ip' || kind === 'host') return { kind, namespace: '', name: rest };
  return undefined;
}

export function lockOf(flows: number, secured: number): Lock {
  if (flows === 0 || secured === 0) return 'none';
  return secured >= flows ? 'full' : 'partial';
}

interface EdgeAcc {
  edge: GraphEdge;
  buckets: number[];
  secured: number;
  protocols: Set<string>;
  policies: Set<string>;
}

export interface BuildOptions {
  /** seconds the totals cover (for per-second rates) */
  seconds: number;
  /** at most this many edges (the busiest); the rest are counted in `hidden` */
  maxEdges: number;
}

/** The raw rows' columns after the keys: flows, requests, errors, bytes sent and received, mtls, local, then the buckets (rollup.ts ROLLUP_COUNT_COLUMNS). */
const FLOWS = RAW_COUNTS;
const B0 = RAW_COUNTS + 7;

export function buildGraph(rows: readonly EdgeTotalsRow[], opts: BuildOptions): Omit<GraphResponse, 'window'> {
  return buildGraphRaw(rows.map(rawOf), opts);
}

/** buildGraph of raw rows (rollup-query.ts RawEdgeTotals), in the rollup query's order. */
export function buildGraphRaw(rows: readonly RawEdgeTotals[], opts: BuildOptions): Omit<GraphResponse, 'window'> {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, EdgeAcc>();
  const seconds = Math.max(opts.seconds, 1);
  const node = (kind: EndpointKind, ns: string, name: string, side: 'src' | 'dst', egress: boolean): string => {
    const id = nodeId(kind, ns, name);
    let n = nodes.get(id);
    if (!n) {
      n = { id, kind: kind === 'workload' ? 'workload' : side === 'dst' && egress ? 'external' : 'address', name, flowsIn: 0, flowsOut: 0, denied: 0 };
      if (kind === 'workload') n.namespace = ns;
      nodes.set(id, n);
    }
    return id;
  };
  for (const r of rows) {
    const [srcKind, srcNs, src, dstKind, dstNs, dst, protocol, verdict, policy] = r as [EndpointKind, string, string, EndpointKind, string, string, string, string, string];
    const c = r as number[];
    const egress = dstKind !== 'workload';
    const source = node(srcKind, srcNs, src, 'src', false);
    const target = node(dstKind, dstNs, dst, 'dst', egress);
    const denied = verdict === 'denied';
    const id = `${source}->${target}${denied ? '#denied' : ''}`;
    let a = edges.get(id);
    if (!a) {
      a = {
        edge: { id, source, target, denied, egress, protocols: [], flows: 0, requests: 0, errors: 0, bytes: 0, rps: 0, bps: 0, errorRate: 0, lock: 'none', mtls: 0, local: 0, policies: [] },
        buckets: new Array<number>(LATENCY_BUCKETS).fill(0),
        secured: 0,
        protocols: new Set(),
        policies: new Set(),
      };
      edges.set(id, a);
    }
    const e = a.edge;
    const flows = c[FLOWS]!;
    e.flows += flows;
    e.requests += c[FLOWS + 1]!;
    e.errors += c[FLOWS + 2]!;
    e.bytes += c[FLOWS + 3]! + c[FLOWS + 4]!;
    e.mtls += c[FLOWS + 5]!;
    e.local += c[FLOWS + 6]!;
    a.secured += c[FLOWS + 5]! + c[FLOWS + 6]!;
    a.protocols.add(protocol);
    if (denied && policy !== '') a.policies.add(policy);
    for (let i = 0; i < LATENCY_BUCKETS; i++) a.buckets[i]! += c[B0 + i] ?? 0;
    nodes.get(source)!.flowsOut += flows;
    const t = nodes.get(target)!;
    t.flowsIn += flows;
    if (denied) t.denied += flows;
  }
  const all = [...edges.values()].map((a) => {
    const e = a.edge;
    e.protocols = [...a.protocols].sort();
    e.policies = [...a.policies].sort();
    e.rps = e.requests / seconds;
    e.fps = e.flows / seconds;
    e.bps = e.bytes / seconds;
    e.errorRate = e.requests > 0 ? e.errors / e.requests : e.flows > 0 ? e.errors / e.flows : 0;
    const p95 = quantile(a.buckets, 0.95);
    if (p95 !== undefined) e.p95Ms = Math.round(p95 * 10) / 10;
    e.lock = e.egress ? 'none' : lockOf(e.flows, a.secured);
    return e;
  });
  // the busiest edges first; denied ones always before allowed ones of equal weight
  all.sort((x, y) => y.flows - x.flows || Number(y.denied) - Number(x.denied) || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  const shown = all.slice(0, opts.maxEdges);
  const keep = new Set<string>();
  for (const e of shown) {
    keep.add(e.source);
    keep.add(e.target);
  }
  const shownNodes = [...nodes.values()].filter((n) => keep.has(n.id)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    nodes: shownNodes,
    edges: shown,
    namespaces: [...new Set([...nodes.values()].flatMap((n) => (n.namespace === undefined ? [] : [n.namespace])))].sort(),
    hidden: { edges: all.length - shown.length, nodes: nodes.size - shownNodes.length },
  };
}
