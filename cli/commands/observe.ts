/**
 * `palisade observe`: the collector's flows, filtered, as a table, a JSON array or JSON lines;
 * `-f` prints the last page and then every new flow as it is stored, until interrupted.
 *
 * Every flag is checked before anything is sent. Output order is oldest first, in every format,
 * like `hubble observe`: the newest flow is the last line, next to the prompt.
 */
import type { Command } from 'commander';
import { isIP } from 'node:net';
import { MAX_FLOWS_LIMIT, type FlowFilters, type StoredFlow } from '../../common/flows-api';
import { ApiClient } from '../../common/api-client';
import { invalidArgument, PalisadeError } from '../../common/errors';
import { FLOW_PROTOCOLS, type FlowDirection, type FlowProtocol, type FlowVerdict } from '../../common/flow';
import { isDnsLabel } from '../../common/identity';
import { addApiOptions, apiClient } from '../api-options';
import type { ApiFlags } from '../config';
import type { CliDeps, TerminalDeps } from '../deps';
import { oneOfFlag, parseSince, quote } from '../options';
import { mergeFlowPages } from '../flow-merge';
import { FlowTable, formatFlowJsonArray, formatFlowJsonLine, OUTPUT_FORMATS, useColour, type OutputFormat } from '../flow-format';

export const DEFAULT_LAST = 20;
const VERDICTS: readonly FlowVerdict[] = ['allowed', 'denied', 'audit', 'error'];
const PROTOCOLS: readonly FlowProtocol[] = FLOW_PROTOCOLS;
const DIRECTIONS: readonly FlowDirection[] = ['outbound', 'inbound', 'egress'];
const MAX_VALUE = 1024;

export interface ObserveFlags extends Omit<ApiFlags, 'collector'> {
  /** Repeatable: collector replicas, all asked, their answers merged. */
  collector?: string[];
  from?: string;
  to?: string;
  verdict?: string;
  protocol?: string;
  httpPath?: string;
  route?: string;
  node?: string;
  direction?: string;
  since?: string;
  last: string;
  follow?: boolean;
  output: string;
}

/** The request `palisade observe` will make, every flag checked. */
export interface ObserveRequest {
  filters: FlowFilters;
  output: OutputFormat;
  follow: boolean;
  /** How many stored flows to print first (0: only new ones, with -f). */
  last: number;
}

// Whitespace and control characters never belong in a name, an address or a path filter.
const PLAIN = /^[^\s\u0000-\u001f\u007f-\u009f]+$/;

/** A Kubernetes object name: DNS-1123 subdomain. */
const isObjectName = (v: string): boolean => v.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v);

/** `web-1`, `default/web-1`, `spiffe://td/ns/default/sa/web`, `10.0.1.2` (as common/api.ts reads them). */
export function parseEndpointFilter(flag: string, v: string): string {
  const ok = (() => {
    if (v.length === 0 || v.length > MAX_VALUE || !PLAIN.test(v)) return false;
    if (v.startsWith('spiffe://')) return v.length > 'spiffe://'.length;
    if (isIP(v) !== 0) return true;
    const parts = v.split('/');
    if (parts.length === 2) return isDnsLabel(parts[0]!) && isObjectName(parts[1]!);
    return parts.length === 1 && isObjectName(v);
  })();
  if (!ok) throw invalidArgument(`invalid ${flag} ${quote(v)}: expected a workload (web-1 or default/web-1), a SPIFFE ID (spiffe://…) or an IP address`);
  return v;
}

function parseHttpPath(v: string): string {
  const star = v.indexOf('*');
  if (!v.startsWith('/') || v.length > MAX_VALUE || !PLAIN.test(v) || (star >= 0 && star !== v.length - 1)) {
    throw invalidArgument(`invalid --http-path ${quote(v)}: expected a path like /api/users, or a prefix like /api/*`);
  }
  return v;
}

/** `--route`: an HTTPRoute's or GRPCRoute's name, or `namespace/name`. */
function parseRouteFilter(v: string): string {
  const parts = v.split('/');
  const ok = v.length <= MAX_VALUE && (parts.length === 1 ? isObjectName(v) : parts.length === 2 && isDnsLabel(parts[0]!) && isObjectName(parts[1]!));
  if (!ok) throw invalidArgument(`invalid --route ${quote(v)}: expected a route name (web-canary) or namespace/name (shop/web-canary)`);
  return v;
}

function parseLast(v: string, follow: boolean): number {
  const n = /^\d{1,6}$/.test(v) ? Number(v) : NaN;
  const min = follow ? 0 : 1;
  if (!(n >= min && n <= MAX_FLOWS_LIMIT)) throw invalidArgument(`invalid --last ${quote(v)}: expected a whole number from ${min} to ${MAX_FLOWS_LIMIT}`);
  return n;
}

/** Check every flag and build the request; nothing is read or sent yet. */
export function observeRequest(flags: ObserveFlags, now = Date.now()): ObserveRequest {
  const output = oneOfFlag('-o', flags.output, OUTPUT_FORMATS);
  const follow = flags.follow === true;
  if (follow && output === 'json') throw invalidArgument('-o json prints one array and cannot follow: use -o jsonl with -f');
  const filters: FlowFilters = {};
  if (flags.from !== undefined) filters.from = parseEndpointFilter('--from', flags.from);
  if (flags.to !== undefined) filters.to = parseEndpointFilter('--to', flags.to);
  if (flags.verdict !== undefined) filters.verdict = oneOfFlag('--verdict', flags.verdict, VERDICTS);
  if (flags.protocol !== undefined) filters.protocol = oneOfFlag('--protocol', flags.protocol, PROTOCOLS);
  if (flags.direction !== undefined) filters.direction = oneOfFlag('--direction', flags.direction, DIRECTIONS);
  if (flags.httpPath !== undefined) filters.httpPath = parseHttpPath(flags.httpPath);
  if (flags.route !== undefined) filters.route = parseRouteFilter(flags.route);
  if (flags.node !== undefined) {
    if (flags.node.length === 0 || flags.node.length > 63 || !PLAIN.test(flags.node)) throw invalidArgument(`invalid --node ${quote(flags.node)}: not a node name`);
    filters.node = flags.node;
  }
  if (flags.since !== undefined) filters.since = parseSince(flags.since, now);
  const last = parseLast(flags.last, follow);
  if (last > 0) filters.limit = last;
  return { filters, output, follow, last };
}

/** Writes flows in the chosen format; the table's widths come from the first page. */
class FlowPrinter {
  private table: FlowTable | undefined;

  constructor(
    private readonly output: OutputFormat,
    private readonly colour: boolean,
    private readonly write: (text: string) => void,
  ) {}

  /** The first page, oldest first. */
  page(flows: readonly StoredFlow[], stderr: (text: string) => void, following: boolean): void {
    if (this.output === 'json') {
      this.write(formatFlowJsonArray(flows));
      return;
    }
    if (this.output === 'jsonl') {
      for (const f of flows) this.write(formatFlowJsonLine(f));
      return;
    }
    if (flows.length === 0 && !following) {
      stderr('no flows match\n');
      return;
    }
    this.table = new FlowTable(flows, this.colour, { following });
    this.write(this.table.header() + flows.map((f) => this.table!.row(f)).join(''));
  }

  /** One flow that arrived while following. */
  next(flow: StoredFlow): void {
    if (this.output === 'jsonl') this.write(formatFlowJsonLine(flow));
    else this.write(this.table!.row(flow));
  }
}

/** A promise that settles once, from outside. */
function signal<T>(): { promise: Promise<T>; fire: (v: T) => void } {
  let fire!: (v: T) => void;
  const promise = new Promise<T>((resolve) => (fire = resolve));
  return { promise, fire };
}

async function follow(client: ApiClient, req: ObserveRequest, printer: FlowPrinter, deps: CliDeps): Promise<void> {
  const stop = deps.waitForStop();
  const failed = signal<PalisadeError>();
  const opened = signal<void>();
  // Subscribe first, then read the page: flows stored in between arrive on the stream, held
  // back until the page is printed; those the page already had are told apart by id.
  let held: StoredFlow[] | undefined = [];
  let onPage = new Set<number>();
  const handle = client.follow(
    req.filters,
    (flow) => {
      if (held) held.push(flow);
      else if (!onPage.has(flow.id)) printer.next(flow);
    },
    (err) => failed.fire(err),
    { onOpen: () => opened.fire() },
  );
  try {
    const early = await Promise.race([opened.promise.then(() => undefined), failed.promise, stop.then(() => null)]);
    if (early === null) return;
    if (early) throw early;
    const page = req.last > 0 ? client.flows(req.filters).then((r) => r.flows) : Promise.resolve([] as StoredFlow[]);
    page.catch(() => undefined); // when the stream fails or a stop comes first, nobody awaits it
    const first = await Promise.race([page, failed.promise, stop.then(() => null)]);
    if (first === null) return;
    if (first instanceof PalisadeError) throw first;
    const oldestFirst = [...first].reverse();
    printer.page(oldestFirst, deps.stderr, true);
    onPage = new Set(oldestFirst.map((f) => f.id));
    const backlog = held;
    held = undefined;
    for (const f of backlog) if (!onPage.has(f.id)) printer.next(f);
    const end = await Promise.race([failed.promise, stop.then(() => null)]);
    if (end) throw end;
  } finally {
    handle.close();
  }
}

export function registerObserveCommands(program: Command, deps: CliDeps & TerminalDeps): void {
  const cmd = program
    .command('observe')
    .description('flows the mesh carried or refused, from the collector (oldest first; -f to follow)')
    .option('--from <workload>', 'source: workload (web-1, default/web-1), SPIFFE ID or IP')
    .option('--to <workload>', 'destination: workload (web-1, default/web-1), SPIFFE ID or IP')
    .option('--verdict <verdict>', 'allowed|denied|audit|error')
    .option('--protocol <protocol>', `${FLOW_PROTOCOLS.join('|')} (udp, icmp, arp, other: the per-pod filters' packet summaries)`)
    .option('--http-path <path>', 'HTTP path, exact (/api/users) or a prefix (/api/*)')
    .option('--direction <direction>', 'outbound|inbound|egress')
    .option('--route <route>', 'flows through this HTTPRoute or GRPCRoute: name (any namespace) or namespace/name')
    .option('--node <node>', 'flows reported by this node')
    .option('--since <duration>', 'flows from this long ago (10m, 2h) or since a time (2024-05-01T12:00:00Z)')
    .option('--last <n>', `print the newest N matching flows (at most ${MAX_FLOWS_LIMIT}; 0 with -f: only new ones)`, String(DEFAULT_LAST))
    .option('-f, --follow', 'keep printing new flows as they are stored, until interrupted')
    .option('-o, --output <format>', 'table|json|jsonl (json: one array; jsonl: one flow per line)', 'table');
  addApiOptions(cmd, { several: true }).action(async (flags: ObserveFlags) => {
      const env = deps.env ?? process.env;
      const req = observeRequest(flags);
      const urls = flags.collector ?? [];
      if (req.follow && urls.length > 1) throw invalidArgument('-f follows one collector: give one --collector (without -f, several are merged)');
      const clients = (urls.length > 0 ? urls : [undefined]).map((url) => ({ url, client: apiClient({ ...flags, collector: url }, env) }));
      const colour = useColour({ isTTY: deps.stdoutIsTTY ?? Boolean(process.stdout.isTTY), env });
      const printer = new FlowPrinter(req.output, colour, deps.stdout);
      if (req.follow) {
        await follow(clients[0]!.client, req, printer, deps);
        return;
      }
      if (clients.length === 1) {
        const { flows } = await clients[0]!.client.flows(req.filters);
        printer.page([...flows].reverse(), deps.stderr, false);
        return;
      }
      const answers = await Promise.allSettled(clients.map((c) => c.client.flows(req.filters)));
      const failed = answers.flatMap((a, i) => (a.status === 'rejected' ? [{ url: clients[i]!.url, err: a.reason as unknown }] : []));
      if (failed.length === answers.length) throw failed[0]!.err;
      for (const f of failed) deps.stderr(`collector ${f.url} did not answer (its flows are missing below): ${f.err instanceof Error ? f.err.message : String(f.err)}\n`);
      const merged = mergeFlowPages(answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value.flows] : [])), req.last);
      printer.page([...merged.flows].reverse(), deps.stderr, false);
    });
}
