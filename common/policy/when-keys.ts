/** The `when[].key` attributes Palisade evaluates (Istio's conditions page, minus Envoy-only ones). */
import { unknownFieldHint } from '../yaml-reader';

const PLAIN_KEYS = [
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'source.trustDomain',
  'destination.ip',
  'destination.port',
  'connection.sni',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
];

/** Every supported key, for messages. */
export const WHEN_KEYS: readonly string[] = ['request.headers[<name>]', ...PLAIN_KEYS, 'request.auth.claims[<claim>]'];

/** RFC 9110 token characters. */
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Why `key` is not a supported condition key, or undefined. */
export function whenKeyProblem(key: string): string | undefined {
  if (PLAIN_KEYS.includes(key)) return undefined;
  if (key.startsWith('request.headers')) {
    const m = /^request\.headers\[([^\][]+)\]$/.exec(key);
    if (!m) return `bad key ${JSON.stringify(key)} (write request.headers[<header name>], like request.headers[x-token])`;
    if (!HEADER_NAME_RE.test(m[1]!)) return `bad key ${JSON.stringify(key)}: ${JSON.stringify(m[1])} is not an HTTP header name`;
    return undefined;
  }
  if (key.startsWith('request.auth.claims')) {
    if (/^request\.auth\.claims(\[[^\][]+\])+$/.test(key)) return undefined;
    return `bad key ${JSON.stringify(key)} (write request.auth.claims[<claim>] or request.auth.claims[<claim>][<nested claim>])`;
  }
  if (key.startsWith('destination.labels')) return `${JSON.stringify(key)} is replaced by the workload selector (use spec.selector.matchLabels)`;
  if (key === 'destination.namespace') return '"destination.namespace" is replaced by metadata.namespace (the policy applies to its own namespace)';
  if (key === 'destination.name' || key === 'destination.user') {
    return `${JSON.stringify(key)} was only supported by Istio's v1alpha1 RBAC (remove it; use spec.selector)`;
  }
  if (key.startsWith('experimental.envoy.filters.')) return `${JSON.stringify(key)} is not supported: Palisade has no Envoy filter metadata`;
  // A near miss of a map key keeps its [name]: request.header[x] → request.headers[x].
  const bracket = key.indexOf('[');
  if (bracket > 0) {
    const hint = unknownFieldHint(key.slice(0, bracket), ['request.headers', 'request.auth.claims']);
    if (hint.startsWith(' (did you mean')) return `unknown key ${JSON.stringify(key)} (did you mean "${hint.slice(16, -3)}${key.slice(bracket)}"?)`;
  }
  return `unknown key ${JSON.stringify(key)}${unknownFieldHint(key, WHEN_KEYS)}`;
}
