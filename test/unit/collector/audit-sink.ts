/** An AuditLog stand-in for unit tests: keeps what is appended, or fails like a full disk. */
import type { AuditKind } from '../../../common/control-api';

export class Appended {
  readonly records: Array<{ kind: AuditKind; actor: string; data: Record<string, unknown> }> = [];
  fail = false;
  append(kind: AuditKind, actor: string, data: Record<string, unknown>): never {
    if (this.fail) throw new Error('disk full');
    this.records.push({ kind, actor, data: JSON.parse(JSON.stringify(data)) as Record<string, unknown> });
    return undefined as never;
  }
}
