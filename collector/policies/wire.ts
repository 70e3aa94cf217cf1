/**
 * Policies as they cross to the policy worker (policy-worker.ts: `plan`, `check`) and what comes
 * back (policies read from files, a plan's changes): each list as one string. A thousand objects
 * of six fields each cost the collector's thread milliseconds to serialize in one postMessage
 * (and as long to read back, all at once); one string is one copy. Made and read in slices on the
 * collector's side (common/slice.ts).
 */
import type { PolicyChange, PolicyKind } from '../../common/control-api';
import { Slice } from '../../common/slice';
import { manifestFromText, manifestText } from './manifest-text';
import type { DesiredPolicy, StoredPolicy } from './repository';

/**
 * Policies as they cross: each one's kind, namespace, name, origin, file ('' for none) and manifest
 * (its JSON text), every field of every policy NUL-separated (no field holds a NUL: names are
 * validated, a path cannot, JSON escapes it).
 */
export type WirePolicies = string;

const SEP = '\0';
const POLICY_FIELDS = 6;

const fieldsOf = (p: DesiredPolicy): string => `${p.kind}${SEP}${p.namespace}${SEP}${p.name}${SEP}${p.origin}${SEP}${p.file ?? ''}${SEP}${manifestText(p.manifest)}`;

/** `policies` as they cross. */
export const toWire = (policies: readonly DesiredPolicy[]): WirePolicies => policies.map(fieldsOf).join(SEP);

/** `toWire`, made in slices of about `sliceMs`. */
export async function toWireSliced(policies: readonly DesiredPolicy[], sliceMs: number): Promise<WirePolicies> {
  const slice = new Slice(sliceMs);
  const out: string[] = [];
  for (const p of policies) {
    out.push(fieldsOf(p));
    await slice.pass();
  }
  return out.join(SEP);
}

/** The policies back from `toWire` (id and version 0: planning and compiling read neither). */
export function fromWire(wire: WirePolicies): Array<DesiredPolicy & StoredPolicy> {
  if (wire === '') return [];
  const f = wire.split(SEP);
  const out: Array<DesiredPolicy & StoredPolicy> = [];
  for (let i = 0; i + POLICY_FIELDS <= f.length; i += POLICY_FIELDS) {
    const file = f[i + 4]!;
    out.push({
      kind: f[i] as DesiredPolicy['kind'],
      namespace: f[i + 1]!,
      name: f[i + 2]!,
      origin: f[i + 3] as DesiredPolicy['origin'],
      ...(file === '' ? {} : { file }),
      manifest: manifestFromText(f[i + 5]!),
      id: 0,
      version: 0,
    });
  }
  return out;
}

/** A policy as the worker read it: enough to store it and compile it again from its manifest. */
export interface ParsedPolicy {
  kind: PolicyKind;
  namespace: string;
  name: string;
  source: string;
  line: number;
  manifest: Record<string, unknown>;
}

/**
 * Policies read from files as the worker answers them: kind, namespace, name, source (as its JSON
 * text: a request's source may hold anything), line and manifest (its JSON text), NUL-separated.
 */
export type WireParsed = string;

const PARSED_FIELDS = 6;

export const parsedToWire = (policies: ReadonlyArray<Omit<ParsedPolicy, 'manifest'> & { manifest: string }>): WireParsed =>
  policies.map((p) => `${p.kind}${SEP}${p.namespace}${SEP}${p.name}${SEP}${JSON.stringify(p.source)}${SEP}${p.line}${SEP}${p.manifest}`).join(SEP);

/** `parsedToWire`'s policies read back in slices of about `sliceMs` (each manifest remembered as its text). */
export async function parsedFromWire(wire: WireParsed, sliceMs: number): Promise<ParsedPolicy[]> {
  if (wire === '') return [];
  const slice = new Slice(sliceMs);
  const f = wire.split(SEP);
  const out: ParsedPolicy[] = [];
  for (let i = 0; i + PARSED_FIELDS <= f.length; i += PARSED_FIELDS) {
    out.push({
      kind: f[i] as ParsedPolicy['kind'],
      namespace: f[i + 1]!,
      name: f[i + 2]!,
      source: JSON.parse(f[i + 3]!) as string,
      line: Number(f[i + 4]),
      manifest: manifestFromText(f[i + 5]!),
    });
    await slice.pass();
  }
  return out;
}

/**
 * A plan's changes as the worker answers them: each change's JSON text, one a line (JSON text
 * holds no line break), and the version row's text (`changed`: the changes other than `unchanged`
 * as one JSON list, as the repository stores them).
 */
export interface WireChanges {
  lines: string;
  changed: string;
}

export function changesToWire(changes: readonly PolicyChange[]): WireChanges {
  const texts = changes.map((c) => JSON.stringify(c));
  return { lines: texts.join('\n'), changed: `[${texts.filter((_, i) => changes[i]!.op !== 'unchanged').join(',')}]` };
}

/** `changesToWire`'s changes read back in slices of about `sliceMs`. */
export async function changesFromWire(wire: WireChanges, sliceMs: number): Promise<PolicyChange[]> {
  if (wire.lines === '') return [];
  const slice = new Slice(sliceMs);
  const out: PolicyChange[] = [];
  for (const line of wire.lines.split('\n')) {
    out.push(JSON.parse(line) as PolicyChange);
    await slice.pass();
  }
  return out;
}
