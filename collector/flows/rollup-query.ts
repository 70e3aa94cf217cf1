/**
 * The service map's two reads of the flow store, as SQL: per-edge totals from the minute rollup
 * over a range of minutes, and the flows behind one edge or node. The edge-flow clauses match
 * exactly the records `edgeKeyOf` (rollup.ts) counts under that edge, so an edge's count and
 * its flow list agree.
 */
import { ROLLUP_COUNT_COLUMNS, type EndpointKind } from './rollup';

/** A map endpoint: a workload (namespace + name), an address, or a host outside the mesh. */
export interface MapEndpoint {
  kind: EndpointKind;
  namespace: string;
  name: string;
}

export interface EdgeTotalsQuery {
  /** first and last minute (epoch ms / 60 000), both inclusive */
  fromMinute: number;
  toMinute: number;
  /** flows touching one of these namespaces (source or destination) */
  namespaces?: readonly string[];
  verdicts?: readonly string[];
  protocols?: readonly string[];
  /** flows from or to this workload (`name` alone: in any namespace) */
  workload?: { namespace?: string; name: string };
}

/** One row: the sums for one (source, destination, protocol, verdict, policy). */
export interface EdgeTotalsRow {
  src_kind: EndpointKind;
  src_ns: string;
  src: string;
  dst_kind: EndpointKind;
  dst_ns: string;
  dst: string;
  protocol: string;
  verdict: string;
  policy: string;
  flows: number;
  requests: number;
  errors: number;
  bytes_sent: number;
  bytes_received: number;
  mtls: number;
  local: number;
  /** b0 … bN: request-duration buckets (rollup.ts LATENCY_BOUNDS_MS) */
  [bucket: `b${number}`]: number;
}

/** The key columns of an edge's totals, in the order the query selects and groups them. */
export const EDGE_KEY_COLUMNS = ['src_kind', 'src_ns', 'src', 'dst_kind', 'dst_ns', 'dst', 'protocol', 'verdict', 'policy'] as const;
/**
 * One row of edge totals as the query's columns in order (better-sqlite3's raw rows): the key
 * columns (EDGE_KEY_COLUMNS), then the sums (rollup.ts ROLLUP_COUNT_COLUMNS, from RAW_COUNTS on).
 * What the dashboard keeps and sums: arrays cost a fraction of objects of 35 fields.
 */
export type RawEdgeTotals = Array<string | number>;
export const RAW_COUNTS = EDGE_KEY_COLUMNS.length;

/** A raw row as a row object (tests, and graph.ts's callers with objects). */
export function rawOf(r: EdgeTotalsRow): RawEdgeTotals {
  return [...EDGE_KEY_COLUMNS.map((k) => r[k]), ...ROLLUP_COUNT_COLUMNS.map((c) => (r as unknown as Record<string, number>)[c] ?? 0)];
}

export interface Sql {
  sql: string;
  params: Array<string | number>;
}

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

/** `column IN (…)` for a non-empty list. */
function inList(column: string, values: readonly string[] | undefined, where: string[], params: Array<string | number>): void {
  if (!values || values.length === 0) return;
  where.push(`${column} IN (${marks(values.length)})`);
  params.push(...values);
}

export function edgeTotalsSql(q: EdgeTotalsQuery): Sql {
  const one = q.fromMinute === q.toMinute;
  const where = one ? ['minute = ?'] : ['minute >= ?', 'minute <= ?'];
  const params: Array<string | number> = one ? [q.fromMinute] : [q.fromMinute, q.toMinute];
  if (q.namespaces && q.namespaces.length > 0) {
    where.push(`(src_ns IN (${marks(q.namespaces.length)}) OR dst_ns IN (${marks(q.namespaces.length)}))`);
    params.push(...q.namespaces, ...q.namespaces);
  }
  inList('verdict', q.verdicts, where, params);
  inList('protocol', q.protocols, where, params);
  if (q.workload) {
    const w = q.workload;
    const side = (p: 'src' | 'dst'): string => `(${p}_kind = 'workload' AND ${p} = ?${w.namespace === undefined ? '' : ` AND ${p}_ns = ?`})`;
    where.push(`(${side('src')} OR ${side('dst')})`);
    const one = w.namespace === undefined ? [w.name] : [w.name, w.namespace];
    params.push(...one, ...one);
  }
  const keys = EDGE_KEY_COLUMNS.join(', ');
  // one minute holds one row per key: read in the primary key's order, nothing to sum or sort
  if (one) return { sql: `SELECT ${keys}, ${ROLLUP_COUNT_COLUMNS.join(', ')} FROM edge_minutes WHERE ${where.join(' AND ')} ORDER BY ${keys}`, params };
  const sums = ROLLUP_COUNT_COLUMNS.map((c) => `sum(${c}) AS ${c}`).join(', ');
  return { sql: `SELECT ${keys}, ${sums} FROM edge_minutes WHERE ${where.join(' AND ')} GROUP BY ${keys}`, params };
}

export interface EdgeFlowsQuery {
  source?: MapEndpoint;
  destination?: MapEndpoint;
  /** a node: flows with it on either side (instead of source/destination) */
  node?: MapEndpoint;
  /** only denied flows (a denied edge), or only the others (an edge's allowed side) */
  denied?: boolean;
  verdicts?: readonly string[];
  protocols?: readonly string[];
  /** epoch ms, inclusive / exclusive */
  since: number;
  until: number;
  /** only flows stored after this id (a live list asks for what is new) */
  afterId?: number;
  limit: number;
}

function sourceClause(e: MapEndpoint, params: Array<string | number>): string {
  if (e.kind === 'workload') {
    params.push(e.name, e.namespace);
    return '(src_workload = ? AND src_namespace = ?)';
  }
  params.push(e.name);
  return '((src_workload IS NULL OR src_namespace IS NULL) AND src_ip = ?)';
}

function destinationClause(e: MapEndpoint, params: Array<string | number>): string {
  switch (e.kind) {
    case 'workload':
      params.push(e.name, e.namespace);
      return "(direction = 'inbound' AND dst_workload = ? AND dst_namespace = ?)";
    case 'host':
      params.push(e.name);
      return "(direction = 'egress' AND dst_host = ?)";
    case 'ip':
      params.push(e.name);
      return "(dst_ip = ? AND (direction = 'egress' AND (dst_host IS NULL OR dst_host = '') OR direction = 'inbound' AND (dst_workload IS NULL OR dst_namespace IS NULL)))";
  }
}

export function edgeFlowsSql(q: EdgeFlowsQuery): Sql {
  const params: Array<string | number> = [];
  const where = ["direction IN ('inbound', 'egress')", 'time_ms >= ?', 'time_ms < ?'];
  params.push(q.since, q.until);
  if (q.node) {
    const p1: Array<string | number> = [];
    const a = sourceClause(q.node, p1);
    const b = q.node.kind === 'host' || q.node.kind === 'workload' || q.node.kind === 'ip' ? destinationClause(q.node, p1) : 'FALSE';
    where.push(`(${a} OR ${b})`);
    params.push(...p1);
  }
  if (q.source) where.push(sourceClause(q.source, params));
  if (q.destination) where.push(destinationClause(q.destination, params));
  if (q.denied !== undefined) where.push(q.denied ? "verdict = 'denied'" : "verdict <> 'denied'");
  inList('verdict', q.verdicts, where, params);
  inList('protocol', q.protocols, where, params);
  if (q.afterId !== undefined) {
    where.push('id > ?');
    params.push(q.afterId);
  }
  params.push(q.limit);
  return { sql: `SELECT id, json FROM flows WHERE ${where.join(' AND ')} ORDER BY time_ms DESC, id DESC LIMIT ?`, params };
}
