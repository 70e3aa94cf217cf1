/**
 * `spec` of Palisade's FaultInjection (palisade.dev/v1), referenced from an HTTPRoute rule's
 * ExtensionRef filter. The shape is Istio's HTTPFaultInjection:
 *
 *   spec:
 *     delay: {fixedDelay: 50ms, percentage: {value: 10}}   # 10 % of requests wait 50 ms first
 *     abort: {httpStatus: 503, percentage: {value: 5}}     # 5 % are answered 503 by the proxy
 *
 * Pure, over plain data; problems are `{path, message}` like parse-http-route.ts. grpcStatus
 * aborts are refused until the proxy speaks gRPC.
 */
import type { RouteProblem } from './parse-http-route';
import { MAX_FAULT_DELAY_MS, routeDuration } from './route-duration';
import type { FaultSpec } from './types';

const show = (v: unknown): string => JSON.stringify(v)?.slice(0, 80) ?? String(v);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseFaultSpec(spec: unknown): { spec: FaultSpec | undefined; problems: RouteProblem[] } {
  const problems: RouteProblem[] = [];
  const fail = (path: string, message: string): undefined => void problems.push({ path, message });
  const only = (v: unknown, path: string, allowed: string[]): Record<string, unknown> | undefined => {
    if (!isObj(v)) return fail(path, `must be a mapping, got ${show(v)}`);
    const extra = Object.keys(v).filter((k) => !allowed.includes(k));
    for (const k of extra) fail(`${path}.${k}`, k === 'grpcStatus' ? 'gRPC aborts are not supported yet (use httpStatus)' : `unknown or unsupported field (supported here: ${allowed.join(', ')})`);
    return extra.length === 0 ? v : undefined;
  };
  const percent = (v: unknown, path: string): number | undefined => {
    const p = only(v, path, ['value']);
    if (!p) return undefined;
    if (typeof p.value !== 'number' || !(p.value >= 0 && p.value <= 100)) return fail(`${path}.value`, `must be a number from 0 to 100, got ${show(p.value)}`);
    return p.value;
  };
  const top = only(spec, 'spec', ['delay', 'abort']);
  let delay: FaultSpec['delay'];
  let abort: FaultSpec['abort'];
  if (top) {
    if (top.delay === undefined && top.abort === undefined) fail('spec', 'needs delay or abort (a fault that does nothing is a mistake)');
    const d = top.delay === undefined ? undefined : only(top.delay, 'spec.delay', ['fixedDelay', 'percentage']);
    if (d) {
      const parsed = routeDuration(d.fixedDelay, '50ms or 2s', MAX_FAULT_DELAY_MS, '1h');
      const ms = 'ms' in parsed ? parsed.ms : fail('spec.delay.fixedDelay', parsed.problem);
      const p = d.percentage === undefined ? 100 : percent(d.percentage, 'spec.delay.percentage');
      if (ms !== undefined && p !== undefined) delay = { ms, percent: p };
    }
    const a = top.abort === undefined ? undefined : only(top.abort, 'spec.abort', ['httpStatus', 'percentage']);
    if (a) {
      const s = a.httpStatus;
      if (typeof s !== 'number' || !Number.isInteger(s) || s < 200 || s > 599) fail('spec.abort.httpStatus', `must be an HTTP status from 200 to 599, got ${show(s)}`);
      const p = a.percentage === undefined ? 100 : percent(a.percentage, 'spec.abort.percentage');
      if (typeof s === 'number' && p !== undefined && problems.length === 0) abort = { status: s, percent: p };
    }
  }
  return { spec: problems.length === 0 ? { delay, abort } : undefined, problems };
}
