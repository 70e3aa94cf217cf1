/**
 * FlowFilters → one SQL WHERE clause with its parameters. The semantics are those of
 * `matchesFilters` in common/flows-api.ts (the follow stream uses that one); the integration tests
 * check both against the same flows.
 */
import { endpointMatch, type FlowFilters } from '../../common/flows-api';

export interface SqlWhere {
  /** `WHERE …` or the empty string */
  where: string;
  params: Array<string | number>;
}

function endpoint(side: 'src' | 'dst', value: string, clauses: string[], params: Array<string | number>): void {
  const m = endpointMatch(value);
  switch (m.kind) {
    case 'identity':
      clauses.push(`${side}_identity = ?`);
      params.push(m.identity);
      break;
    case 'ip':
      clauses.push(`${side}_ip = ?`);
      params.push(m.ip);
      break;
    case 'namespaced':
      clauses.push(`${side}_workload = ? AND ${side}_namespace = ?`);
      params.push(m.workload, m.namespace);
      break;
    case 'workload':
      clauses.push(`${side}_workload = ?`);
      params.push(m.workload);
      break;
  }
}

/** The WHERE clause for `f` (`limit` is not part of it). Text comparisons are exact (BINARY). */
export function whereClause(f: FlowFilters): SqlWhere {
  const clauses: string[] = [];
  const params: Array<string | number> = [];
  const eq = (column: string, v: string | undefined): void => {
    if (v === undefined) return;
    clauses.push(`${column} = ?`);
    params.push(v);
  };
  eq('node', f.node);
  eq('direction', f.direction);
  eq('verdict', f.verdict);
  eq('protocol', f.protocol);
  if (f.from !== undefined) endpoint('src', f.from, clauses, params);
  if (f.to !== undefined) endpoint('dst', f.to, clauses, params);
  if (f.httpPath !== undefined) {
    if (f.httpPath.endsWith('*')) {
      // not LIKE/GLOB: LIKE ignores ASCII case and both give meaning to characters in paths
      const prefix = f.httpPath.slice(0, -1);
      clauses.push('substr(http_path, 1, length(?)) = ?');
      params.push(prefix, prefix);
    } else {
      clauses.push('http_path = ?');
      params.push(f.httpPath);
    }
  }
  if (f.route !== undefined) {
    // `namespace/name` exactly, or a bare name in any namespace (a namespace never holds a '/')
    clauses.push(f.route.includes('/') ? 'route = ?' : "substr(route, instr(route, '/') + 1) = ?");
    params.push(f.route);
  }
  if (f.since !== undefined) {
    clauses.push('time_ms >= ?');
    params.push(f.since);
  }
  if (f.until !== undefined) {
    clauses.push('time_ms < ?');
    params.push(f.until);
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}
