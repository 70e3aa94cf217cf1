/**
 * Per-minute edge rollups: what the service map reads instead of the flows themselves
 * (docs/architecture.md "Edge rollups"). Every stored batch adds its flows, in the same
 * transaction, to one row per (minute, source, destination, protocol, verdict, policy): counts,
 * bytes, how many were secured (mTLS or node-local), and the HTTP request durations as a
 * fixed-bucket histogram. Only `inbound` records (the destination's view, as Kiali reads
 * reporter="destination") and `egress` records count: an `outbound` record is the source side of
 * a connection whose `inbound` record is counted too.
 */
import type Database from 'better-sqlite3';
import type { FlowRecord } from '../../common/flow';

/** Upper bounds (ms, inclusive) of the request-duration buckets; one more bucket holds the rest. */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000,
];
export const LATENCY_BUCKETS = LATENCY_BOUNDS_MS.length + 1;
const BUCKET_COLUMNS = Array.from({ length: LATENCY_BUCKETS }, (_, i) => `b${i}`);

/** Rollups are kept this long at most (the map's longest window is 24 h). */
export const MAX_ROLLUP_RETENTION_MS = 48 * 3_600_000;
export const MINUTE_MS = 60_000;
/**
 * The current minute and the one before are live: a batch may still add to them. Older minutes
 * are settled (the dashboard keeps their sums); a batch adding to one is counted as late.
 */
export const LIVE_MINUTES = 2;

export type EndpointKind = 'workload' | 'ip' | 'host';

/** One rollup row's key: who talked to whom, how, with what outcome, in which minute. */
export interface EdgeKey {
  minute: number;
  srcKind: EndpointKind;
  /** '' when the endpoint has no namespace (an address, a host outside the mesh) */
  srcNs: string;
  src: string;
  dstKind: EndpointKind;
  dstNs: string;
  dst: string;
  protocol: string;
  verdict: string;
  /** the deciding policy of a denial ('' otherwise) */
  policy: string;
}

export interface EdgeCounts {
  flows: number;
  requests: number;
  errors: number;
  bytesSent: number;
  bytesReceived: number;
  /** flows over mTLS */
  mtls: number;
  /** flows that never left the node (same-node, identity from the kernel) */
  local: number;
  buckets: number[];
}

export const SCHEMA_ROLLUP = `
CREATE TABLE IF NOT EXISTS edge_minutes (
  minute         INTEGER NOT NULL,
  src_kind       TEXT    NOT NULL,
  src_ns         TEXT    NOT NULL,
  src            TEXT    NOT NULL,
  dst_kind       TEXT    NOT NULL,
  dst_ns         TEXT    NOT NULL,
  dst            TEXT    NOT NULL,
  protocol       TEXT    NOT NULL,
  verdict        TEXT    NOT NULL,
  policy         TEXT    NOT NULL,
  flows          INTEGER NOT NULL,
  requests       INTEGER NOT NULL,
  errors         INTEGER NOT NULL,
  bytes_sent     INTEGER NOT NULL,
  bytes_received INTEGER NOT NULL,
  mtls           INTEGER NOT NULL,
  local          INTEGER NOT NULL,
  ${BUCKET_COLUMNS.map((c) => `${c} INTEGER NOT NULL`).join(', ')},
  PRIMARY KEY (minute, src_kind, src_ns, src, dst_kind, dst_ns, dst, protocol, verdict, policy)
) WITHOUT ROWID;
`;

const KEY_COLUMNS = ['minute', 'src_kind', 'src_ns', 'src', 'dst_kind', 'dst_ns', 'dst', 'protocol', 'verdict', 'policy'];
const COUNT_COLUMNS = ['flows', 'requests', 'errors', 'bytes_sent', 'bytes_received', 'mtls', 'local', ...BUCKET_COLUMNS];
export const ROLLUP_COUNT_COLUMNS: readonly string[] = COUNT_COLUMNS;

const UPSERT = `INSERT INTO edge_minutes (${[...KEY_COLUMNS, ...COUNT_COLUMNS].join(', ')})
  VALUES (${[...KEY_COLUMNS, ...COUNT_COLUMNS].map(() => '?').join(', ')})
  ON CONFLICT (${KEY_COLUMNS.join(', ')}) DO UPDATE SET ${COUNT_COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`;

/** The bucket a duration falls in. */
export function latencyBucket(ms: number): number {
  let lo = 0;
  let hi = LATENCY_BOUNDS_MS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ms <= LATENCY_BOUNDS_MS[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * The q-quantile (0..1) of a bucket histogram, interpolated linearly inside its bucket as
 * Prometheus' histogram_quantile does; undefined when it is empty. The last bucket has no upper
 * bound: a quantile there is its lower bound.
 */
export function quantile(buckets: readonly number[], q: number): number | undefined {
  let total = 0;
  for (const c of buckets) total += c;
  if (total === 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const c = buckets[i]!;
    if (c > 0 && seen + c >= rank) {
      const lower = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]!;
      if (i >= LATENCY_BOUNDS_MS.length) return lower;
      const upper = LATENCY_BOUNDS_MS[i]!;
      return lower + ((upper - lower) * (rank - seen)) / c;
    }
    seen += c;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1];
}

/** The rollup key of a flow record, or undefined for records the map does not count. */
export function edgeKeyOf(f: FlowRecord, timeMs: number): EdgeKey | undefined {
  if (f.direction !== 'inbound' && f.direction !== 'egress') return undefined;
  const s = f.source;
  const d = f.destination;
  const srcWorkload = s.workload !== undefined && s.namespace !== undefined;
  let dstKind: EndpointKind;
  let dstNs = '';
  let dst: string;
  if (f.direction === 'inbound' && d.workload !== undefined && d.namespace !== undefined) {
    dstKind = 'workload';
    dstNs = d.namespace;
    dst = d.workload;
  } else if (f.direction === 'egress' && d.host !== undefined && d.host !== '') {
    dstKind = 'host';
    dst = d.host;
  } else {
    dstKind = 'ip';
    dst = d.ip;
  }
  return {
    minute: Math.floor(timeMs / MINUTE_MS),
    srcKind: srcWorkload ? 'workload' : 'ip',
    srcNs: srcWorkload ? s.namespace! : '',
    src: srcWorkload ? s.workload! : s.ip,
    dstKind,
    dstNs,
    dst,
    protocol: f.protocol,
    verdict: f.verdict,
    policy: f.verdict === 'denied' ? (f.policy ?? '') : '',
  };
}

const keyString = (k: EdgeKey): string =>
  `${k.minute}\u0000${k.srcKind}\u0000${k.srcNs}\u0000${k.src}\u0000${k.dstKind}\u0000${k.dstNs}\u0000${k.dst}\u0000${k.protocol}\u0000${k.verdict}\u0000${k.policy}`;

export const emptyCounts = (): EdgeCounts => ({ flows: 0, requests: 0, errors: 0, bytesSent: 0, bytesReceived: 0, mtls: 0, local: 0, buckets: new Array<number>(LATENCY_BUCKETS).fill(0) });

/** Add one flow to `c`. */
export function addFlow(c: EdgeCounts, f: FlowRecord): void {
  c.flows++;
  c.bytesSent += f.bytesSent;
  c.bytesReceived += f.bytesReceived;
  if (f.mtls) c.mtls++;
  else if (f.direction === 'inbound' && f.source.workload !== undefined) c.local++;
  if (f.http) {
    c.requests++;
    c.buckets[latencyBucket(f.durationMs)]!++;
  }
  if (f.verdict === 'error' || (f.http !== undefined && f.http.status >= 500)) c.errors++;
}

/** A batch's flows grouped by rollup key (pure: what `EdgeRollup.add` writes). */
export function rollUp(flows: readonly FlowRecord[], times: readonly number[]): Map<string, { key: EdgeKey; counts: EdgeCounts }> {
  const out = new Map<string, { key: EdgeKey; counts: EdgeCounts }>();
  for (let i = 0; i < flows.length; i++) {
    const key = edgeKeyOf(flows[i]!, times[i]!);
    if (key === undefined) continue;
    const ks = keyString(key);
    let e = out.get(ks);
    if (e === undefined) out.set(ks, (e = { key, counts: emptyCounts() }));
    addFlow(e.counts, flows[i]!);
  }
  return out;
}

/** The rollup table's writer; `add` runs inside the flow store's batch transaction. */
export class EdgeRollup {
  private readonly upsert: Database.Statement;
  private readonly prune: Database.Statement<[number]>;

  constructor(db: Database.Database) {
    db.exec(SCHEMA_ROLLUP);
    this.upsert = db.prepare(UPSERT);
    this.prune = db.prepare('DELETE FROM edge_minutes WHERE minute < ?');
  }

  add(flows: readonly FlowRecord[], times: readonly number[]): void {
    for (const { key: k, counts: c } of rollUp(flows, times).values()) {
      this.upsert.run(k.minute, k.srcKind, k.srcNs, k.src, k.dstKind, k.dstNs, k.dst, k.protocol, k.verdict, k.policy, c.flows, c.requests, c.errors, c.bytesSent, c.bytesReceived, c.mtls, c.local, ...c.buckets);
    }
  }

  /** Delete the minutes before `cutoffMs`; resolves to rows deleted. */
  pruneBefore(cutoffMs: number): number {
    return this.prune.run(Math.floor(cutoffMs / MINUTE_MS)).changes;
  }
}
