/**
 * Budgets for YAML that comes from outside (policy files over the API, a policy directory): what
 * a reader checks before it walks a document, so that an alias bomb (a few KB of `&a [*b, *b, …]`
 * that expands to billions of nodes) or absurd nesting is refused in one line instead of holding
 * the process. Two checks:
 * - `aliasScanProblem(text)`, before parsing: a regular-expression pass that counts every place an
 *   alias (`*name`) could start. It never counts fewer than the parser would find, so a file under
 *   the cap is under it; a file over it is refused without being parsed (the YAML parser takes
 *   seconds on such input). Quoted or commented `*name` after a space count too: a policy has no
 *   reason for a hundred of them.
 * - `expansionProblem(docs)`, after composing: the exact alias count, the number of nodes the
 *   aliases add once expanded, and the nesting depth, each capped.
 * The yaml package's own guard (`toJS({ maxAliasCount })`) stays on where documents become data.
 */
import { isAlias, isCollection, isPair, isScalar, type Document } from 'yaml';

/** At most this many aliases in one file (the yaml package's own default for toJS). */
export const MAX_YAML_ALIASES = 100;
/** At most this many nodes added by expanding aliases (what is written out is bounded by the size cap). */
export const MAX_YAML_ALIAS_NODES = 50_000;
/** At most this deep (a policy needs about ten levels). */
export const MAX_YAML_DEPTH = 64;

/** An alias can start at the beginning of a line, after white space, or after `[`, `{`, `,` or `:`. */
const ALIAS_START = /(?:^|[\s[{,:])\*[^\s[\]{},]/gm;

export interface YamlLimitProblem {
  /** Character offset where it shows (0 when it is the file as a whole). */
  offset: number;
  message: string;
}

/** The file has more places an alias could start than `max`: refuse it before parsing. */
export function aliasScanProblem(text: string, max = MAX_YAML_ALIASES): YamlLimitProblem | undefined {
  ALIAS_START.lastIndex = 0;
  let count = 0;
  let at = 0;
  while (ALIAS_START.exec(text) !== null) {
    count++;
    if (count === max + 1) at = ALIAS_START.lastIndex;
  }
  if (count <= max) return undefined;
  return { offset: at, message: `more than ${max} YAML aliases (*name) in one file (found ${count}): write the values out or split the file` };
}

/**
 * After composing: more than `MAX_YAML_ALIASES` aliases, aliases that add more than
 * `MAX_YAML_ALIAS_NODES` nodes once expanded, nesting deeper than `MAX_YAML_DEPTH`, or an alias
 * inside the node it names. Stops at the first problem, so a bomb costs what its text costs, not
 * what it expands to.
 */
export function expansionProblem(docs: readonly Document[]): YamlLimitProblem | undefined {
  const m = new Measure();
  for (const doc of docs) {
    m.anchors.clear();
    const problem = m.size(doc.contents, 0);
    if (typeof problem !== 'number') return problem;
  }
  return undefined;
}

class Measure {
  /** Anchors seen so far in document order, and their expanded size (undefined while inside it). */
  readonly anchors = new Map<string, { size: number | undefined }>();
  aliases = 0;
  aliasNodes = 0;

  /** The node's expanded size, or the problem that stopped the count. */
  size(node: unknown, depth: number): number | YamlLimitProblem {
    if (node == null) return 0;
    const offset = rangeStart(node);
    if (depth > MAX_YAML_DEPTH) return { offset, message: `YAML nested deeper than ${MAX_YAML_DEPTH} levels` };
    if (isAlias(node)) {
      if (++this.aliases > MAX_YAML_ALIASES) return { offset, message: `more than ${MAX_YAML_ALIASES} YAML aliases (*name) in one file: write the values out or split the file` };
      const anchor = this.anchors.get(node.source);
      if (anchor === undefined) return 0; // the parser reports an unknown alias itself
      if (anchor.size === undefined) return { offset, message: `YAML alias *${node.source} is inside the node it names` };
      this.aliasNodes += anchor.size;
      if (this.aliasNodes > MAX_YAML_ALIAS_NODES) {
        return { offset, message: `YAML aliases expand to more than ${MAX_YAML_ALIAS_NODES} nodes (they repeat too much): write the values out` };
      }
      return anchor.size;
    }
    const anchorName = (node as { anchor?: string }).anchor;
    const entry = anchorName ? { size: undefined as number | undefined } : undefined;
    if (anchorName && entry) this.anchors.set(anchorName, entry);
    let size = 1;
    if (isCollection(node)) {
      for (const item of node.items) {
        const parts = isPair(item) ? [item.key, item.value] : [item];
        for (const part of parts) {
          const s = this.size(part, depth + 1);
          if (typeof s !== 'number') return s;
          size += s;
        }
      }
    } else if (!isScalar(node)) {
      return 0;
    }
    if (entry) entry.size = size;
    return size;
  }
}

/** The 1-based line of a character offset, without a line counter (for text not parsed). */
export function lineOfOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

function rangeStart(node: unknown): number {
  const range = (node as { range?: unknown }).range;
  return Array.isArray(range) && typeof range[0] === 'number' ? range[0] : 0;
}
