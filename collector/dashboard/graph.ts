/**
 * The service map as data: rollup totals (collector/flows/rollup-query.ts) → nodes grouped by
 * namespace and edges with their rates, error share, p95 and lock, capped so a big mesh stays
 * readable (docs/architecture.md "The dashboard"). Pure: the same rows give the same graph.
 */
import type { EdgeTotalsRow } from '../flows/rollup-query';
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

export function buildGraph(rows: readonly EdgeTotalsRow[], opts: BuildOptions): Omit<GraphResponse, 'window'> {
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
    const egress = r.dst_kind !== 'workload';
    const source = node(r.src_kind, r.src_ns, r.src, 'src', false);
    const target = node(r.dst_kind, r.dst_ns, r.dst, 'dst', egress);
    const denied = r.verdict === 'denied';
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
    e.flows += r.flows;
    e.requests += r.requests;
    e.errors += r.errors;
    e.bytes += r.bytes_sent + r.bytes_received;
    e.mtls += r.mtls;
    e.local += r.local;
    a.secured += r.mtls + r.local;
    a.protocols.add(r.protocol);
    if (denied && r.policy !== '') a.policies.add(r.policy);
    for (let i = 0; i < LATENCY_BUCKETS; i++) a.buckets[i]! += r[`b${i}`] ?? 0;
    nodes.get(source)!.flowsOut += r.flows;
    const t = nodes.get(target)!;
    t.flowsIn += r.flows;
    if (denied) t.denied += r.flows;
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
