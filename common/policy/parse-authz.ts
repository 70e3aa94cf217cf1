/**
 * `spec` of an Istio AuthorizationPolicy (security.istio.io/v1, v1beta1): validated with Istio's
 * own rules (pkg/config/validation ValidateAuthorizationPolicy) plus Palisade's stricter ones
 * (wildcards, CIDR host bits, ports 1-65535), then compiled into rules of condition closures.
 */
import {
  destinationIpCondition,
  headerCondition,
  hostsCondition,
  methodsCondition,
  namespacesCondition,
  pathsCondition,
  portsCondition,
  principalsCondition,
  requestAuthCondition,
  serviceAccountsCondition,
  sniCondition,
  sourceIpCondition,
  trustDomainsCondition,
} from './conditions';
import { parseSelector } from './selector';
import { pathProblem, type Wildcard } from './string-match';
import type { AuthzAction, CompiledAuthzRule, Condition } from './types';
import { isEmpty, type Field, type Item, type NodeReader, type Problems } from '../yaml-reader';
import { cidrs, ports, serviceAccounts, stripSpiffe, trustDomains, wildcards } from './values';
import { WHEN_KEYS, whenKeyProblem } from './when-keys';

const SPEC_FIELDS = ['selector', 'action', 'rules', 'targetRef', 'targetRefs', 'provider'];
const RULE_FIELDS = ['from', 'to', 'when'];
const SOURCE_FIELDS = [
  'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces',
  'serviceAccounts', 'notServiceAccounts', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks',
  'trustDomains', 'notTrustDomains',
];
const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'];
const CONDITION_FIELDS = ['key', 'values', 'notValues'];
const ACTIONS: readonly string[] = ['ALLOW', 'DENY', 'AUDIT'];

export interface ParsedAuthzSpec {
  action: AuthzAction;
  selector: Record<string, string> | undefined;
  rules: CompiledAuthzRule[];
}

/** Validate and compile; undefined if any problem was reported. */
export function parseAuthzSpec(
  r: NodeReader,
  warnings: Problems,
  specNode: unknown,
  specLine: number,
  namespace: string,
): ParsedAuthzSpec | undefined {
  const before = r.problems.found.length;
  const spec = r.fields(specNode, 'spec', SPEC_FIELDS, specLine);
  if (!spec) return undefined;
  for (const key of ['targetRef', 'targetRefs'] as const) {
    const f = spec.get(key);
    if (f) r.fail(f.keyLine, `spec.${key}`, 'is not supported: Palisade has no Gateway API attachment (use spec.selector.matchLabels)');
  }
  let action: AuthzAction = 'ALLOW';
  const actionField = spec.get('action');
  if (actionField) {
    const text = r.string(actionField, 'spec.action');
    if (text === 'CUSTOM') {
      r.fail(actionField.line, 'spec.action', 'CUSTOM is not supported: Palisade has no external authorizers (use ALLOW, DENY or AUDIT)');
    } else if (text !== undefined && ACTIONS.includes(text)) {
      action = text as AuthzAction;
    } else if (text !== undefined) {
      const upper = text.toUpperCase();
      const hint = ACTIONS.includes(upper) ? `use "${upper}"` : 'use ALLOW, DENY or AUDIT';
      r.fail(actionField.line, 'spec.action', `unknown action ${JSON.stringify(text)} (${hint})`);
    }
  }
  const provider = spec.get('provider');
  if (provider) r.fail(provider.keyLine, 'spec.provider', 'is not supported: it belongs to the CUSTOM action (remove it)');

  const selectorField = spec.get('selector');
  const selector = selectorField ? parseSelector(r, warnings, selectorField, 'spec.selector') : undefined;

  const rules: CompiledAuthzRule[] = [];
  const rulesField = spec.get('rules');
  const ruleItems = rulesField ? r.list(rulesField, 'spec.rules', '[{from: [...], to: [...]}]') : [];
  if (ruleItems) {
    ruleItems.forEach((item, i) => {
      const rule = parseRule(r, warnings, item, `spec.rules[${i}]`, action, namespace);
      if (rule) rules.push(rule);
    });
    if (action === 'DENY' && ruleItems.length === 0) {
      const line = rulesField?.line ?? specLine;
      r.fail(line, 'spec.rules', 'a DENY policy without rules never matches (add `rules: [{}]` to deny every request, as Istio requires)');
    }
  }
  if (r.problems.found.length > before) return undefined;
  return { action, selector, rules };
}

function parseRule(
  r: NodeReader,
  warnings: Problems,
  item: Item<unknown>,
  path: string,
  action: AuthzAction,
  namespace: string,
): CompiledAuthzRule | undefined {
  const before = r.problems.found.length;
  if (isEmpty(item.value)) {
    r.fail(item.line, path, 'a rule must not be empty (use {} to match every request)');
    return undefined;
  }
  const fields = r.fields(item.value, path, RULE_FIELDS, item.line);
  if (!fields) return undefined;
  const from = parseEntries(r, fields.get('from'), `${path}.from`, 'source', SOURCE_FIELDS, (src, p) =>
    sourceConditions(r, src, p, namespace),
  );
  const to = parseEntries(r, fields.get('to'), `${path}.to`, 'operation', OPERATION_FIELDS, (op, p) =>
    operationConditions(r, op, p, action),
  );
  const when: ScopedCondition[] = [];
  const whenField = fields.get('when');
  const whenItems = whenField ? r.list(whenField, `${path}.when`, '[{key: source.ip, values: [10.0.0.0/8]}]') : [];
  whenItems?.forEach((w, k) => when.push(...whenConditions(r, w, `${path}.when[${k}]`, action, namespace)));
  if (r.problems.found.length > before) return undefined;

  const conditions = [...(from ?? []).flat(), ...(to ?? []).flat(), ...when];
  const http = conditions.some((c) => c.http);
  const operations: ScopedCondition[][] = to ?? [];
  const byPort = (operations.length > 0 && operations.every((op) => op.some((c) => c.portScoped))) || when.some((c) => c.portScoped);
  if (action === 'DENY' && http && !byPort) {
    warnings.add(item.line, `${r.label}: ${path}: on non-HTTP traffic the HTTP-only conditions of a DENY rule are ignored, so it denies all TCP traffic the rest of the rule matches (scope it with ports)`);
  }
  return { from, to, when, http };
}

/** A condition plus whether it scopes by destination port (for the DENY-on-TCP warning). */
type ScopedCondition = Condition & { portScoped?: boolean };

/** `from` / `to`: a non-empty list of `{source: {...}}` / `{operation: {...}}`. */
function parseEntries(
  r: NodeReader,
  field: Field | undefined,
  path: string,
  inner: 'source' | 'operation',
  innerFields: readonly string[],
  compile: (fields: Map<string, Field>, path: string) => ScopedCondition[],
): ScopedCondition[][] | undefined {
  if (!field) return undefined;
  const items = r.list(field, path, `[{${inner}: {...}}]`);
  if (!items) return undefined;
  const what = inner === 'source' ? 'source' : 'operation';
  if (items.length === 0) {
    r.fail(field.line, path, `must not be empty (remove "${path.split('.').pop()}" to match any ${what})`);
    return undefined;
  }
  const out: ScopedCondition[][] = [];
  items.forEach((item, j) => {
    const p = `${path}[${j}]`;
    const entry = r.fields(item.value, p, [inner], item.line);
    if (!entry) return;
    const body = entry.get(inner);
    if (!body || isEmpty(body.node)) {
      r.fail(body?.line ?? item.line, `${p}.${inner}`, `must be set (remove the entry to match any ${what})`);
      return;
    }
    const before = r.problems.found.length;
    const fields = r.fields(body.node, `${p}.${inner}`, innerFields, body.line);
    if (!fields) return;
    const conditions = compile(fields, `${p}.${inner}`);
    if (r.problems.found.length > before) return;
    if (conditions.length === 0) {
      // Also `{principals: []}`: Istio rejects a source or operation with every list empty.
      r.fail(body.line, `${p}.${inner}`, `must not be empty (remove the entry to match any ${what})`);
      return;
    }
    out.push(conditions);
  });
  return out;
}

function sourceConditions(r: NodeReader, src: Map<string, Field>, path: string, namespace: string): ScopedCondition[] {
  const out: ScopedCondition[] = [];
  const accounts = src.has('serviceAccounts') || src.has('notServiceAccounts');
  const identity = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'].find((k) => src.has(k));
  if (accounts && identity) {
    const f = src.get('serviceAccounts') ?? src.get('notServiceAccounts')!;
    r.fail(f.keyLine, path, `serviceAccounts cannot be combined with ${identity} in one source (use separate "from" entries)`);
  }
  for (const [key, field] of src) {
    const negate = key.startsWith('not');
    const p = `${path}.${key}`;
    const values = r.strings(field, p);
    if (!values || values.length === 0) continue;
    switch (key) {
      case 'principals':
      case 'notPrincipals':
        push(out, principalsCondition, wildcards(r, values.map(stripSpiffe), p), negate);
        break;
      case 'namespaces':
      case 'notNamespaces':
        push(out, namespacesCondition, wildcards(r, values, p), negate);
        break;
      case 'requestPrincipals':
      case 'notRequestPrincipals':
        if (wildcards(r, values, p)) out.push(requestAuthCondition(negate));
        break;
      case 'serviceAccounts':
      case 'notServiceAccounts': {
        const accountsOk = serviceAccounts(r, values, p);
        if (accountsOk) out.push(serviceAccountsCondition(accountsOk, namespace, negate));
        break;
      }
      case 'trustDomains':
      case 'notTrustDomains':
        push(out, trustDomainsCondition, trustDomains(r, values, p), negate);
        break;
      default: {
        // ipBlocks, notIpBlocks, remoteIpBlocks, notRemoteIpBlocks
        const blocks = cidrs(r, values, p);
        if (blocks) out.push(sourceIpCondition(blocks, negate));
      }
    }
  }
  return out;
}

function operationConditions(r: NodeReader, op: Map<string, Field>, path: string, action: AuthzAction): ScopedCondition[] {
  const out: ScopedCondition[] = [];
  for (const [key, field] of op) {
    const negate = key.startsWith('not');
    const p = `${path}.${key}`;
    const values = r.strings(field, p, { numbers: key === 'ports' || key === 'notPorts' });
    if (!values || values.length === 0) continue;
    switch (key) {
      case 'hosts':
      case 'notHosts':
        // Port-agnostic where matching more can only deny more: DENY/AUDIT hosts, ALLOW notHosts.
        push(out, (w, n) => hostsCondition(w, n, (action !== 'ALLOW') !== n), wildcards(r, values, p), negate);
        break;
      case 'methods':
      case 'notMethods':
        push(out, methodsCondition, wildcards(r, values, p), negate);
        break;
      case 'paths':
      case 'notPaths': {
        let ok = true;
        for (const v of values) {
          const problem = pathProblem(v.value);
          if (problem) {
            r.fail(v.line, p, problem);
            ok = false;
          }
        }
        if (ok) out.push(pathsCondition(values.map((v) => v.value), negate));
        break;
      }
      default: {
        const list = ports(r, values, p);
        if (list) out.push({ ...portsCondition(list, negate), portScoped: !negate });
      }
    }
  }
  return out;
}

function whenConditions(
  r: NodeReader,
  item: Item<unknown>,
  path: string,
  action: AuthzAction,
  namespace: string,
): ScopedCondition[] {
  const fields = r.fields(item.value, path, CONDITION_FIELDS, item.line);
  if (!fields) return [];
  const keyField = fields.get('key');
  if (!keyField) {
    r.fail(item.line, path, `missing "key" (one of ${WHEN_KEYS.join(', ')})`);
    return [];
  }
  const key = r.string(keyField, `${path}.key`);
  if (key === undefined) return [];
  const keyProblem = whenKeyProblem(key);
  if (keyProblem) {
    r.fail(keyField.line, `${path}.key`, keyProblem);
    return [];
  }
  const valuesField = fields.get('values');
  const notValuesField = fields.get('notValues');
  const out: ScopedCondition[] = [];
  const lists: [Field | undefined, boolean][] = [
    [valuesField, false],
    [notValuesField, true],
  ];
  let given = false;
  for (const [field, negate] of lists) {
    if (!field) continue;
    const p = `${path}.${negate ? 'notValues' : 'values'}`;
    const values = r.strings(field, p, { numbers: key === 'destination.port' });
    if (values?.length === 0) continue;
    given = true;
    const c = values && whenCondition(r, key, values, p, negate, action, namespace);
    if (c) out.push(c);
  }
  if (!given) {
    r.fail(item.line, path, `key ${JSON.stringify(key)} has no "values" or "notValues" (Istio requires one: add values: [...] or notValues: [...])`);
  }
  return out;
}

function whenCondition(
  r: NodeReader,
  key: string,
  values: Item<string>[],
  path: string,
  negate: boolean,
  action: AuthzAction,
  namespace: string,
): ScopedCondition | undefined {
  if (key.startsWith('request.headers[')) {
    const name = key.slice('request.headers['.length, -1).toLowerCase();
    const w = wildcards(r, values, path);
    return w && headerCondition(name, w, negate, action !== 'DENY');
  }
  if (key.startsWith('request.auth.')) return wildcards(r, values, path) && requestAuthCondition(negate);
  switch (key) {
    case 'source.ip':
    case 'remote.ip': {
      const blocks = cidrs(r, values, path);
      return blocks && sourceIpCondition(blocks, negate);
    }
    case 'destination.ip': {
      const blocks = cidrs(r, values, path);
      return blocks && destinationIpCondition(blocks, negate);
    }
    case 'destination.port': {
      const list = ports(r, values, path);
      return list && { ...portsCondition(list, negate), portScoped: !negate };
    }
    case 'source.namespace': {
      const w = wildcards(r, values, path);
      return w && namespacesCondition(w, negate);
    }
    case 'source.principal': {
      const w = wildcards(r, values.map(stripSpiffe), path);
      return w && principalsCondition(w, negate);
    }
    case 'source.serviceAccount': {
      const list = serviceAccounts(r, values, path);
      return list && serviceAccountsCondition(list, namespace, negate);
    }
    case 'source.trustDomain': {
      const w = trustDomains(r, values, path);
      return w && trustDomainsCondition(w, negate);
    }
    default: {
      // connection.sni
      const w = wildcards(r, values, path);
      return w && sniCondition(w, negate);
    }
  }
}

function push(out: Condition[], make: (w: readonly Wildcard[], negate: boolean) => Condition, w: Wildcard[] | undefined, negate: boolean): void {
  if (w) out.push(make(w, negate));
}
