/**
 * The flows behind the selected edge or node, in `palisade observe`'s columns and the trace id
 * (a link to the user's tracing UI when the collector has `--trace-url`), following live: the
 * page asks every second for what was stored after the newest row it has.
 */
import { useEffect, useState } from 'preact/hooks';
import { DASHBOARD_API } from '../../../common/dashboard-api';
import type { FlowRecord } from '../../../common/flow';
import { traceLink } from '../../../common/trace-link';

type StoredFlow = FlowRecord & { id: number };
import { get } from './api';
import { bytes } from './format';

export interface FlowQuery {
  source?: string;
  target?: string;
  node?: string;
  denied?: boolean;
  verdicts?: string;
  protocols?: string;
  since: number;
  /** undefined: follow live (until now, asking again every second) */
  until?: number;
}

const MAX_ROWS = 500;
const side = (e: StoredFlow['source']): string => (e.workload !== undefined ? `${e.namespace ?? ''}/${e.workload}` : e.ip);

export function cells(f: StoredFlow): string[] {
  const d = f.destination;
  const dst = d.workload !== undefined ? side(d) : (d.host ?? d.ip);
  return [
    new Date(f.time).toISOString().replace('T', ' ').replace('Z', ''),
    f.node,
    f.direction,
    side(f.source),
    d.port === undefined ? dst : `${dst}:${d.port}`,
    f.protocol,
    f.http ? `${f.http.method} ${f.http.path} ${f.http.status}` : '–',
    f.verdict,
    f.policy ? `${f.reason} (${f.policy})` : f.reason,
    f.mtls ? 'yes' : 'no',
    `${bytes(f.bytesSent)} / ${bytes(f.bytesReceived)}`,
  ];
}

const COLUMNS = ['Time', 'Node', 'Direction', 'Source', 'Destination', 'Proto', 'HTTP', 'Verdict', 'Reason (policy)', 'mTLS', 'Bytes sent / received', 'Trace'];

/** The trace id, linked when there is a template; opened in a new tab that learns nothing of this page. */
function TraceCell(props: { traceId: string | undefined; traceUrl: string | undefined }) {
  const { traceId } = props;
  if (traceId === undefined) return <td>–</td>;
  const href = traceLink(props.traceUrl, traceId);
  return (
    <td class="trace" data-trace-id={traceId} title={traceId}>
      {href !== undefined ? (
        <a href={href} target="_blank" rel="noopener noreferrer">
          {traceId}
        </a>
      ) : (
        traceId
      )}
    </td>
  );
}

export function FlowTable(props: { query: FlowQuery; traceUrl?: string; onError(e: unknown): void }) {
  const [rows, setRows] = useState<StoredFlow[]>([]);
  const [loaded, setLoaded] = useState(false);
  const key = JSON.stringify(props.query);
  useEffect(() => {
    let stop = false;
    let have: StoredFlow[] = [];
    let timer: number | undefined;
    setRows([]);
    setLoaded(false);
    const q = props.query;
    const poll = async (): Promise<void> => {
      try {
        const after = have.length ? have[0]!.id : undefined;
        const until = q.until ?? Date.now() + 1;
        const r = await get<{ flows: StoredFlow[] }>(DASHBOARD_API.flows, {
          source: q.source,
          target: q.target,
          node: q.node,
          denied: q.denied === undefined ? undefined : String(q.denied),
          verdicts: q.verdicts,
          protocols: q.protocols,
          since: q.since,
          until,
          after,
          limit: MAX_ROWS,
        });
        if (stop) return;
        if (r.flows.length > 0 || after === undefined) {
          have = [...r.flows, ...have].slice(0, MAX_ROWS);
          setRows(have);
        }
        setLoaded(true);
      } catch (e) {
        if (!stop) props.onError(e);
      }
      if (!stop && q.until === undefined) timer = window.setTimeout(() => void poll(), 1000);
    };
    void poll();
    return () => {
      stop = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [key]);
  return (
    <div class="flows">
      <div class="flows-head">
        <strong data-flow-count={loaded ? String(rows.length) : undefined}>{loaded ? `${rows.length}${rows.length >= MAX_ROWS ? '+' : ''} flows` : 'loading flows…'}</strong>
        {props.query.until === undefined ? <span class="live">● following</span> : null}
      </div>
      <table class="flow-table">
        <thead>
          <tr>
            {COLUMNS.map((c) => (
              <th>{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((f) => (
            <tr data-flow-id={String(f.id)} class={f.verdict}>
              {cells(f).map((c) => (
                <td>{c}</td>
              ))}
              <TraceCell traceId={f.traceId} traceUrl={props.traceUrl} />
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
