/**
 * `spec` of Palisade's FaultInjection (palisade.dev/v1), referenced from an HTTPRoute rule's
 * ExtensionRef filter. The shape is Istio's HTTPFaultInjection:
 *
 *   spec:
 *     delay: {fixedDelay: 50ms, percentage: {value: 10}}   # 10 % of requests wait 50 ms first
 *     abort: {httpStatus: 503, percentage: {value: 5}}     # 5 % are answered 503 by the proxy
 *     abort: {grpcStatus: UNAVAILABLE, percentage: {value: 5}}   # or: a gRPC call is answered trailers-only 14
 *
 * A `grpcStatus` abort (a code's name, as Istio's) answers a gRPC call trailers-only with that
 * status, and any other request with the HTTP status gRPC's code stands for (UNAVAILABLE: 503).
 * Pure, over plain data; problems are `{path, message}` like parse-http-route.ts.
 */
import { isObj, show, type RouteProblem } from './checker';
import { GRPC_CODES, httpStatusOfGrpc } from './grpc-codes';
import { MAX_FAULT_DELAY_MS, routeDuration } from './route-duration';
import type { FaultSpec } from './types';


export function parseFaultSpec(spec: unknown): { spec: FaultSpec | undefined; problems: RouteProblem[] } {
  const problems: RouteProblem[] = [];
  const fail = (path: string, message: string): undefined => void problems.push({ path, message });
  const only = (v: unknown, path: string, allowed: string[]): Record<string, unknown> | undefined => {
    if (!isObj(v)) return fail(path, `must be a mapping, got ${show(v)}`);
    const extra = Object.keys(v).filter((k) => !allowed.includes(k));
    for (const k of extra) fail(`${path}.${k}`, `unknown or unsupported field (supported here: ${allowed.join(', ')})`);
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
    const a = top.abort === undefined ? undefined : only(top.abort, 'spec.abort', ['httpStatus', 'grpcStatus', 'percentage']);
    if (a) {
      const s = a.httpStatus;
      const g = a.grpcStatus;
      const grpc = typeof g === 'string' ? GRPC_CODES[g] : undefined;
      if (s !== undefined && g !== undefined) fail('spec.abort', 'httpStatus or grpcStatus, not both');
      else if (g !== undefined) {
        if (grpc === undefined || grpc === 0) fail('spec.abort.grpcStatus', `must be a gRPC status name other than OK (UNAVAILABLE, DEADLINE_EXCEEDED, …), got ${show(g)}`);
      } else if (typeof s !== 'number' || !Number.isInteger(s) || s < 200 || s > 599) fail('spec.abort.httpStatus', `must be an HTTP status from 200 to 599, got ${show(s)}`);
      const p = a.percentage === undefined ? 100 : percent(a.percentage, 'spec.abort.percentage');
      if (p !== undefined && problems.length === 0) {
        if (grpc !== undefined) abort = { status: httpStatusOfGrpc(grpc), grpcStatus: grpc, percent: p };
        else if (typeof s === 'number') abort = { status: s, percent: p };
      }
    }
  }
  return { spec: problems.length === 0 ? { delay, abort } : undefined, problems };
}
