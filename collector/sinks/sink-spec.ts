/**
 * `--flow-sink` values, checked once: `sqlite` (the flow store, always on: the API reads it) and
 * `otlp=<http(s) URL>` (OTLP logs over HTTP/protobuf, e.g. an OpenTelemetry Collector's
 * `http://otel:4318/v1/logs`). docs/architecture.md "Flow sinks".
 */
import { invalidArgument, quoteValue } from '../../common/errors';

export type SinkSpec = { kind: 'sqlite' } | { kind: 'otlp'; url: URL };

/** The OTLP/HTTP logs path a bare collector URL gets (the OTLP exporter's default). */
export const OTLP_LOGS_PATH = '/v1/logs';

/**
 * One `--flow-sink` value. A URL with no path gets `/v1/logs`; credentials in the URL are
 * refused (they would end up in logs and `palisade status`).
 */
export function parseSinkSpec(text: string): SinkSpec {
  if (text === 'sqlite') return { kind: 'sqlite' };
  const eq = text.indexOf('=');
  const kind = eq < 0 ? text : text.slice(0, eq);
  if (kind !== 'otlp') throw invalidArgument(`--flow-sink ${quoteValue(text)}: expected sqlite or otlp=<http(s) URL>`);
  const raw = text.slice(eq + 1);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidArgument(`--flow-sink otlp=${quoteValue(raw)}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidArgument(`--flow-sink otlp: ${quoteValue(url.protocol)} is not http: or https:`);
  if (url.username !== '' || url.password !== '') throw invalidArgument('--flow-sink otlp: the URL must not carry credentials');
  if (url.hash !== '') throw invalidArgument('--flow-sink otlp: the URL must not have a #fragment');
  if (url.pathname === '/' || url.pathname === '') url.pathname = OTLP_LOGS_PATH;
  return { kind: 'otlp', url };
}

/** Every `--flow-sink` value; the same OTLP URL twice is refused (every flow would go twice). */
export function parseSinkSpecs(texts: readonly string[]): SinkSpec[] {
  const out: SinkSpec[] = [];
  const seen = new Set<string>();
  for (const t of texts) {
    const s = parseSinkSpec(t);
    const key = s.kind === 'otlp' ? s.url.href : s.kind;
    if (seen.has(key)) throw invalidArgument(`--flow-sink ${quoteValue(t)} is given twice`);
    seen.add(key);
    out.push(s);
  }
  return out;
}

/** The name a sink goes by in metrics, logs and stats: `sqlite`, `otlp:<host:port>`. */
export function sinkName(s: SinkSpec): string {
  return s.kind === 'otlp' ? `otlp:${s.url.host}` : s.kind;
}
