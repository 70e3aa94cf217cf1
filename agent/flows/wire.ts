/**
 * A flow record as the collector accepts it, written once, when the reporter is handed it
 * (agent/flows/reporter.ts). The output is byte for byte what wire-checked.ts (copy the known
 * fields, check the copy with the collector's own `flowProblem`, JSON.stringify) writes, without
 * the copy, the generic stringifier or an allocation per check: each field is checked as it is
 * written, the strings records repeat are quoted once, and the time is parsed only when its
 * second changes. A record this writer cannot vouch for — anything the collector might refuse —
 * goes to wire-checked.ts, which decides and names the problem. test/unit/agent/flows/wire.test.ts holds the two to identical output over a large
 * generated set.
 */
import { FLOW_ENUMS, isTraceId, MAX_DNS_ANSWERS, type FlowDns, type FlowEndpoint, type FlowRecord } from '../../common/flow';
import { encodeFlowChecked, type EncodedFlow } from './wire-checked';

export type { EncodedFlow } from './wire-checked';

/** The flow as the collector's JSON, or the problem the collector would have with it. */
export function encodeFlow(flow: FlowRecord): EncodedFlow {
  const json = writeFlowJson(flow);
  return json !== undefined ? { json } : encodeFlowChecked(flow);
}

/**
 * JSON text of the strings flows repeat (node, addresses, workloads, identities, hosts, reasons,
 * policies, methods): the same few hundred strings in record after record. Cleared whole when
 * full, so a flood of distinct values costs a refill, never unbounded memory.
 */
const quoted = new Map<string, string>();
const MAX_QUOTED = 4096;

/** A string of at most `max` UTF-16 units, as JSON; undefined when it is not one. */
function str(v: unknown, max: number): string | undefined {
  if (typeof v !== 'string' || v.length > max) return undefined;
  let q = quoted.get(v);
  if (q === undefined) {
    if (quoted.size >= MAX_QUOTED) quoted.clear();
    q = JSON.stringify(v);
    quoted.set(v, q);
  }
  return q;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A count as written after wire-checked's rounding; -1 when the collector would refuse it. */
function whole(v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return -1;
  const n = Math.round(v);
  return Number.isSafeInteger(n) ? n : -1;
}

/**
 * `YYYY-MM-DDTHH:MM:SS.` of the last time checked that is exactly its own toISOString(): any time
 * of that form in the same second is valid too (only the milliseconds differ), so it needs no
 * Date.parse. Empty until one is seen.
 */
let validSecond = '';

function isTime(v: unknown): v is string {
  if (typeof v !== 'string' || v.length > 40) return false;
  if (validSecond !== '' && v.length === 24 && v.charCodeAt(23) === 0x5a && v.startsWith(validSecond) && isDigit(v, 20) && isDigit(v, 21) && isDigit(v, 22)) return true;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return false;
  if (v.length === 24 && new Date(t).toISOString() === v) validSecond = v.slice(0, 20);
  return true;
}

function isDigit(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 0x30 && c <= 0x39;
}

/** An endpoint's text fields after ip and port, in wire-checked's order, with their JSON keys. */
const ENDPOINT_TEXT = [
  ['workload', ',"workload":'],
  ['namespace', ',"namespace":'],
  ['identity', ',"identity":'],
  ['host', ',"host":'],
] as const;

function endpoint(e: FlowEndpoint): string | undefined {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return undefined;
  const ip = str(e.ip, 64);
  if (ip === undefined) return undefined;
  let out = '{"ip":' + ip;
  if (e.port !== undefined) {
    if (!isCount(e.port) || e.port > 65535) return undefined;
    out += ',"port":' + e.port;
  }
  for (let i = 0; i < ENDPOINT_TEXT.length; i++) {
    const [name, key] = ENDPOINT_TEXT[i]!;
    const v = e[name];
    if (v === undefined) continue;
    const s = str(v, 512);
    if (s === undefined) return undefined;
    out += key + s;
  }
  return out + '}';
}

/**
 * The JSON wire-checked.ts would write, when every field passes the collector's check as written
 * here (fields in its order: the fixed ones, then http, dns, policy, rule, audit, count, traceId, traffic); undefined otherwise.
 */
export function writeFlowJson(f: FlowRecord): string | undefined {
  if (typeof f !== 'object' || f === null) return undefined;
  const time = f.time;
  if (!isTime(time)) return undefined;
  const timeJson = str(time, 40);
  const node = str(f.node, 63);
  const direction = f.direction;
  const protocol = f.protocol;
  const verdict = f.verdict;
  if (timeJson === undefined || node === undefined) return undefined;
  if (!FLOW_ENUMS.directions.has(direction) || !FLOW_ENUMS.protocols.has(protocol) || !FLOW_ENUMS.verdicts.has(verdict)) return undefined;
  const reason = str(f.reason, 128);
  if (reason === undefined || typeof f.mtls !== 'boolean') return undefined;
  const sent = whole(f.bytesSent);
  const received = whole(f.bytesReceived);
  const duration = whole(f.durationMs);
  if (sent < 0 || received < 0 || duration < 0) return undefined;
  const source = endpoint(f.source);
  if (source === undefined) return undefined;
  const destination = endpoint(f.destination);
  if (destination === undefined) return undefined;
  let out =
    '{"time":' + timeJson +
    ',"node":' + node +
    ',"direction":"' + direction +
    '","source":' + source +
    ',"destination":' + destination +
    ',"protocol":"' + protocol +
    '","verdict":"' + verdict +
    '","reason":' + reason +
    ',"mtls":' + (f.mtls ? 'true' : 'false') +
    ',"bytesSent":' + sent +
    ',"bytesReceived":' + received +
    ',"durationMs":' + duration;
  const http = f.http;
  if (http !== undefined) {
    if (typeof http !== 'object' || http === null) return undefined;
    const method = str(http.method, 32);
    const path = typeof http.path === 'string' && http.path.length <= 8192 ? JSON.stringify(http.path) : undefined;
    const status = http.status;
    if (method === undefined || path === undefined || !isCount(status) || status > 999) return undefined;
    const grpc = http.grpcStatus;
    if (grpc !== undefined && (!isCount(grpc) || grpc > 99)) return undefined;
    out += ',"http":{"method":' + method + ',"path":' + path + ',"status":' + status + (grpc === undefined ? '}' : ',"grpcStatus":' + grpc + '}');
  }
  if (f.dns !== undefined) {
    const dns = dnsJson(f.dns);
    if (dns === undefined) return undefined;
    out += ',"dns":' + dns;
  }
  if (f.policy !== undefined) {
    const policy = str(f.policy, 4096);
    if (policy === undefined) return undefined;
    out += ',"policy":' + policy;
  }
  if (f.rule !== undefined) {
    if (!isCount(f.rule)) return undefined;
    out += ',"rule":' + f.rule;
  }
  const audit = f.audit;
  if (audit !== undefined) {
    if (typeof audit !== 'object' || audit === null) return undefined;
    const policy = str(audit.policy, 512);
    if (policy === undefined || !isCount(audit.rule)) return undefined;
    out += ',"audit":{"policy":' + policy + ',"rule":' + audit.rule + '}';
  }
  if (f.count !== undefined) {
    if (!isCount(f.count) || f.count < 1) return undefined;
    out += ',"count":' + f.count;
  }
  if (f.traceId !== undefined) {
    if (!isTraceId(f.traceId)) return undefined;
    out += ',"traceId":"' + f.traceId + '"';
  }
  const traffic = f.traffic;
  if (traffic !== undefined) {
    if (typeof traffic !== 'object' || traffic === null) return undefined;
    const route = str(traffic.route, 512);
    const backend = str(traffic.backend, 512);
    if (route === undefined || backend === undefined || !isCount(traffic.rule) || !isCount(traffic.attempts)) return undefined;
    out += ',"traffic":{"route":' + route + ',"rule":' + traffic.rule + ',"backend":' + backend + ',"attempts":' + traffic.attempts + '}';
  }
  return out + '}';
}

/** A DNS query's `{type, rcode, answers}` as the collector's JSON; undefined when it would refuse it. */
function dnsJson(d: FlowDns): string | undefined {
  if (typeof d !== 'object' || d === null) return undefined;
  const type = str(d.type, 16);
  const rcode = str(d.rcode, 16);
  const answers = d.answers;
  if (type === undefined || rcode === undefined || !Array.isArray(answers) || answers.length > MAX_DNS_ANSWERS) return undefined;
  let out = '{"type":' + type + ',"rcode":' + rcode + ',"answers":[';
  for (let i = 0; i < answers.length; i++) {
    const a = typeof answers[i] === 'string' && (answers[i] as string).length <= 1024 ? JSON.stringify(answers[i]) : undefined;
    if (a === undefined) return undefined;
    out += (i === 0 ? '' : ',') + a;
  }
  return out + ']}';
}
