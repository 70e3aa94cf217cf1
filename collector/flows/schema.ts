/**
 * The flow store's SQLite schema and the one mapping from a FlowRecord to a row. Every field a
 * filter can name has its own column (so queries use indexes, not JSON functions); `json` keeps
 * the record exactly as the agent sent it, with its origin in front (withOrigin), for answers.
 */
import type { FlowRecord } from '../../common/flow';

/** Bumped when the schema changes incompatibly; a database of another version is refused. */
export const SCHEMA_VERSION = 4;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS flows (
  id             INTEGER PRIMARY KEY,
  time_ms        INTEGER NOT NULL,
  node           TEXT    NOT NULL,
  direction      TEXT    NOT NULL,
  src_ip         TEXT    NOT NULL,
  src_workload   TEXT,
  src_namespace  TEXT,
  src_identity   TEXT,
  dst_ip         TEXT    NOT NULL,
  dst_port       INTEGER,
  dst_workload   TEXT,
  dst_namespace  TEXT,
  dst_identity   TEXT,
  dst_host       TEXT,
  protocol       TEXT    NOT NULL,
  verdict        TEXT    NOT NULL,
  reason         TEXT    NOT NULL,
  policy         TEXT,
  http_method    TEXT,
  http_path      TEXT,
  http_status    INTEGER,
  mtls           INTEGER NOT NULL,
  bytes_sent     INTEGER NOT NULL,
  bytes_received INTEGER NOT NULL,
  duration_ms    INTEGER NOT NULL,
  json           TEXT    NOT NULL,
  route          TEXT,
  grpc_status    INTEGER
);
-- newest-first listings, age retention (oldest first), since/until
CREATE INDEX IF NOT EXISTS flows_time ON flows (time_ms);
-- --from W / --to W by workload name or namespace/workload, newest first
CREATE INDEX IF NOT EXISTS flows_src_workload ON flows (src_workload, time_ms);
CREATE INDEX IF NOT EXISTS flows_dst_workload ON flows (dst_workload, time_ms);
-- --verdict denied, the most common question
CREATE INDEX IF NOT EXISTS flows_verdict ON flows (verdict, time_ms);

-- (flows_route, on the route column, is made by ROUTE_COLUMN: a version 1 or 2 store gains the column first;
-- a store before version 4 gains grpc_status by GRPC_STATUS_COLUMN)

-- Per (node, agent session): the last batch stored (duplicates are acknowledged, not stored) and
-- the agent's running total of flows it dropped.
CREATE TABLE IF NOT EXISTS lost (
  node       TEXT    NOT NULL,
  session    TEXT    NOT NULL,
  last_seq   INTEGER NOT NULL,
  lost       INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (node, session)
) WITHOUT ROWID;

-- Rows stored per node, kept with every insert and delete so stats never count the flows table.
CREATE TABLE IF NOT EXISTS node_rows (
  node   TEXT    PRIMARY KEY,
  stored INTEGER NOT NULL
) WITHOUT ROWID;
`;

/** Column order of INSERT_FLOW's parameters. */
export const INSERT_FLOW = `INSERT INTO flows (
  time_ms, node, direction, src_ip, src_workload, src_namespace, src_identity,
  dst_ip, dst_port, dst_workload, dst_namespace, dst_identity, dst_host,
  protocol, verdict, reason, policy, http_method, http_path, http_status,
  mtls, bytes_sent, bytes_received, duration_ms, json, route, grpc_status
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/**
 * Version 3 adds `route` (`namespace/name` of the HTTPRoute or GRPCRoute a flow went through, for
 * `observe --route`): a store of version 1 or 2 gains the column, filled from the stored records.
 */
export const ROUTE_COLUMN = {
  add: `ALTER TABLE flows ADD COLUMN route TEXT;
UPDATE flows SET route = json_extract(json, '$.traffic.route') WHERE instr(json, '"traffic"') > 0;`,
  index: 'CREATE INDEX IF NOT EXISTS flows_route ON flows (route, time_ms);',
} as const;

/**
 * Version 4 adds `grpc_status` (a gRPC call's grpc-status, `http.grpcStatus`): an older store gains
 * the column, filled from the stored records that carry one.
 */
export const GRPC_STATUS_COLUMN = `ALTER TABLE flows ADD COLUMN grpc_status INTEGER;
UPDATE flows SET grpc_status = json_extract(json, '$.http.grpcStatus') WHERE instr(json, '"grpcStatus"') > 0;`;

export type Cell = string | number | null;

/** INSERT_FLOW's parameter count. */
const FLOW_COLUMNS = 27;

/**
 * The INSERT_FLOW parameters for `f` (already validated by parseMessage / flowProblem), `timeMs`
 * its time (Date.parse), written into `row`: the writer fills one array for every insert.
 */
export function flowRow(f: FlowRecord, json: string, timeMs: number, row: Cell[] = new Array<Cell>(FLOW_COLUMNS)): Cell[] {
  const s = f.source;
  const d = f.destination;
  const h = f.http;
  row[0] = timeMs;
  row[1] = f.node;
  row[2] = f.direction;
  row[3] = s.ip;
  row[4] = s.workload ?? null;
  row[5] = s.namespace ?? null;
  row[6] = s.identity ?? null;
  row[7] = d.ip;
  row[8] = d.port ?? null;
  row[9] = d.workload ?? null;
  row[10] = d.namespace ?? null;
  row[11] = d.identity ?? null;
  row[12] = d.host ?? null;
  row[13] = f.protocol;
  row[14] = f.verdict;
  row[15] = f.reason;
  row[16] = f.policy ?? null;
  row[17] = h ? h.method : null;
  row[18] = h ? h.path : null;
  row[19] = h ? h.status : null;
  row[20] = f.mtls ? 1 : 0;
  row[21] = f.bytesSent;
  row[22] = f.bytesReceived;
  row[23] = f.durationMs;
  row[24] = json;
  row[25] = f.traffic ? f.traffic.route : null;
  row[26] = h?.grpcStatus ?? null;
  return row;
}

/**
 * The stored JSON of record `index` of an agent's batch: the record as the agent sent it, with its
 * origin (`SESSION/SEQ/INDEX`, common/flows-api.ts StoredFlow) in front, without parsing it again.
 */
export function withOrigin(json: string, session: string, seq: number, index: number): string {
  return `{"origin":"${session}/${seq}/${index}"${json.length > 2 ? ',' : ''}${json.slice(1)}`;
}

/** The stored JSON of every record of an agent's batch (the session id is the agent's, checked: [A-Za-z0-9._-], so it needs no escaping). */
export function storedJsons(batch: { session: string; seq: number; flows: readonly FlowRecord[] }): string[] {
  return batch.flows.map((f, i) => withOrigin(JSON.stringify(f), batch.session, batch.seq, i));
}

/** `{"id":N,…record}` without parsing the stored JSON again: a StoredFlow's wire form. */
export function storedFlowJson(id: number, json: string): string {
  return json.length > 2 ? `{"id":${id},${json.slice(1)}` : `{"id":${id}}`;
}
