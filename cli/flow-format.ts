/**
 * How `palisade observe` prints flows: an aligned table (colour only on a terminal), one JSON
 * array, or JSON lines. Everything in a flow came from the network (paths, hosts, workload
 * names), so table cells show control characters escaped and JSON escapes the ones
 * JSON.stringify leaves raw: nothing a client sends can drive the operator's terminal.
 */
import { printable } from '../common/api-client';
import type { FlowEndpoint, FlowRecord, FlowVerdict } from '../common/flow';

export const OUTPUT_FORMATS = ['table', 'json', 'jsonl'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** REQUEST: an HTTP request line and status, or a DNS query's type, rcode and answers. */
export const FLOW_COLUMNS = ['TIME', 'NODE', 'DIRECTION', 'SOURCE', 'DESTINATION', 'PROTO', 'REQUEST', 'VERDICT', 'REASON/POLICY', 'MTLS', 'BYTES'] as const;
const VERDICT_COLUMN = FLOW_COLUMNS.indexOf('VERDICT');

/**
 * Per column: the narrowest it is drawn when rows will follow the page (`-f`), so that they
 * mostly line up with it, and the widest a cell may be before it is cut with `…`.
 */
const FOLLOW_MIN_WIDTH = [24, 8, 9, 20, 28, 5, 24, 7, 40, 4, 0];
const MAX_WIDTH = [24, 32, 9, 48, 64, 5, 64, 7, 64, 4, 24];

const COLOURS: Record<FlowVerdict, string> = { allowed: '\x1b[32m', denied: '\x1b[31m', audit: '\x1b[33m', error: '\x1b[1;31m' };
const RESET = '\x1b[0m';

/** Colour when stdout is a terminal and the user has not opted out (https://no-color.org, TERM=dumb). */
export function useColour(opts: { isTTY: boolean; env: Readonly<Record<string, string | undefined>> }): boolean {
  return opts.isTTY && !opts.env.NO_COLOR && opts.env.TERM !== 'dumb';
}

/** `512B`, `1.5K`, `12M`, `3.0G`. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['K', 'M', 'G', 'T'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

const hostPort = (host: string, port: number | undefined): string =>
  port === undefined ? host : `${host.includes(':') ? `[${host}]` : host}:${port}`;

function workloadName(e: FlowEndpoint): string | undefined {
  if (!e.workload) return undefined;
  return e.namespace ? `${e.namespace}/${e.workload}` : e.workload;
}

/** The cells of one flow, unpadded and uncoloured (but not yet cut to the column width). */
export function flowCells(f: FlowRecord): string[] {
  const t = Date.parse(f.time);
  const source = workloadName(f.source) ?? f.source.ip;
  const destination = hostPort(workloadName(f.destination) ?? f.destination.host ?? f.destination.ip, f.destination.port);
  const grpc = f.http?.grpcStatus === undefined ? '' : ` grpc-status ${f.http.grpcStatus}`;
  const request = f.http ? `${f.http.method} ${f.http.path} ${f.http.status}${grpc}` : f.dns ? [f.dns.type, f.dns.rcode, ...f.dns.answers].join(' ') : '-';
  let reason = f.reason;
  if (f.policy) reason += ` (${f.policy})`;
  if (f.audit && f.audit.policy !== f.policy) reason += ` audit:${f.audit.policy}`;
  // An agent's refusal summary (that many refused connections) or a packet summary (that many packets).
  if (f.count !== undefined && f.count > 1) reason += ` ×${f.count}`;
  return [
    Number.isNaN(t) ? f.time : new Date(t).toISOString(),
    f.node,
    f.direction,
    source,
    destination,
    f.protocol,
    request,
    f.verdict,
    reason,
    f.mtls ? 'yes' : 'no',
    `${humanBytes(f.bytesSent)}/${humanBytes(f.bytesReceived)}`,
  ].map(printable);
}

function cut(cell: string, max: number): string {
  return max > 0 && cell.length > max ? `${cell.slice(0, max - 1)}…` : cell;
}

/**
 * A table whose column widths are fixed by the first page it prints: as narrow as that page
 * allows, or, when rows will follow (`-f`), at least wide enough for typical flows.
 */
export class FlowTable {
  private readonly widths: number[];

  constructor(
    page: readonly FlowRecord[],
    private readonly colour: boolean,
    opts: { following?: boolean } = {},
  ) {
    const rows = page.map((f) => flowCells(f).map((c, i) => cut(c, MAX_WIDTH[i]!)));
    const min = (i: number): number => (opts.following ? FOLLOW_MIN_WIDTH[i]! : 0);
    this.widths = FLOW_COLUMNS.map((h, i) => Math.max(min(i), h.length, ...rows.map((r) => r[i]!.length)));
  }

  header(): string {
    return this.line([...FLOW_COLUMNS], undefined);
  }

  row(f: FlowRecord): string {
    return this.line(
      flowCells(f).map((c, i) => cut(c, MAX_WIDTH[i]!)),
      f.verdict,
    );
  }

  private line(cells: string[], verdict: FlowVerdict | undefined): string {
    const last = cells.length - 1;
    const padded = cells.map((c, i) => {
      const text = i === last ? c : c.padEnd(this.widths[i]!);
      if (i === VERDICT_COLUMN && verdict && this.colour) {
        // Colour only the word: the padding stays outside the escape codes, so columns align.
        return `${COLOURS[verdict]}${c}${RESET}${text.slice(c.length)}`;
      }
      return text;
    });
    return `${padded.join('  ').trimEnd()}\n`;
  }
}

/**
 * JSON text for output: JSON.stringify leaves DEL, the C1 controls and U+2028/9 raw; escaped
 * here, the text means the same to a JSON parser and nothing to a terminal.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `-o json`: one JSON array, one flow per line inside it. */
export function formatFlowJsonArray(flows: readonly FlowRecord[]): string {
  return flows.length === 0 ? '[]\n' : `[\n${flows.map(safeJson).join(',\n')}\n]\n`;
}

/** `-o jsonl`: one flow per line. */
export function formatFlowJsonLine(flow: FlowRecord): string {
  return `${safeJson(flow)}\n`;
}
