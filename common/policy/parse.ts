/**
 * Policy files → compiled policies, once, at the boundary. A file holds YAML documents (or JSON,
 * a subset of YAML) of kind AuthorizationPolicy or EgressPolicy, or a `kind: List` of them (as
 * `kubectl get -o yaml` writes). Every problem is one line `<source>:<line>: <what> (<hint>)`;
 * every problem is reported, and any problem rejects the whole input.
 */
import { Document, isMap, isScalar, LineCounter, parseAllDocuments, type YAMLMap } from 'yaml';
import { isDnsLabel } from '../identity';
import { PolicyInvalidError } from './errors';
import { parseAuthzSpec } from './parse-authz';
import { parseEgressSpec } from './parse-egress';
import { parseDestinationRuleObject, parseFaultObject, parseRouteObject } from './parse-route';
import { isDnsSubdomain, parseStringMap } from './selector';
import {
  AUTHZ_API_VERSIONS,
  DEFAULT_NAMESPACE,
  DEFAULT_ROOT_NAMESPACE,
  EGRESS_API_VERSION,
  type CompiledAuthorizationPolicy,
  type CompiledEgressPolicy,
  type CompiledPolicy,
  type PolicySet,
} from './types';
import { aliasScanProblem, expansionProblem, lineOfOffset, MAX_YAML_ALIASES } from '../yaml-limits';
import { DESTINATION_RULE_API_VERSIONS, type CompiledDestinationRule } from '../routes/destination-rule';
import { FAULT_API_VERSION, HTTP_ROUTE_API_VERSION, isRoute, type CompiledFaultInjection } from '../routes/types';
import { describeValue, describeYamlError, isEmpty, NodeReader, Problems, quote, unknownFieldHint, type Field, type Problem } from '../yaml-reader';

export interface ParseOptions {
  /** Policies in this namespace apply mesh-wide (default `istio-system`, as in Istio). */
  rootNamespace?: string;
}

export interface ParseResult {
  /** Empty when there are problems: a file is valid as a whole or not at all. */
  policies: CompiledPolicy[];
  problems: string[];
  /** Accepted but probably not what was meant (Istio warns about the same). */
  warnings: string[];
}

const TOP_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec'];
const METADATA_FIELDS = ['name', 'namespace', 'labels', 'annotations'];
/** Set by the Kubernetes API server; present in `kubectl get -o yaml` output, ignored here. */
const SERVER_METADATA = [
  'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink', 'deletionTimestamp',
  'deletionGracePeriodSeconds',
];
const KINDS: Record<string, readonly string[]> = {
  AuthorizationPolicy: AUTHZ_API_VERSIONS,
  EgressPolicy: [EGRESS_API_VERSION],
  HTTPRoute: [HTTP_ROUTE_API_VERSION],
  GRPCRoute: [HTTP_ROUTE_API_VERSION],
  FaultInjection: [FAULT_API_VERSION],
  DestinationRule: DESTINATION_RULE_API_VERSIONS,
};
const SUPPORTED = 'AuthorizationPolicy with apiVersion security.istio.io/v1 or v1beta1, EgressPolicy with apiVersion palisade.dev/v1, HTTPRoute or GRPCRoute with apiVersion gateway.networking.k8s.io/v1, FaultInjection with apiVersion palisade.dev/v1, DestinationRule with apiVersion networking.istio.io/v1';
/** An empty string in a list of match values is likely meant as "any value", which policies write "*". */
const EMPTY_MATCH_FIX = 'remove it, or use "*" to require any value';
const DNS_LABEL_RULE = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

/**
 * Parse and validate one file's text. Pure. (`rootNamespace` does not change what is valid; it is
 * accepted for symmetry with `compilePolicyFiles`, whose PolicySet carries it.)
 */
export function parsePolicies(text: string, source: string, _opts: ParseOptions = {}): ParseResult {
  return finish(parseSource(text, source));
}

function finish(r: SourceResult): ParseResult {
  const problems = sortedMessages(r.problems);
  return { policies: problems.length > 0 ? [] : r.policies, problems, warnings: sortedMessages(r.warnings) };
}

/**
 * Compile several files into one set, all or nothing: any problem in any file (including the same
 * kind/namespace/name defined twice, in one file or across files) throws `PolicyInvalidError`.
 */
export function compilePolicyFiles(files: readonly { source: string; text: string }[], opts: ParseOptions = {}): PolicySet {
  const problems: string[] = [];
  const warnings: string[] = [];
  const policies: CompiledPolicy[] = [];
  const seen = new Map<string, CompiledPolicy>();
  for (const file of files) {
    const r = parseSource(file.text, file.source);
    for (const p of r.policies) {
      const key = policyKey(p);
      const earlier = seen.get(key);
      if (!earlier) seen.set(key, p);
      else if (earlier.source !== p.source) {
        r.problems.push({
          line: p.line,
          message: `${p.source}:${p.line}: ${p.kind} ${p.id}: defined again, first at ${earlier.source}:${earlier.line} (remove or rename one)`,
        });
      }
      policies.push(p);
    }
    problems.push(...sortedMessages(r.problems));
    warnings.push(...sortedMessages(r.warnings));
  }
  if (problems.length > 0) throw new PolicyInvalidError(problems);
  return {
    authorization: policies.filter((p): p is CompiledAuthorizationPolicy => p.kind === 'AuthorizationPolicy'),
    egress: policies.filter((p): p is CompiledEgressPolicy => p.kind === 'EgressPolicy'),
    routes: policies.filter(isRoute),
    faults: policies.filter((p): p is CompiledFaultInjection => p.kind === 'FaultInjection'),
    destinationRules: policies.filter((p): p is CompiledDestinationRule => p.kind === 'DestinationRule'),
    rootNamespace: opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE,
    warnings,
  };
}

function policyKey(p: CompiledPolicy): string {
  return `${p.kind}/${p.namespace}/${p.name}`;
}

function sortedMessages(found: readonly Problem[]): string[] {
  return [...found].sort((a, b) => a.line - b.line).map((p) => p.message); // stable: same-line order kept
}

interface SourceResult {
  policies: CompiledPolicy[];
  problems: Problem[];
  warnings: Problem[];
}

function parseSource(text: string, source: string): SourceResult {
  const lineCounter = new LineCounter();
  const problems = new Problems(source, lineCounter);
  const warnings = new Problems(source, lineCounter, 'warning: ');
  const result: SourceResult = { policies: [], problems: problems.found, warnings: warnings.found };
  // An alias bomb is refused before the parser sees it (yaml-limits.ts).
  const tooManyAliases = aliasScanProblem(text);
  if (tooManyAliases) {
    problems.add(lineOfOffset(text, tooManyAliases.offset), tooManyAliases.message);
    return result;
  }
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (!Array.isArray(docs)) return result; // an empty stream
  for (const doc of docs) {
    let lastLine = 0; // the parser often reports one mistake several times: keep the first per line
    for (const err of doc.errors) {
      const line = problems.lineAt(err.pos[0]);
      if (line !== lastLine) problems.add(line, describeYamlError(err, doc));
      lastLine = line;
    }
  }
  if (problems.found.length > 0) return result; // syntax errors: not worth validating further
  const tooBig = expansionProblem(docs);
  if (tooBig) {
    problems.add(problems.lineAt(tooBig.offset), tooBig.message);
    return result;
  }
  for (const doc of docs) for (const w of doc.warnings) problems.add(problems.lineAt(w.pos[0]), describeYamlError(w, doc));
  compileDocuments(docs, problems, warnings, result);
  return result;
}

/**
 * A manifest the collector already validated (a stored policy, or one a parse worker read from a
 * file) compiled again without reading text: the same result as
 * `parsePolicies(JSON.stringify(manifest), source)`, several times faster (no YAML parser), so
 * the collector can compile what it keeps on its event loop. `keep`: `manifest` is one this module
 * made (a compiled policy's manifest, as the collector stores them): it becomes the compiled
 * policy's manifest as it is, instead of a copy made again (the same data, less garbage).
 */
export function parseManifest(manifest: Readonly<Record<string, unknown>>, source: string, opts: { keep?: boolean } = {}): ParseResult {
  const lineCounter = new LineCounter();
  const problems = new Problems(source, lineCounter);
  const warnings = new Problems(source, lineCounter, 'warning: ');
  const result: SourceResult = { policies: [], problems: problems.found, warnings: warnings.found };
  compileDocuments([new Document(manifest, { aliasDuplicateObjects: false })], problems, warnings, result, opts.keep ? manifest : undefined);
  return finish(result);
}

/**
 * The policies of composed documents (syntax already checked) into `result`. `given`: the one
 * document's data, a manifest this module made (so already what `manifestOf` would make of it):
 * kept as the policy's manifest instead of made again.
 */
function compileDocuments(docs: readonly Document[], problems: Problems, warnings: Problems, result: SourceResult, given?: Readonly<Record<string, unknown>>): void {
  const seen = new Map<string, CompiledPolicy>();
  let index = 0;
  const add = (policy: CompiledPolicy | undefined): void => {
    if (!policy) return;
    const earlier = seen.get(policyKey(policy));
    if (earlier) {
      problems.add(policy.line, `${policy.kind} ${policy.id}: defined again, first at line ${earlier.line} (remove or rename one)`);
    } else {
      seen.set(policyKey(policy), policy);
      result.policies.push(policy);
    }
  };
  for (const doc of docs) {
    const root = doc.contents;
    if (isEmpty(root)) continue; // `---` with nothing after it
    const items = listItems(new NodeReader(problems, doc, 'List', EMPTY_MATCH_FIX), root);
    for (const item of items ?? [root]) add(parseObject(problems, warnings, doc, item, ++index, items ? undefined : given));
  }
}

/** The items of a `kind: List` document, or undefined if it is not one. */
function listItems(r: NodeReader, root: unknown): unknown[] | undefined {
  if (!isMap(root) || scalarAt(root, 'kind') !== 'List') return undefined;
  const fields = r.fields(root, '', ['apiVersion', 'kind', 'items', 'metadata'], r.line(root, 1));
  const items = fields?.get('items');
  if (!items) return [];
  return r.list(items, 'items', '[{apiVersion: ..., kind: ..., metadata: ..., spec: ...}]')?.map((i) => i.value) ?? [];
}

function scalarAt(map: YAMLMap, key: string): unknown {
  const node = map.get(key, true);
  return isScalar(node) ? node.value : undefined;
}

function parseObject(problems: Problems, warnings: Problems, doc: Document, node: unknown, index: number, given?: Readonly<Record<string, unknown>>): CompiledPolicy | undefined {
  const before = problems.found.length;
  const line = problems.lineOf(node, 1);
  const r = new NodeReader(problems, doc, `document #${index}`, EMPTY_MATCH_FIX);
  if (!isMap(node)) {
    r.fail(line, '', `must be a mapping with apiVersion, kind, metadata and spec, got ${describeValue(node)}`);
    return undefined;
  }
  // Name the policy in every message before validating anything.
  const kindText = scalarAt(node, 'kind');
  const meta = node.get('metadata', true);
  const nameText = isMap(meta) ? scalarAt(meta, 'name') : undefined;
  const nsText = isMap(meta) ? scalarAt(meta, 'namespace') : undefined;
  const knownKind = typeof kindText === 'string' && Object.hasOwn(KINDS, kindText) ? kindText : undefined;
  const namespace = typeof nsText === 'string' && nsText !== '' ? nsText : DEFAULT_NAMESPACE;
  const named = typeof nameText === 'string' && nameText !== '' ? `${namespace}/${nameText}` : `#${index}`;
  r.label = knownKind ? `${knownKind} ${named}` : `document #${index}`;

  const top = r.fields(node, '', TOP_FIELDS, line, ['status']);
  if (!top) return undefined;
  const kind = checkKind(r, top, line);
  const metadata = parseMetadata(r, top.get('metadata'), line);
  const specField = top.get('spec');
  const specNode = specField?.node;
  const specLine = specField?.line ?? line;
  if (!kind) return undefined;
  // The spec is checked even when metadata is not, so that every problem is reported.
  const specNamespace = metadata?.namespace ?? namespace;
  const authz = kind.kind === 'AuthorizationPolicy' ? parseAuthzSpec(r, warnings, specNode, specLine, specNamespace) : undefined;
  const egress = kind.kind === 'EgressPolicy' ? parseEgressSpec(r, warnings, specNode, specLine) : undefined;
  const route = kind.kind === 'HTTPRoute' || kind.kind === 'GRPCRoute' ? parseRouteObject(r, warnings, node, specNode, specLine, specNamespace, kind.kind) : undefined;
  const fault = kind.kind === 'FaultInjection' ? parseFaultObject(r, warnings, node, specNode, specLine) : undefined;
  const dr = kind.kind === 'DestinationRule' ? parseDestinationRuleObject(r, warnings, node, specNode, specLine, specNamespace) : undefined;
  if (!metadata || problems.found.length > before) return undefined;
  let manifest: Record<string, unknown>;
  try {
    manifest = given ? (given as Record<string, unknown>) : manifestOf(doc, node, metadata.namespace);
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    // the yaml package's own guard (maxAliasCount): an anchor used too often inside other anchors
    r.fail(line, '', `its YAML aliases repeat too much (${err.message}): write the values out`);
    return undefined;
  }

  const base = {
    apiVersion: kind.apiVersion,
    namespace: metadata.namespace,
    name: metadata.name,
    id: `${metadata.namespace}/${metadata.name}`,
    source: problems.source,
    line,
    manifest,
  };
  if (authz) {
    const http = authz.rules.some((rule) => rule.http);
    return { ...base, kind: 'AuthorizationPolicy', action: authz.action, selector: authz.selector, rules: authz.rules, http };
  }
  if (egress) return { ...base, kind: 'EgressPolicy', selector: egress.selector, rules: egress.rules, deny: egress.deny, allowlist: egress.allowlist, dns: egress.dns };
  if (route) return { ...base, kind: kind.kind === 'GRPCRoute' ? 'GRPCRoute' : 'HTTPRoute', selector: undefined, parents: route.parents, rules: route.rules };
  if (fault) return { ...base, kind: 'FaultInjection', selector: undefined, delay: fault.delay, abort: fault.abort };
  if (dr) return { ...base, kind: 'DestinationRule', selector: undefined, host: dr.host, policy: dr.policy, ports: dr.ports, exportTo: dr.exportTo };
  return undefined;
}

function checkKind(r: NodeReader, top: Map<string, Field>, line: number): { kind: string; apiVersion: string } | undefined {
  const kindField = top.get('kind');
  const apiField = top.get('apiVersion');
  if (!kindField) {
    r.fail(line, '', `missing "kind" (supported: ${SUPPORTED})`);
    return undefined;
  }
  const kind = r.string(kindField, 'kind');
  if (kind === undefined) return undefined;
  const versions = KINDS[kind];
  if (!Object.hasOwn(KINDS, kind) || !versions) {
    const hint = unknownFieldHint(kind, Object.keys(KINDS));
    const supported = hint.startsWith(' (did you mean') ? hint.slice(1) : `(supported: ${SUPPORTED})`;
    r.fail(kindField.line, 'kind', `unsupported kind ${quote(kind)} ${supported}`);
    return undefined;
  }
  const want = versions.join(' or ');
  if (!apiField) {
    r.fail(line, '', `missing "apiVersion" (use ${versions[0]})`);
    return undefined;
  }
  const apiVersion = r.string(apiField, 'apiVersion');
  if (apiVersion === undefined) return undefined;
  if (!versions.includes(apiVersion)) {
    r.fail(apiField.line, 'apiVersion', `${kind} needs apiVersion ${want}, got ${quote(apiVersion)}`);
    return undefined;
  }
  return { kind, apiVersion };
}

interface Metadata {
  name: string;
  namespace: string;
}

function parseMetadata(r: NodeReader, field: Field | undefined, line: number): Metadata | undefined {
  if (!field) {
    r.fail(line, '', 'missing "metadata" (give at least metadata.name)');
    return undefined;
  }
  const meta = r.fields(field.node, 'metadata', METADATA_FIELDS, field.line, SERVER_METADATA);
  if (!meta) return undefined;
  let ok = true;
  const nameField = meta.get('name');
  let name: string | undefined;
  if (!nameField) {
    r.fail(field.line, 'metadata', 'missing "name"');
    ok = false;
  } else {
    name = r.string(nameField, 'metadata.name');
    if (name !== undefined && !isDnsSubdomain(name)) {
      const suggestion = name.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '');
      const hint = isDnsSubdomain(suggestion) ? ` (try ${quote(suggestion)})` : '';
      r.fail(nameField.line, 'metadata.name', `must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters), got ${quote(name)}${hint}`);
      ok = false;
    }
    ok &&= name !== undefined;
  }
  let namespace = DEFAULT_NAMESPACE;
  const nsField = meta.get('namespace');
  if (nsField) {
    const ns = r.string(nsField, 'metadata.namespace');
    if (ns !== undefined && isDnsLabel(ns)) namespace = ns;
    else {
      if (ns !== undefined) r.fail(nsField.line, 'metadata.namespace', `must be a DNS-1123 label (${DNS_LABEL_RULE}), got ${quote(ns)}`);
      ok = false;
    }
  }
  const labels = meta.get('labels');
  if (labels && !parseStringMap(r, labels, 'metadata.labels', true)) ok = false;
  const annotationsField = meta.get('annotations');
  const annotations = annotationsField ? parseStringMap(r, annotationsField, 'metadata.annotations', false) : {};
  if (!annotations) ok = false;
  else if (annotations['istio.io/dry-run'] !== undefined && annotationsField) {
    r.fail(annotationsField.line, 'metadata.annotations', 'istio.io/dry-run is not supported: Palisade would enforce this policy (remove the annotation to enforce it, or leave the policy out)');
    ok = false;
  }
  return ok && name !== undefined ? { name, namespace } : undefined;
}

/** The document as JSON-safe plain data, without status and server-set metadata, namespace filled in. */
function manifestOf(doc: Document, node: YAMLMap, namespace: string): Record<string, unknown> {
  const data = JSON.parse(JSON.stringify(node.toJS(doc, { maxAliasCount: MAX_YAML_ALIASES }))) as Record<string, unknown>;
  delete data.status;
  const metadata = { ...(data.metadata as Record<string, unknown>) };
  for (const key of SERVER_METADATA) delete metadata[key];
  metadata.namespace = namespace;
  data.metadata = metadata;
  return data;
}
