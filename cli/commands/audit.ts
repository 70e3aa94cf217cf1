/**
 * `palisade audit list` and `palisade audit verify`: the collector's tamper-evident audit log
 * (collector/audit/audit-log.ts) through its API. `list` shows the newest records oldest first;
 * `verify` has the collector walk the whole hash chain and exits 1, naming each broken record,
 * when anything was edited, removed or reordered.
 *
 * Every flag is checked before anything is sent, and every answer before anything is printed;
 * whatever the collector sends is printed with its control characters made visible.
 */
import type { Command } from 'commander';
import { AUDIT_KINDS, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT } from '../../common/control-api';
import { printable } from '../../common/api-client';
import { CONTROL_API, type AuditKind, type AuditRecord, type AuditVerifyResponse } from '../../common/control-api';
import { formatDuration, parsePositiveDuration } from '../../common/duration';
import { invalidArgument, PalisadeError } from '../../common/errors';
import { isRecord } from '../../common/record';
import { addApiOptions, apiClient } from '../api-options';
import { oneOfFlag, quote } from '../options';
import type { ApiFlags } from '../config';
import type { CliDeps, TerminalDeps } from '../deps';
import { safeJson } from '../flow-format';
import { formatTable } from '../table';

export interface AuditListFlags extends ApiFlags {
  since?: string;
  limit: string;
  kind?: string;
  output: string;
}

export interface AuditVerifyFlags extends ApiFlags {
  output: string;
}

/** What `audit list` will ask for, every flag checked. */
export interface AuditListRequest {
  query: { since?: number; limit: number; kind?: AuditKind };
  output: 'table' | 'json';
}

/** Longest summary cell; the whole record is in `-o json`. */
const MAX_SUMMARY = 160;
const MAX_CELL = 64;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Check every `audit list` flag; nothing is read or sent yet. */
export function auditListRequest(flags: AuditListFlags, now = Date.now()): AuditListRequest {
  const output = oneOfFlag('-o', flags.output, ['table', 'json'] as const);
  const limit = /^\d{1,6}$/.test(flags.limit) ? Number(flags.limit) : NaN;
  if (!(limit >= 1 && limit <= MAX_AUDIT_LIMIT)) throw invalidArgument(`invalid --limit ${quote(flags.limit)}: expected a whole number from 1 to ${MAX_AUDIT_LIMIT}`);
  const query: AuditListRequest['query'] = { limit };
  if (flags.kind !== undefined) query.kind = oneOfFlag('--kind', flags.kind, AUDIT_KINDS);
  if (flags.since !== undefined) query.since = Math.max(0, now - parsePositiveDuration(flags.since, '--since'));
  return { query, output };
}

/** Why `v` is not an AuditRecord as the CLI shows it, or undefined. */
export function auditRecordProblem(v: unknown): string | undefined {
  if (!isRecord(v)) return 'must be an object';
  if (typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq)) return 'seq must be an integer';
  for (const k of ['time', 'kind', 'actor', 'prev', 'hash'] as const) if (typeof v[k] !== 'string') return `${k} must be a string`;
  if (!isRecord(v.data)) return 'data must be an object';
  return undefined;
}

/** Why `v` is not an AuditVerifyResponse, or undefined. */
export function auditVerifyProblem(v: unknown): string | undefined {
  if (!isRecord(v) || typeof v.ok !== 'boolean' || !isCount(v.records) || !isCount(v.head) || !Array.isArray(v.problems)) {
    return 'expected {ok, records, head, problems}';
  }
  for (const p of v.problems) {
    if (!isRecord(p) || typeof p.seq !== 'number' || !Number.isSafeInteger(p.seq) || typeof p.problem !== 'string') return 'a problem must be {seq, problem}';
  }
  if (v.ok !== (v.problems.length === 0)) return 'ok disagrees with the problems listed';
  return undefined;
}

const clip = (text: string, max: number): string => {
  const one = printable(text);
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
};

/** `v7 apply: create EgressPolicy default/x, delete AuthorizationPolicy default/y`. */
function policyChangeSummary(d: Record<string, unknown>): string | undefined {
  const viaApi = d.via === 'kubernetes' && typeof d.replica === 'string';
  if ((!viaApi && !isCount(d.version)) || typeof d.action !== 'string' || !Array.isArray(d.changes)) return undefined;
  const changes = d.changes.filter(isRecord).map((c) => `${String(c.op)} ${String(c.kind)} ${String(c.namespace)}/${String(c.name)}`);
  const shown = changes.length > 3 ? [...changes.slice(0, 3), `+${changes.length - 3} more`] : changes;
  const what = `${shown.length > 0 ? shown.join(', ') : 'no changes'}`;
  if (!viaApi) return `v${String(d.version)} ${d.action}: ${what}`;
  // Kubernetes mode: written to the Kubernetes API through replica R (and, when that failed, why).
  return `${d.action} via the Kubernetes API at ${String(d.replica)}: ${what}${typeof d.failed === 'string' ? ` — failed: ${d.failed}` : ''}`;
}

/** ` (10s)`: how long a summary's window was, or nothing. */
function windowText(d: Record<string, unknown>): string {
  const w = isRecord(d.window) ? d.window : {};
  const span = Date.parse(String(w.end)) - Date.parse(String(w.start));
  return Number.isSafeInteger(span) && span >= 0 ? ` (${formatDuration(span)})` : '';
}

/** `12 denied flows in 3 groups (10s)`, and how many were past the group limit. */
function deniedFlowsSummary(d: Record<string, unknown>): string | undefined {
  if (!isCount(d.total) || !Array.isArray(d.groups)) return undefined;
  const window = windowText(d);
  const dropped = isCount(d.dropped) && d.dropped > 0 ? `, ${d.dropped} past the group limit` : '';
  return `${plural(d.total, 'denied flow')} in ${plural(d.groups.length, 'group')}${window}${dropped}`;
}

/** `join refused: token is for node node-1, not node-9`, or `37 refusals counted in 4 groups (10s)`. */
function trustRefusalSummary(d: Record<string, unknown>): string | undefined {
  if (d.event === 'summary') {
    if (!isCount(d.counted) || !Array.isArray(d.groups)) return undefined;
    const window = windowText(d);
    return `${plural(d.counted, 'more refusal')} counted in ${plural(d.groups.length, 'group')}${window}`;
  }
  if (typeof d.event !== 'string' || typeof d.reason !== 'string') return undefined;
  return `${d.event} refused: ${d.reason}`;
}

const SUMMARIES: Partial<Record<string, (d: Record<string, unknown>) => string | undefined>> = {
  'policy-change': policyChangeSummary,
  'denied-flows': deniedFlowsSummary,
  'trust-refusal': trustRefusalSummary,
};

/** One line saying what a record is about. */
export function auditSummary(r: AuditRecord): string {
  const text = SUMMARIES[r.kind]?.(r.data) ?? JSON.stringify(r.data);
  return clip(text, MAX_SUMMARY);
}

/** SEQ TIME KIND ACTOR SUMMARY, one row a record. */
export function formatAuditTable(records: readonly AuditRecord[]): string {
  const rows = records.map((r) => [String(r.seq), clip(r.time, MAX_CELL), clip(r.kind, MAX_CELL), clip(r.actor, MAX_CELL), auditSummary(r)]);
  return formatTable(['SEQ', 'TIME', 'KIND', 'ACTOR', 'SUMMARY'], rows);
}

/** A problem as one line that names its record (the collector's lines usually do already). */
export function problemLine(p: { seq: number; problem: string }): string {
  const line = printable(p.problem);
  return new RegExp(`\\brecords? ${p.seq}\\b`).test(line) ? line : `record ${p.seq}: ${line}`;
}

const malformed = (path: string, what: string): PalisadeError =>
  new PalisadeError('PALISADE_ERR_PROTOCOL', `the collector sent a malformed answer to ${path}: ${what}`);

export function registerAuditCommands(program: Command, deps: CliDeps & TerminalDeps): void {
  const audit = program.command('audit').description('the collector\'s tamper-evident audit log: policy changes and denied flows');

  addApiOptions(
    audit
      .command('list')
      .description('audit records, oldest first (the newest --limit of them)')
      .option('--since <duration>', 'records from this long ago (10m, 2h, 7d)')
      .option('--limit <n>', `the newest N records (at most ${MAX_AUDIT_LIMIT})`, String(DEFAULT_AUDIT_LIMIT))
      .option('--kind <kind>', AUDIT_KINDS.join('|'))
      .option('-o, --output <format>', 'table|json', 'table'),
  ).action(async (flags: AuditListFlags) => {
    const req = auditListRequest(flags);
    const client = apiClient(flags, deps.env);
    const body = await client.getJson(CONTROL_API.audit, req.query);
    if (!isRecord(body) || !Array.isArray(body.records)) throw malformed(CONTROL_API.audit, 'expected {records}');
    for (const r of body.records) {
      const problem = auditRecordProblem(r);
      if (problem) throw malformed(CONTROL_API.audit, `a record's ${problem}`);
    }
    const records = body.records as AuditRecord[];
    if (req.output === 'json') deps.stdout(records.length === 0 ? '[]\n' : `[\n${records.map(safeJson).join(',\n')}\n]\n`);
    else if (records.length === 0) deps.stderr('no audit records match\n');
    else deps.stdout(formatAuditTable(records));
  });

  addApiOptions(
    audit
      .command('verify')
      .description('check the whole hash chain; exit 1 naming every edited, removed or reordered record')
      .option('-o, --output <format>', 'text|json', 'text'),
  ).action(async (flags: AuditVerifyFlags) => {
    const output = oneOfFlag('-o', flags.output, ['text', 'json'] as const);
    const client = apiClient(flags, deps.env);
    const body = await client.getJson(CONTROL_API.auditVerify);
    const problem = auditVerifyProblem(body);
    if (problem) throw malformed(CONTROL_API.auditVerify, problem);
    const res = body as AuditVerifyResponse;
    if (output === 'json') deps.stdout(`${safeJson(res)}\n`);
    else if (res.ok) deps.stdout(`audit log intact: ${plural(res.records, 'record')}, head seq ${res.head}\n`);
    else for (const p of res.problems) deps.stdout(`${problemLine(p)}\n`);
    if (!res.ok) {
      const n = res.problems.length;
      throw new PalisadeError('PALISADE_ERR_CONFLICT', `audit log verification failed: ${plural(n, 'problem')}, first at record ${res.problems[0]!.seq}`);
    }
  });
}
