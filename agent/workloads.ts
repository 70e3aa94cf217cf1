/**
 * The agent's workloads file (`palisade agent --workloads FILE`): which network namespaces on
 * this node hold which workloads. It is turned into validated `Workload`s here, once, before
 * anything attaches to a namespace. Every problem is one line `<source>:<line>: <what> (<hint>)`.
 */
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { posix } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type YAMLMap } from 'yaml';
import { errorCode, PalisadeError } from '../common/errors';
import { INTERFACE_NAME } from './datapath/pod-links';
import { isDnsLabel, isTrustDomain, spiffeId } from '../common/identity';
import { isLabelKey, isLabelValue, LABEL_NAME_RULE, WORKLOAD_LABEL } from '../common/labels';
import type { ServiceRegistration } from '../common/mesh-protocol';
import {
  deref,
  describeKey,
  describeValue,
  describeYamlError,
  keyName,
  Problems,
  quote,
  scalarSource,
  unknownFieldHint,
} from '../common/yaml-reader';
import { parseServices } from './workload-services';

export interface Workload {
  name: string;
  namespace: string;
  serviceAccount: string;
  /** Path of the workload's network namespace (`/var/run/netns/NAME`, `/proc/PID/ns/net`, ...). */
  netns: string;
  /** The workload's IPv4 address, canonical dotted quad. */
  ip: string;
  /** Only the node proxy may open connections to this workload. */
  strict: boolean;
  /** The pod's host-side interface (where its per-pod filters hang); derived from the netns when absent. */
  interface?: string;
  /** The file's labels plus `palisade.dev/workload: <name>` (WORKLOAD_LABEL), which every workload carries. */
  labels: Record<string, string>;
  /** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>` */
  identity: string;
}

export interface WorkloadsConfig {
  trustDomain: string;
  workloads: Workload[];
  /** Services this host declares (workload-services.ts); the collector finds their endpoints. */
  services: ServiceRegistration[];
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** A workloads file that failed validation; `problems` lists every problem, one line each. */
export class WorkloadsInvalidError extends PalisadeError {
  readonly problems: readonly string[];

  constructor(problems: string[]) {
    const more = problems.length - 1;
    const suffix = more > 0 ? ` (and ${more} more problem${more === 1 ? '' : 's'})` : '';
    super('PALISADE_ERR_WORKLOADS_INVALID', `${problems[0] ?? 'invalid workloads file'}${suffix}`);
    this.problems = problems;
  }
}

const TOP_LEVEL_FIELDS = ['workloads', 'trustDomain', 'services'];
const WORKLOAD_FIELDS = ['name', 'namespace', 'serviceAccount', 'netns', 'ip', 'strict', 'interface', 'labels'];
const REQUIRED_FIELDS = ['name', 'namespace', 'serviceAccount', 'netns', 'ip'] as const;
type RequiredField = (typeof REQUIRED_FIELDS)[number];

const DNS_LABEL_RULE =
  "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";
const IPV4_RE = /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$/;
const PATH_MAX = 4096;
const NETNS_EXAMPLES = '/var/run/netns/web-1 or /proc/1234/ns/net';
/** A duplicate key is reported without the " (remove one)" hint the policy files give. */
const YAML_ERROR_WORDING = { duplicateKeyHint: false };

/** Throws every problem found so far, in line order, if there is any. */
function throwIfAny(problems: Problems): void {
  if (problems.found.length === 0) return;
  const sorted = [...problems.found].sort((a, b) => a.line - b.line); // stable: same-line order kept
  throw new WorkloadsInvalidError(sorted.map((p) => p.message));
}

/** Parse and validate a workloads file's text. Pure; throws `WorkloadsInvalidError`. */
export function parseWorkloads(text: string, source: string): WorkloadsConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems = new Problems(source, lineCounter);
  for (const err of doc.errors) problems.add(problems.lineAt(err.pos[0]), describeYamlError(err, doc, YAML_ERROR_WORDING));
  throwIfAny(problems); // a document with syntax errors is not worth validating further
  for (const warn of doc.warnings) problems.add(problems.lineAt(warn.pos[0]), describeYamlError(warn, doc, YAML_ERROR_WORDING));

  const root = deref(doc, doc.contents);
  if (!isMap(root)) {
    const got = root == null ? 'an empty file' : describeValue(root);
    problems.add(problems.lineOf(root), `the top level must be a mapping with a "workloads" list, got ${got}`);
    throwIfAny(problems);
  }
  const top = root as YAMLMap;

  let trustDomain = DEFAULT_TRUST_DOMAIN;
  let services: ServiceRegistration[] = [];
  let workloadsNode: unknown;
  let workloadsFound = false;
  for (const pair of top.items) {
    const key = keyName(pair);
    const line = problems.lineOf(pair.key, problems.lineOf(top));
    if (key === 'trustDomain') {
      trustDomain = checkTrustDomain(problems, deref(doc, pair.value), line) ?? trustDomain;
    } else if (key === 'services') {
      services = parseServices(problems, doc, deref(doc, pair.value), line);
    } else if (key === 'workloads') {
      workloadsFound = true;
      workloadsNode = deref(doc, pair.value);
    } else {
      problems.add(line, `unknown top-level field ${describeKey(pair)}${unknownFieldHint(key, TOP_LEVEL_FIELDS)}`);
    }
  }

  const workloads: Workload[] = [];
  const none = '(use "workloads: []" for none)';
  if (!workloadsFound) {
    problems.add(problems.lineOf(top), `missing required top-level field "workloads" ${none}`);
  } else if (!isSeq(workloadsNode)) {
    const line = problems.lineOf(workloadsNode, problems.lineOf(top));
    problems.add(line, `"workloads" must be a list, got ${describeValue(workloadsNode)} ${none}`);
  } else {
    const seen = new Seen(problems);
    const listLine = problems.lineOf(workloadsNode);
    workloadsNode.items.forEach((item, index) => {
      // An aliased workload (`- *web`) is reported at the alias, its fields at the anchor.
      const line = problems.lineOf(item, listLine);
      const workload = parseWorkload(problems, doc, deref(doc, item), index, trustDomain, line);
      if (workload) {
        seen.check(workload);
        workloads.push(workload.value);
      }
    });
  }
  throwIfAny(problems);
  return { trustDomain, workloads, services };
}

/** Read and parse a workloads file; an unreadable file is a one-line error naming path and errno. */
export function loadWorkloadsFile(path: string): WorkloadsConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const detail = errorCode(err) ?? (err instanceof Error ? err.message : String(err));
    const what = err instanceof Error ? /^[A-Z0-9_]+: ([^,]+),/.exec(err.message)?.[1] : undefined;
    throw new PalisadeError(
      'PALISADE_ERR_WORKLOADS_INVALID',
      `cannot read workloads file ${path}: ${detail}${what ? ` (${what})` : ''}`,
      { cause: err },
    );
  }
  return parseWorkloads(text, path);
}

interface ParsedWorkload {
  value: Workload;
  label: string;
  lines: { workload: number; ip: number; netns: number };
}

function parseWorkload(
  problems: Problems,
  doc: Document,
  node: unknown,
  index: number,
  trustDomain: string,
  line: number,
): ParsedWorkload | undefined {
  const before = problems.found.length;
  if (!isMap(node)) {
    const shape = `must be a mapping with ${REQUIRED_FIELDS.join(', ').replace(/, ip$/, ' and ip')}`;
    problems.add(line, `workload #${index + 1}: ${shape}, got ${describeValue(node)}`);
    return undefined;
  }
  const nameNode = deref(doc, node.items.find((pair) => keyName(pair) === 'name')?.value);
  const nameValue = isScalar(nameNode) ? nameNode.value : undefined;
  const label =
    typeof nameValue === 'string' && nameValue !== '' ? `workload ${quote(nameValue)}` : `workload #${index + 1}`;
  const fail = (at: number, message: string): void => problems.add(at, `${label}: ${message}`);

  const strings: Partial<Record<RequiredField, string>> = {};
  const fieldLines: Partial<Record<string, number>> = {};
  let strict = false;
  let iface: string | undefined;
  let labels: Record<string, string> = {};
  for (const pair of node.items) {
    const key = keyName(pair);
    const keyLine = problems.lineOf(pair.key, line);
    const value = deref(doc, pair.value);
    const valueLine = problems.lineOf(value, keyLine);
    if (key === undefined || !WORKLOAD_FIELDS.includes(key)) {
      fail(keyLine, `unknown field ${describeKey(pair)}${unknownFieldHint(key, WORKLOAD_FIELDS)}`);
      continue;
    }
    fieldLines[key] = valueLine;
    if (key === 'strict') {
      if (isScalar(value) && typeof value.value === 'boolean') strict = value.value;
      else fail(valueLine, `"strict" must be true or false, got ${describeValue(value)}`);
    } else if (key === 'interface') {
      const str = checkString(key, value, valueLine, fail);
      if (str !== undefined && INTERFACE_NAME.test(str)) iface = str;
      else if (str !== undefined) fail(valueLine, `"interface" must be a network interface name like veth1a2b3c (1-15 letters, digits, '.', '-', '_', '@'), got ${quote(str)}`);
    } else if (key === 'labels') {
      labels = checkLabels(problems, doc, value, valueLine, fail, typeof nameValue === 'string' ? nameValue : undefined) ?? labels;
    } else {
      const field = key as RequiredField;
      const str = checkString(field, value, valueLine, fail);
      if (str !== undefined && checkField(field, str, valueLine, fail)) strings[field] = str;
    }
  }
  for (const field of REQUIRED_FIELDS) {
    if (!(field in fieldLines)) fail(line, `missing required field "${field}"`);
  }
  if (problems.found.length > before) return undefined;
  const { name, namespace, serviceAccount, netns, ip } = strings as Record<RequiredField, string>;
  const identity = spiffeId(trustDomain, namespace, serviceAccount);
  labels = { ...labels, [WORKLOAD_LABEL]: name };
  return {
    value: { name, namespace, serviceAccount, netns, ip, strict, ...(iface !== undefined ? { interface: iface } : {}), labels, identity },
    label,
    lines: { workload: line, ip: fieldLines.ip ?? line, netns: fieldLines.netns ?? line },
  };
}

type Fail = (line: number, message: string) => void;

function checkString(field: string, value: unknown, line: number, fail: Fail): string | undefined {
  if (!isScalar(value) || value.value === null) {
    const empty = isScalar(value) || value == null;
    fail(line, `"${field}" ${empty ? 'must not be empty' : `must be a string, got ${describeValue(value)}`}`);
    return undefined;
  }
  if (typeof value.value !== 'string') {
    if (field === 'ip') return scalarSource(value); // `ip: 10.0` parses as a number; report it as an address
    fail(line, `"${field}" must be a string, got ${describeValue(value)} (quote it: "${scalarSource(value)}")`);
    return undefined;
  }
  if (value.value === '') {
    fail(line, `"${field}" must not be empty`);
    return undefined;
  }
  return value.value;
}

/** Field-specific rules for the required string fields; true when valid. */
function checkField(field: RequiredField, value: string, line: number, fail: Fail): boolean {
  switch (field) {
    case 'name':
    case 'namespace':
    case 'serviceAccount': {
      if (isDnsLabel(value)) return true;
      const suggestion = value.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
      const hint = isDnsLabel(suggestion) ? ` (try ${quote(suggestion)})` : '';
      fail(line, `"${field}" must be a DNS-1123 label (${DNS_LABEL_RULE}), got ${quote(value)}${hint}`);
      return false;
    }
    case 'netns':
      if (value.startsWith('/') && value.length <= PATH_MAX && !value.includes('\0')) return true;
      fail(line, `"netns" must be an absolute path like ${NETNS_EXAMPLES}, got ${quote(value)}`);
      return false;
    case 'ip': {
      const problem = ipv4Problem(value);
      if (problem === undefined) return true;
      fail(line, `"ip" ${problem}`);
      return false;
    }
  }
}

/** Why `value` is not a usable canonical dotted-quad unicast IPv4 address, or undefined. */
function ipv4Problem(value: string): string | undefined {
  const got = `got ${quote(value)}`;
  if (isIPv6(value)) return `must be an IPv4 address: IPv6 is not supported yet, ${got}`;
  const match = IPV4_RE.exec(value);
  if (!match) {
    let hint = '';
    if (/^[0-9.]+\/[0-9]+$/.test(value)) hint = ' (a single address, not a CIDR range)';
    else if (/^[0-9.]+:[0-9]+$/.test(value)) hint = ' (an address without a port)';
    else if (/^[0-9]+(\.[0-9]+){3}$/.test(value)) hint = ' (write each part without leading zeros)';
    return `must be an IPv4 address like 10.0.1.11, ${got}${hint}`;
  }
  const octets = match.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) return `must be an IPv4 address like 10.0.1.11 (each part 0-255), ${got}`;
  const first = octets[0];
  if (value === '0.0.0.0') return `must be the workload's own address, not the unspecified address 0.0.0.0`;
  if (first === 127) return `must be the workload's own address, not a loopback address, ${got}`;
  if (first >= 224) return `must be a unicast address (not multicast, broadcast or reserved), ${got}`;
  return undefined;
}

function checkLabels(
  problems: Problems,
  doc: Document,
  node: unknown,
  line: number,
  fail: Fail,
  name: string | undefined,
): Record<string, string> | undefined {
  if (!isMap(node)) {
    fail(line, `"labels" must be a mapping of label names to strings, like {app: web}, got ${describeValue(node)}`);
    return undefined;
  }
  const entries: [string, string][] = [];
  for (const pair of node.items) {
    const key = keyName(pair);
    const keyLine = problems.lineOf(pair.key, line);
    const value = deref(doc, pair.value);
    const valueLine = problems.lineOf(value, keyLine);
    if (key === undefined || !isLabelKey(key)) {
      const rule = `an optional DNS subdomain prefix and '/', then ${LABEL_NAME_RULE}`;
      fail(keyLine, `label key ${describeKey(pair)} is invalid (${rule})`);
      continue;
    }
    if (!isScalar(value) || (value.value !== null && typeof value.value !== 'string')) {
      const hint = isScalar(value) ? ` (quote it: "${scalarSource(value)}")` : '';
      fail(valueLine, `label ${quote(key)} must have a string value, got ${describeValue(value)}${hint}`);
      continue;
    }
    const text = value.value ?? '';
    if (!isLabelValue(text)) {
      fail(valueLine, `label ${quote(key)} value ${quote(text)} is invalid (${LABEL_NAME_RULE})`);
      continue;
    }
    if (key === WORKLOAD_LABEL && text !== name) {
      const is = name === undefined ? 'the workload\'s name' : `the workload's name ${quote(name)}`;
      fail(valueLine, `label ${quote(key)} must be ${is}, got ${quote(text)} (remove it: every workload carries it with its name)`);
      continue;
    }
    entries.push([key, text]);
  }
  return Object.fromEntries(entries); // defines own properties, so a key can never touch a prototype
}

function checkTrustDomain(problems: Problems, node: unknown, keyLine: number): string | undefined {
  const line = problems.lineOf(node, keyLine);
  const value = isScalar(node) ? node.value : undefined;
  if (typeof value === 'string' && isTrustDomain(value)) return value;
  let hint = '';
  if (typeof value === 'string' && value.startsWith('spiffe://')) {
    hint = ' (give the trust domain without "spiffe://")';
  } else if (typeof value === 'string' && isTrustDomain(value.toLowerCase())) {
    hint = ` (use lowercase: ${quote(value.toLowerCase())})`;
  }
  const rule = "a SPIFFE trust domain of lowercase letters, digits, '.', '-' and '_' like cluster.local";
  problems.add(line, `"trustDomain" must be ${rule}, got ${describeValue(node)}${hint}`);
  return undefined;
}

/** Duplicate workloads (namespace/name), IPs and netns paths across the file. */
class Seen {
  private readonly names = new Map<string, ParsedWorkload>();
  private readonly ips = new Map<string, ParsedWorkload>();
  private readonly netns = new Map<string, ParsedWorkload>();

  constructor(private readonly problems: Problems) {}

  check(w: ParsedWorkload): void {
    const { namespace, name, ip, netns } = w.value;
    const first = (map: Map<string, ParsedWorkload>, key: string): ParsedWorkload | undefined => {
      const earlier = map.get(key);
      if (!earlier) map.set(key, w);
      return earlier;
    };
    const add = (line: number, message: string): void => this.problems.add(line, `${w.label}: ${message}`);
    const byName = first(this.names, `${namespace}/${name}`);
    if (byName) {
      add(w.lines.workload, `duplicate workload ${namespace}/${name}, already defined at line ${byName.lines.workload}`);
    }
    const byIp = first(this.ips, ip);
    if (byIp) add(w.lines.ip, `"ip" ${ip} is already used by ${byIp.label} at line ${byIp.lines.ip}`);
    const byNetns = first(this.netns, normalizePath(netns));
    if (byNetns) {
      add(w.lines.netns, `"netns" ${quote(netns)} is already used by ${byNetns.label} at line ${byNetns.lines.netns}`);
    }
  }
}

function normalizePath(path: string): string {
  const normal = posix.normalize(path);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}
