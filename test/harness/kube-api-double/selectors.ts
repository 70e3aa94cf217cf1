/**
 * Part of the Kubernetes API double (./index.ts): label and field selectors in their query-string
 * form, parsed the way the API server parses them and matched against objects. A selector that
 * does not parse is the API's 400 with the reason.
 */
import { isLabelKey, isLabelValue } from '../../../common/labels';

export type LabelRequirement =
  | { key: string; op: 'exists' | 'notexists' }
  | { key: string; op: 'in' | 'notin'; values: string[] };

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

export class SelectorError extends Error {}

/** Split on commas outside parentheses (`a in (x,y),b` is two requirements). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

function checkKey(key: string, whole: string): string {
  if (!isLabelKey(key)) throw new SelectorError(`unable to parse requirement: invalid label key "${key}" in "${whole}"`);
  return key;
}

function checkValue(value: string, whole: string): string {
  if (!isLabelValue(value)) throw new SelectorError(`unable to parse requirement: invalid label value "${value}" in "${whole}"`);
  return value;
}

/** `a=b,c!=d,e in (f,g),h notin (i),j,!k` (also `==`). Empty text selects everything. */
export function parseLabelSelector(text: string): LabelRequirement[] {
  if (text.trim() === '') return [];
  return splitTopLevel(text).map((req): LabelRequirement => {
    if (req === '') throw new SelectorError(`unable to parse requirement: empty requirement in "${text}"`);
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(req);
    if (set) {
      const values = set[3]!.split(',').map((v) => checkValue(v.trim(), req));
      return { key: checkKey(set[1]!, req), op: set[2] as 'in' | 'notin', values };
    }
    const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(req);
    if (eq) {
      const value = checkValue(eq[3]!, req);
      return { key: checkKey(eq[1]!, req), op: eq[2] === '!=' ? 'notin' : 'in', values: [value] };
    }
    if (req.startsWith('!')) return { key: checkKey(req.slice(1).trim(), req), op: 'notexists' };
    if (/^\S+$/.test(req)) return { key: checkKey(req, req), op: 'exists' };
    throw new SelectorError(`unable to parse requirement: "${req}"`);
  });
}

export function matchesLabels(reqs: readonly LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'in':
        return has && r.values.includes(l[r.key]!);
      case 'notin':
        return !has || !r.values.includes(l[r.key]!);
    }
  });
}

/** `metadata.name=x,spec.nodeName!=y` (also `==`); each field must be one the resource supports. */
export function parseFieldSelector(text: string, supported: readonly string[]): FieldRequirement[] {
  if (text.trim() === '') return [];
  return text.split(',').map((req) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(req.trim());
    if (!m) throw new SelectorError(`invalid selector: '${req}'; can't understand '${req}'`);
    const field = m[1]!.trim();
    if (!supported.includes(field)) throw new SelectorError(`field label not supported: ${field}`);
    return { field, op: m[2] === '!=' ? '!=' : '=', value: m[3]!.trim() };
  });
}

/** A field's value as the API server compares it: a string, "" when the object does not set it. */
export function fieldValue(obj: unknown, field: string): string {
  let node: unknown = obj;
  for (const part of field.split('.')) {
    if (typeof node !== 'object' || node === null) return '';
    node = (node as Record<string, unknown>)[part];
  }
  if (node === undefined || node === null) return '';
  return typeof node === 'string' ? node : String(node);
}

export function matchesFields(reqs: readonly FieldRequirement[], obj: unknown): boolean {
  return reqs.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === '='));
}
