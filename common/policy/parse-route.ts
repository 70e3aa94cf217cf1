/**
 * An HTTPRoute document inside a policy file: its spec checked by common/routes (plain data),
 * each problem reported at the line of the field it names.
 */
import { isMap, isSeq, type YAMLMap } from 'yaml';
import { parseHttpRouteSpec, type ParsedHttpRouteSpec } from '../routes/parse-http-route';
import type { NodeReader, Problems } from '../yaml-reader';

export function parseRouteObject(r: NodeReader, warnings: Problems, doc: YAMLMap, specNode: unknown, specLine: number, namespace: string): ParsedHttpRouteSpec | undefined {
  const spec = r.deref(specNode);
  const data: unknown = spec && typeof (spec as { toJSON?: unknown }).toJSON === 'function' ? (spec as { toJSON(): unknown }).toJSON() : spec;
  const result = parseHttpRouteSpec(data ?? {}, namespace);
  const lineOf = (path: string): number => r.line(nodeAt(r, doc, path), specLine);
  for (const p of result.problems) r.fail(lineOf(p.path), p.path, p.message);
  for (const w of result.warnings) warnings.add(lineOf(w.path), `${r.label}: ${w.path}: ${w.message}`);
  return result.spec;
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
