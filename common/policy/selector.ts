/** `spec.selector.matchLabels` and the string maps of `metadata` (labels, annotations). */
import { isMap, isScalar } from 'yaml';
import { describeKey, describeValue, isEmpty, keyName, quote, scalarSource, type Field, type NodeReader, type Problems } from '../yaml-reader';
import { isDnsSubdomain, isLabelKey, isLabelValue, LABEL_NAME_RULE } from '../labels';

export { isDnsSubdomain };

/**
 * A mapping of strings to strings. With `labels`, keys and values must be Kubernetes label keys
 * and values (no wildcards, as Istio's selector validation says). Undefined if any problem.
 */
export function parseStringMap(r: NodeReader, field: Field, path: string, labels: boolean): Record<string, string> | undefined {
  if (isEmpty(field.node)) return {};
  if (!isMap(field.node)) {
    r.fail(field.line, path, `must be a mapping of names to strings, like {app: web}, got ${describeValue(field.node)}`);
    return undefined;
  }
  const entries: [string, string][] = [];
  let ok = true;
  for (const pair of field.node.items) {
    const key = keyName(pair);
    const keyLine = r.line(pair.key, field.line);
    const value = r.deref(pair.value);
    const valueLine = r.line(value, keyLine);
    if (key === undefined || (labels && !isLabelKey(key))) {
      const rule = key?.includes('*') ? 'wildcards are not supported in selectors' : `an optional DNS subdomain prefix and '/', then ${LABEL_NAME_RULE}`;
      r.fail(keyLine, path, `label key ${describeKey(pair)} is invalid (${rule})`);
      ok = false;
      continue;
    }
    if (!isScalar(value) || (value.value !== null && typeof value.value !== 'string')) {
      const hint = isScalar(value) ? ` (quote it: "${scalarSource(value)}")` : '';
      r.fail(valueLine, path, `${quote(key)} must have a string value, got ${describeValue(value)}${hint}`);
      ok = false;
      continue;
    }
    const text = value.value ?? '';
    if (labels && !isLabelValue(text)) {
      const rule = text.includes('*') ? 'wildcards are not supported in selectors' : LABEL_NAME_RULE;
      r.fail(valueLine, path, `label ${quote(key)} value ${quote(text)} is invalid (${rule})`);
      ok = false;
      continue;
    }
    entries.push([key, text]);
  }
  return ok ? Object.fromEntries(entries) : undefined; // own properties only: a key can never touch a prototype
}

/**
 * `selector: {matchLabels: {...}}`; undefined (every workload of the namespace) when it has no
 * labels, which Istio accepts with a warning.
 */
export function parseSelector(r: NodeReader, warnings: Problems, field: Field, path: string): Record<string, string> | undefined {
  const sel = r.fields(field.node, path, ['matchLabels'], field.line);
  if (!sel) return undefined;
  const matchLabels = sel.get('matchLabels');
  const labels = matchLabels ? parseStringMap(r, matchLabels, `${path}.matchLabels`, true) : {};
  if (labels && Object.keys(labels).length === 0) {
    warnings.add(field.line, `${r.label}: ${path}: has no labels, so it selects every workload in the namespace (remove it, or add matchLabels)`);
    return undefined;
  }
  return labels;
}
