/**
 * A route's header changes (RequestHeaderModifier / ResponseHeaderModifier: set, add, remove,
 * names lowercase) applied to the two forms the proxy keeps headers in: HTTP/1.1's flat list
 * (name, value, name, value…, names as sent) and HTTP/2's header object (lowercase names, a
 * repeated header as an array). `set` replaces the first line of that name in place and drops the
 * others (or appends one), `add` appends a line (a list header's values, as a comma would join
 * them), `remove` drops every line of the name. Pure: new lists, inputs untouched.
 */
import type { OutgoingHttpHeaders } from 'node:http2';
import type { HeaderOp } from '../../../common/routes/types';

/** `lines` (name, value, …) with `ops` applied in order. */
export function editLines(lines: readonly string[], ops: readonly HeaderOp[]): string[] {
  let out = lines.slice();
  for (const o of ops) {
    const next: string[] = [];
    let placed = false;
    for (let i = 0; i < out.length; i += 2) {
      if (out[i]!.toLowerCase() !== o.name) {
        next.push(out[i]!, out[i + 1]!);
        continue;
      }
      if (o.op === 'add') next.push(out[i]!, out[i + 1]!);
      else if (o.op === 'set' && !placed) {
        next.push(out[i]!, o.value);
        placed = true;
      }
    }
    if (o.op === 'add' || (o.op === 'set' && !placed)) next.push(o.name, o.value);
    out = next;
  }
  return out;
}

/** `headers` with `ops` applied in order. */
export function editHeaderObject(headers: Readonly<OutgoingHttpHeaders>, ops: readonly HeaderOp[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...headers };
  for (const o of ops) {
    if (o.op === 'remove') delete out[o.name];
    else if (o.op === 'set') out[o.name] = o.value;
    else {
      const had = out[o.name];
      out[o.name] = had === undefined ? o.value : [...(Array.isArray(had) ? had : [String(had)]), o.value];
    }
  }
  return out;
}

/**
 * The headers the proxy's own answer (a 503, 504, a fault's abort, a redirect, a gRPC
 * trailers-only status) carries for its framing and meaning: a route's ResponseHeaderModifier
 * applies to that answer too, as Envoy's does to its local replies, but never to these (a
 * redirect keeps its Location, a gRPC answer its status). The framing ones are refused at parse
 * (common/routes/parse-filters.ts); these are the rest.
 */
const OWN_ANSWER_HEADERS: ReadonlySet<string> = new Set(['location', 'content-type', 'content-length', 'date', 'connection', 'grpc-status', 'grpc-message']);

/** `ops` without those naming a header the proxy's own answer keeps. */
export function ownAnswerOps(ops: readonly HeaderOp[]): readonly HeaderOp[] {
  return ops.some((o) => OWN_ANSWER_HEADERS.has(o.name)) ? ops.filter((o) => !OWN_ANSWER_HEADERS.has(o.name)) : ops;
}

/** HTTP/1.1's Host line (the first, set by the front) with `host`. */
export function withHost(lines: readonly string[], host: string): string[] {
  return editLines(lines, [{ op: 'set', name: 'host', value: host }]);
}

/** An origin-form target with its path replaced, the query as sent kept. */
export function withPath(target: string, path: string): string {
  const q = target.indexOf('?');
  return q < 0 ? path : path + target.slice(q);
}
