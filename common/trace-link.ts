/**
 * A link from a flow's trace id to the user's tracing UI (Jaeger, Tempo, …): the collector's
 * `--trace-url` template, checked once where it is given (`parseTraceUrl`), and filled in by the
 * dashboard page for each traced flow (`traceLink`). docs/architecture.md "The dashboard".
 */
import { invalidArgument } from './errors';
import { isTraceId } from './flow';

/** What the template's trace id goes in place of. */
export const TRACE_ID_PLACEHOLDER = '{traceId}';

const SAMPLE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const MAX_TEMPLATE = 2048;

function fill(template: string, traceId: string): string {
  return template.split(TRACE_ID_PLACEHOLDER).join(traceId);
}

/**
 * A `--trace-url` value: an http(s) URL with `{traceId}` in it, e.g.
 * `https://jaeger.example/trace/{traceId}`; without credentials (the page shows every link).
 */
export function parseTraceUrl(text: string): string {
  const what = '--trace-url';
  if (text.length > MAX_TEMPLATE) throw invalidArgument(`${what}: longer than ${MAX_TEMPLATE} characters`);
  if (!text.includes(TRACE_ID_PLACEHOLDER)) throw invalidArgument(`${what}: the URL must contain ${TRACE_ID_PLACEHOLDER} where the trace id goes`);
  let url: URL;
  try {
    url = new URL(fill(text, SAMPLE_ID));
  } catch {
    throw invalidArgument(`${what}: not a URL once ${TRACE_ID_PLACEHOLDER} is filled in`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidArgument(`${what}: ${JSON.stringify(url.protocol)} is not http: or https:`);
  if (url.username !== '' || url.password !== '') throw invalidArgument(`${what}: the URL must not carry credentials`);
  return text;
}

/** The link for a flow's trace id, or undefined (no template, or not a trace id). */
export function traceLink(template: string | undefined, traceId: string | undefined): string | undefined {
  if (template === undefined || !isTraceId(traceId)) return undefined;
  return fill(template, traceId);
}
