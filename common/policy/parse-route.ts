/**
 * An HTTPRoute or GRPCRoute document inside a policy file: its spec checked by common/routes (plain data),
 * each problem reported at the line of the field it names.
 */
import { isMap, isSeq, type YAMLMap } from 'yaml';
import { parseDestinationRuleSpec, type ParsedDestinationRule } from '../routes/parse-destination-rule';
import { parseFaultSpec } from '../routes/parse-fault';
import { parseGrpcRouteSpec } from '../routes/parse-grpc-route';
import { parseHttpRouteSpec, type ParsedHttpRouteSpec, type RouteProblem } from '../routes/parse-http-route';
import type { FaultSpec } from '../routes/types';
import type { NodeReader, Problems } from '../yaml-reader';

export function parseRouteObject(r: NodeReader, warnings: Problems, doc: YAMLMap, specNode: unknown, specLine: number, namespace: string, kind: 'HTTPRoute' | 'GRPCRoute'): ParsedHttpRouteSpec | undefined {
  const spec = plain(r, specNode) ?? {};
  const result = kind === 'GRPCRoute' ? parseGrpcRouteSpec(spec, namespace) : parseHttpRouteSpec(spec, namespace);
  report(r, warnings, doc, specLine, result.problems, result.warnings);
  return result.spec;
}

/** A FaultInjection document's spec. */
export function parseFaultObject(r: NodeReader, warnings: Problems, doc: YAMLMap, specNode: unknown, specLine: number): FaultSpec | undefined {
  const result = parseFaultSpec(plain(r, specNode) ?? {});
  report(r, warnings, doc, specLine, result.problems, []);
  return result.spec;
}

/** A DestinationRule document's spec (its trafficPolicy, for the Service its host names). */
export function parseDestinationRuleObject(r: NodeReader, warnings: Problems, doc: YAMLMap, specNode: unknown, specLine: number, namespace: string): ParsedDestinationRule | undefined {
  const result = parseDestinationRuleSpec(plain(r, specNode) ?? {}, namespace);
  report(r, warnings, doc, specLine, result.problems, result.warnings);
  return result.spec;
}

function plain(r: NodeReader, node: unknown): unknown {
  const spec = r.deref(node);
  return spec && typeof (spec as { toJSON?: unknown }).toJSON === 'function' ? (spec as { toJSON(): unknown }).toJSON() : spec;
}

/** Each problem and warning at the line of the field it names. */
function report(r: NodeReader, warnings: Problems, doc: YAMLMap, specLine: number, problems: RouteProblem[], warned: RouteProblem[]): void {
  const lineOf = (path: string): number => r.line(nodeAt(r, doc, path), specLine);
  for (const p of problems) r.fail(lineOf(p.path), p.path, p.message);
  for (const w of warned) warnings.add(lineOf(w.path), `${r.label}: ${w.path}: ${w.message}`);
}

/** The YAML node at `spec.rules[0].backendRefs[1]`, or the deepest one that exists. */
function nodeAt(r: NodeReader, root: YAMLMap, path: string): unknown {
  let node: unknown = root;
  for (const part of path.match(/[^.[\]]+/g) ?? []) {
    const cur = r.deref(node);
    const next = isMap(cur) ? cur.get(part, true) : isSeq(cur) && /^\d+$/.test(part) ? cur.get(Number(part), true) : undefined;
    if (next === undefined) return cur;
    node = next;
  }
  return node;
}
