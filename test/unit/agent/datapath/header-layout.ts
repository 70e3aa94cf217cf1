/**
 * bpf/palisade.h read as C lays it out, for the codec tests: the sizes and offsets they check are
 * computed from the header itself, so a change to the header that a codec does not follow fails
 * there, not in the kernel. Byte-order facts assume a little-endian host (x86_64, arm64), as the
 * codecs do.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

const HEADER = path.resolve(__dirname, '../../../../../bpf/palisade.h');

export interface Field {
  name: string;
  offset: number;
  size: number;
}

export interface Layout {
  size: number;
  fields: Record<string, Field>;
}

const TYPE_SIZES: Record<string, number> = { __u8: 1, __u16: 2, __u32: 4, __u64: 8 };

export function stripComments(c: string): string {
  return c.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
}

/** C layout of every `struct name { ... };` in the header (natural alignment, no packing). */
function parseStructs(source: string): Record<string, Layout> {
  const out: Record<string, Layout> = {};
  for (const m of stripComments(source).matchAll(/struct\s+(\w+)\s*\{([^}]*)\}\s*;/g)) {
    const [, name, body] = m as unknown as [string, string, string];
    let offset = 0;
    let align = 1;
    const fields: Record<string, Field> = {};
    for (const decl of body.split(';').map((d) => d.trim()).filter(Boolean)) {
      const f = /^(\w+)\s+(\w+)\s*(?:\[(\d+)\])?$/.exec(decl);
      if (!f) throw new Error(`cannot parse field ${JSON.stringify(decl)} of struct ${name}`);
      const [, type, fieldName, count] = f as unknown as [string, string, string, string | undefined];
      const elem = TYPE_SIZES[type];
      if (elem === undefined) throw new Error(`struct ${name}: unknown type ${type} (fixed-width types only)`);
      offset = Math.ceil(offset / elem) * elem;
      const size = elem * (count === undefined ? 1 : Number(count));
      fields[fieldName] = { name: fieldName, offset, size };
      offset += size;
      align = Math.max(align, elem);
    }
    out[name] = { size: Math.ceil(offset / align) * align, fields };
  }
  return out;
}

/** Enumerators of `enum name { ... };`, in order. */
export function parseEnum(source: string, name: string): string[] {
  const m = new RegExp(`enum\\s+${name}\\s*\\{([^}]*)\\}`).exec(stripComments(source));
  if (!m) throw new Error(`enum ${name} not found`);
  return (m[1] ?? '')
    .split(',')
    .map((e) => e.split('=')[0]!.trim())
    .filter(Boolean);
}

/** Value of a `#define NAME (1u << n)` or `#define NAME n`. */
export function parseDefine(source: string, name: string): number {
  const m = new RegExp(`#define\\s+${name}\\s+\\(?\\s*(\\d+)u?\\s*(?:<<\\s*(\\d+))?\\s*\\)?`).exec(source);
  if (!m) throw new Error(`#define ${name} not found`);
  return Number(m[1]) * 2 ** Number(m[2] ?? 0);
}

/** PALISADE_STAT_ORIG_UPDATE_FAIL -> origUpdateFail */
export function statName(enumerator: string): string {
  return enumerator
    .replace(/^PALISADE_STAT_/, '')
    .toLowerCase()
    .replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

export const source = readFileSync(HEADER, 'utf8');
export const structs = parseStructs(source);

export function layout(name: string): Layout {
  const l = structs[name];
  if (!l) throw new Error(`struct ${name} not found in ${HEADER}`);
  return l;
}

export function field(struct: string, name: string): Field {
  const f = layout(struct).fields[name];
  if (!f) throw new Error(`struct ${struct} has no field ${name}`);
  return f;
}

/** The structs of the per-pod programs, checked by pod-codec.test.ts; codec.test.ts checks the others. */
export const POD_STRUCTS = [
  'palisade_iface',
  'palisade_drop_key',
  'palisade_drop',
  'palisade_drop6',
  'palisade_flow_key',
  'palisade_dgram',
  'palisade_frag_key',
  'palisade_rule_key',
  'palisade_rule',
  'palisade_host',
  'palisade_agent',
];
