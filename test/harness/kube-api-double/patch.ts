/**
 * Part of the Kubernetes API double (./index.ts): the PATCH bodies the API server accepts.
 * JSON merge patch (RFC 7386) and JSON patch (RFC 6902) exactly; a strategic merge patch is
 * applied as a merge patch (lists are replaced, not merged by key — what the double does not do).
 */
import { isDeepStrictEqual } from 'node:util';

export class PatchError extends Error {}

export type PatchType = 'json' | 'merge' | 'strategic';

export const PATCH_CONTENT_TYPES: Record<string, PatchType> = {
  'application/json-patch+json': 'json',
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7386: objects merge member by member, null deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6901 pointer → tokens. */
function pointer(path: unknown): string[] {
  if (typeof path !== 'string' || (path !== '' && !path.startsWith('/'))) throw new PatchError(`invalid JSON pointer ${JSON.stringify(path)}`);
  return path === '' ? [] : path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: unknown, tokens: string[], op: string): { parent: Record<string, unknown> | unknown[]; key: string } {
  let node = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[Number(t)];
    else if (isObject(node)) node = node[t];
    else node = undefined;
    if (node === undefined) throw new PatchError(`${op}: path /${tokens.join('/')} does not exist`);
  }
  if (!Array.isArray(node) && !isObject(node)) throw new PatchError(`${op}: path /${tokens.join('/')} does not exist`);
  return { parent: node, key: tokens[tokens.length - 1]! };
}

function arrayIndex(arr: unknown[], key: string, forAdd: boolean, op: string): number {
  if (forAdd && key === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(key)) throw new PatchError(`${op}: ${key} is not an array index`);
  const i = Number(key);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new PatchError(`${op}: index ${i} is out of range`);
  return i;
}

function getAt(doc: unknown, tokens: string[], op: string): unknown {
  if (tokens.length === 0) return doc;
  const { parent, key } = parentOf(doc, tokens, op);
  const v = Array.isArray(parent) ? parent[arrayIndex(parent, key, false, op)] : parent[key];
  if (v === undefined) throw new PatchError(`${op}: path /${tokens.join('/')} does not exist`);
  return v;
}

function removeAt(doc: unknown, tokens: string[], op: string): unknown {
  const { parent, key } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, key, false, op), 1)[0];
  if (!(key in parent)) throw new PatchError(`${op}: path /${tokens.join('/')} does not exist`);
  const v = parent[key];
  delete parent[key];
  return v;
}

function addAt(doc: unknown, tokens: string[], value: unknown, op: string): unknown {
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true, op), 0, value);
  else parent[key] = value;
  return doc;
}

/** RFC 6902, applied to a copy; any failing operation fails the whole patch. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('a JSON patch must be a list of operations');
  let doc = structuredClone(target);
  for (const raw of ops) {
    if (!isObject(raw)) throw new PatchError('each JSON patch operation must be an object');
    const op = String(raw.op);
    const path = pointer(raw.path);
    switch (op) {
      case 'add':
        doc = addAt(doc, path, structuredClone(raw.value), op);
        break;
      case 'remove':
        removeAt(doc, path, op);
        break;
      case 'replace':
        if (path.length === 0) doc = structuredClone(raw.value);
        else {
          removeAt(doc, path, op);
          doc = addAt(doc, path, structuredClone(raw.value), op);
        }
        break;
      case 'move': {
        const v = removeAt(doc, pointer(raw.from), op);
        doc = addAt(doc, path, v, op);
        break;
      }
      case 'copy':
        doc = addAt(doc, path, structuredClone(getAt(doc, pointer(raw.from), op)), op);
        break;
      case 'test':
        if (!isDeepStrictEqual(getAt(doc, path, op), raw.value)) throw new PatchError(`test: /${path.join('/')} is not ${JSON.stringify(raw.value)}`);
        break;
      default:
        throw new PatchError(`unknown JSON patch operation ${JSON.stringify(raw.op)}`);
    }
  }
  return doc;
}

export function applyPatch(type: PatchType, target: unknown, patch: unknown): unknown {
  return type === 'json' ? jsonPatch(target, patch) : mergePatch(target, patch);
}
