/**
 * Reading YAML nodes with line numbers, shared by the agent's workloads file and the policy files:
 * every problem is one line `<source>:<line>: <what> (<hint>)`, all of them are collected, none is
 * thrown here.
 */
import { isAlias, isMap, isScalar, isSeq, visit, type Document, type LineCounter, type Pair, type YAMLError } from 'yaml';

export interface Problem {
  line: number;
  message: string;
}

/** Problems of one source, each tied to a line. */
export class Problems {
  readonly found: Problem[] = [];

  constructor(
    readonly source: string,
    private readonly lines: LineCounter,
    /** Put after `<source>:<line>: `, e.g. "warning: ". */
    private readonly prefix = '',
  ) {}

  lineAt(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  lineOf(node: unknown, fallback = 1): number {
    const range = (node as { range?: unknown } | null | undefined)?.range;
    return Array.isArray(range) && typeof range[0] === 'number' ? this.lineAt(range[0]) : fallback;
  }

  add(line: number, message: string): void {
    this.found.push({ line, message: `${this.source}:${line}: ${this.prefix}${message}` });
  }
}

/** A mapping entry: its (alias-resolved) value and where it is. */
export interface Field {
  key: string;
  node: unknown;
  keyLine: number;
  /** The value's line, or the key's when the value is empty. */
  line: number;
}

export interface Item<T> {
  value: T;
  line: number;
}

/** Reads the nodes of one document; problems are prefixed with `label` (e.g. the policy's kind and name). */
export class NodeReader {
  constructor(
    readonly problems: Problems,
    readonly doc: Document,
    public label: string,
    /** The fix suggested for an empty string in a list of strings. */
    private readonly emptyStringFix = 'remove it',
  ) {}

  fail(line: number, path: string, message: string): void {
    this.problems.add(line, `${this.label}: ${path === '' ? '' : `${path}: `}${message}`);
  }

  deref(node: unknown): unknown {
    return deref(this.doc, node);
  }

  line(node: unknown, fallback: number): number {
    return this.problems.lineOf(node, fallback);
  }

  /**
   * The entries of a mapping (unknown keys reported, `ignored` keys dropped silently); undefined
   * with a problem if `node` is not a mapping. An empty value (`spec:`) is an empty mapping.
   */
  fields(
    node: unknown,
    path: string,
    allowed: readonly string[],
    fallbackLine: number,
    ignored: readonly string[] = [],
  ): Map<string, Field> | undefined {
    const out = new Map<string, Field>();
    if (isEmpty(node)) return out;
    if (!isMap(node)) {
      this.fail(this.line(node, fallbackLine), path, `must be a mapping with ${listWords(allowed)}, got ${describeValue(node)}`);
      return undefined;
    }
    const mapLine = this.line(node, fallbackLine);
    for (const pair of node.items) {
      const key = keyName(pair);
      const keyLine = this.line(pair.key, mapLine);
      if (key !== undefined && ignored.includes(key)) continue;
      if (key === undefined || !allowed.includes(key)) {
        this.fail(keyLine, path, `unknown field ${describeKey(pair)}${unknownFieldHint(key, allowed)}`);
        continue;
      }
      const value = this.deref(pair.value);
      out.set(key, { key, node: value, keyLine, line: this.line(value, keyLine) });
    }
    return out;
  }

  /** The items of a list; undefined with a problem if it is not one. */
  list(field: Field, path: string, example: string): Item<unknown>[] | undefined {
    if (isEmpty(field.node)) return [];
    if (!isSeq(field.node)) {
      this.fail(field.line, path, `must be a list, like ${example}, got ${describeValue(field.node)}`);
      return undefined;
    }
    return field.node.items.map((item) => {
      const value = this.deref(item);
      return { value, line: this.line(item, field.line) };
    });
  }

  /**
   * A list of non-empty strings (numbers too when `numbers`: YAML `8080` for a port). Every bad
   * item is reported; undefined if any was bad.
   */
  strings(field: Field, path: string, opts: { numbers?: boolean } = {}): Item<string>[] | undefined {
    if (isEmpty(field.node)) return []; // `principals:` with nothing is unset, as in Kubernetes
    if (!isSeq(field.node)) {
      const got = describeValue(field.node);
      const hint = isScalar(field.node) && field.node.value !== null ? ` (write [${scalarJson(field.node)}])` : '';
      this.fail(field.line, path, `must be a list of strings, got ${got}${hint}`);
      return undefined;
    }
    const out: Item<string>[] = [];
    let ok = true;
    field.node.items.forEach((raw, i) => {
      const node = this.deref(raw);
      const line = this.line(raw, field.line);
      const at = `${path}[${i}]`;
      if (isScalar(node) && typeof node.value === 'string') {
        if (node.value === '') {
          this.fail(line, at, `empty value not allowed (${this.emptyStringFix})`);
          ok = false;
        } else {
          out.push({ value: node.value, line });
        }
      } else if (opts.numbers && isScalar(node) && typeof node.value === 'number') {
        out.push({ value: scalarSource(node), line });
      } else {
        const got = describeValue(node);
        const hint = isScalar(node) && node.value !== null ? ` (quote it: "${scalarSource(node)}")` : '';
        const what = node == null || (isScalar(node) && node.value === null) ? 'empty value not allowed (remove it)' : `must be a string, got ${got}${hint}`;
        this.fail(line, at, what);
        ok = false;
      }
    });
    return ok ? out : undefined;
  }

  /** A non-empty string scalar, or undefined with a problem. */
  string(field: Field, path: string): string | undefined {
    const node = field.node;
    if (isScalar(node) && typeof node.value === 'string' && node.value !== '') return node.value;
    if (isScalar(node) && typeof node.value === 'string') this.fail(field.line, path, 'must not be empty');
    else if (isScalar(node) && node.value !== null) {
      this.fail(field.line, path, `must be a string, got ${describeValue(node)} (quote it: "${scalarSource(node)}")`);
    } else this.fail(field.line, path, `must be a string, got ${describeValue(node)}`);
    return undefined;
  }
}

/** Each document's aliases and the nodes they stand for, found in one pass (see `deref`). */
const resolvedAliases = new WeakMap<Document, Map<unknown, unknown>>();

/**
 * The node an alias (`*name`) stands for; any other node as it is. The yaml package's
 * `Alias.resolve` walks the whole document on every call; here one walk per document finds every
 * alias's node (the last anchor of that name before it), so a reader pays once, not per alias.
 */
export function deref(doc: Document, node: unknown): unknown {
  if (!isAlias(node)) return node;
  let aliases = resolvedAliases.get(doc);
  if (!aliases) {
    const found = new Map<unknown, unknown>();
    const anchors = new Map<string, unknown>();
    visit(doc, {
      Node(_, n) {
        if (isAlias(n)) found.set(n, anchors.get(n.source));
        else if (n.anchor) anchors.set(n.anchor, n);
      },
    });
    resolvedAliases.set(doc, (aliases = found));
  }
  return aliases.get(node);
}

/** No value at all: a missing node or YAML null (`key:` with nothing). */
export function isEmpty(node: unknown): boolean {
  return node == null || (isScalar(node) && node.value === null);
}

export function keyName(pair: Pair): string | undefined {
  return isScalar(pair.key) && typeof pair.key.value === 'string' ? pair.key.value : undefined;
}

export function describeKey(pair: Pair): string {
  const key = keyName(pair);
  return key !== undefined ? quote(key) : describeValue(pair.key);
}

/** `"text"` for strings, the source text for other scalars, a kind for collections. One line. */
export function describeValue(node: unknown): string {
  if (node == null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    if (node.value === null) return 'nothing';
    if (typeof node.value === 'string') return quote(node.value);
    return truncate(scalarSource(node));
  }
  return 'an unsupported value';
}

export function scalarSource(node: { value: unknown; source?: string }): string {
  return typeof node.source === 'string' && node.source !== '' ? node.source : String(node.value);
}

function scalarJson(node: { value: unknown; source?: string }): string {
  return typeof node.value === 'string' ? quote(node.value) : `"${scalarSource(node)}"`;
}

function listWords(words: readonly string[]): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

/** Why a key is unknown: a did-you-mean for a near miss, else the allowed keys. */
export function unknownFieldHint(key: string | undefined, allowed: readonly string[]): string {
  if (key !== undefined) {
    let best: string | undefined;
    let bestDistance = Infinity;
    for (const candidate of allowed) {
      const d = editDistance(key.toLowerCase().replace(/[-_ ]/g, ''), candidate.toLowerCase());
      if (d < bestDistance) [best, bestDistance] = [candidate, d];
    }
    if (best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 4))) {
      return ` (did you mean "${best}"?)`;
    }
  }
  return ` (allowed: ${allowed.join(', ')})`;
}

/** Edit distance counting insertions, deletions, substitutions and adjacent swaps; short inputs. */
function editDistance(a: string, b: string): number {
  if (a.length > 64) return Infinity;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The mapping key node that starts at `offset`, if any. */
function keyAt(doc: Document, offset: number): unknown {
  let found: unknown;
  visit(doc, {
    Pair(_, pair) {
      const range = (pair.key as { range?: unknown } | null)?.range;
      if (Array.isArray(range) && range[0] === offset) {
        found = pair.key;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

/**
 * One line for a YAML parse error or warning. `duplicateKeyHint: false` leaves " (remove one)" off
 * a duplicate key.
 */
export function describeYamlError(err: YAMLError, doc: Document, opts: { duplicateKeyHint?: boolean } = {}): string {
  const first = err.message.split('\n')[0] ?? err.message;
  switch (err.code) {
    case 'DUPLICATE_KEY': {
      const key = keyAt(doc, err.pos[0]);
      const hint = opts.duplicateKeyHint === false ? '' : ' (remove one)';
      return `duplicate key${key === undefined ? '' : ` ${describeValue(key)}`} in the same mapping${hint}`;
    }
    case 'MULTIPLE_DOCS': // only from parseDocument(): a reader of one document
      return 'the file must hold a single YAML document, found another one here';
    case 'TAG_RESOLVE_FAILED':
      return `YAML: ${first} (remove the tag)`;
    default:
      return `YAML syntax error: ${first}`;
  }
}

/** A user's string, JSON-quoted (so control characters and line breaks are escaped) and shortened. */
export function quote(value: string): string {
  const escaped = JSON.stringify(value).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return truncate(escaped);
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
