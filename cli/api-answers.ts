/**
 * The collector's answers, checked before a command prints them (a malformed one is a one-line
 * PALISADE_ERR_PROTOCOL), and the one way every command prints what a policy change did.
 * Used by the commands that call the control API (policy, egress, status).
 */
import type { ApiClient } from '../common/api-client';
import { printable } from '../common/api-client';
import type { PolicyChange, PolicyChangeResponse } from '../common/control-api';
import { PalisadeError } from '../common/errors';
import { isRecord } from '../common/record';

/** The answer has the fields a command reads, or a one-line protocol error. */
export function expectShape<T>(v: unknown, path: string, fields: Record<string, 'number' | 'string' | 'boolean' | 'array' | 'object'>): T {
  const bad = (): PalisadeError => new PalisadeError('PALISADE_ERR_PROTOCOL', `the collector sent a malformed answer to ${path}`);
  if (!isRecord(v)) throw bad();
  for (const [k, t] of Object.entries(fields)) {
    const x = v[k];
    const ok = t === 'array' ? Array.isArray(x) : t === 'object' ? isRecord(x) : typeof x === t;
    if (!ok) throw bad();
  }
  return v as T;
}

const CHANGE_VERB: Record<PolicyChange['op'], string> = { create: 'created', update: 'updated', delete: 'deleted', unchanged: 'unchanged' };
const DRY_VERB: Record<PolicyChange['op'], string> = { create: 'would create', update: 'would update', delete: 'would delete', unchanged: 'unchanged' };

/** What a change did (or would do), one line per policy, diffs for dry runs. */
export function printChange(r: PolicyChangeResponse, out: (s: string) => void): void {
  const changed = r.changes.filter((c) => c.op !== 'unchanged');
  for (const c of r.changes) {
    out(`${(r.dryRun ? DRY_VERB : CHANGE_VERB)[c.op]} ${c.kind} ${printable(c.namespace)}/${printable(c.name)}\n`);
    if (r.dryRun && c.diff) for (const line of c.diff.split('\n')) out(`    ${printable(line)}\n`);
  }
  for (const w of r.warnings ?? []) out(`${printable(w)}\n`);
  if (r.dryRun) out(`dry run: nothing applied (policy version stays ${r.version})\n`);
  else if (r.applied) out(`policy version ${r.version}\n`);
  else if (changed.length === 0) out(`nothing changed (policy version ${r.version})\n`);
}

function checkChange(v: unknown, path: string): PolicyChangeResponse {
  const r = expectShape<PolicyChangeResponse>(v, path, { version: 'number', applied: 'boolean', dryRun: 'boolean', changes: 'array' });
  for (const c of r.changes) expectShape(c, path, { op: 'string', kind: 'string', namespace: 'string', name: 'string', diff: 'string' });
  return r;
}

/** POST a policy change (apply, delete, egress rules) and check the answer. */
export async function postChange(client: ApiClient, path: string, body: unknown): Promise<PolicyChangeResponse> {
  return checkChange(await client.postJson(path, body), path);
}
